"""The connection part: its state (through the one table in :mod:`kraken_proto.state`), the
connect, token and reconnect deadlines, the backoff and failure count, and liveness
(staleness and application pings).

:class:`Connection` holds no socket and sends nothing itself but its pings (through the
:class:`~kraken_proto.outbox.Outbox`); :class:`~kraken_proto.protocol.KrakenProtocol` asks
it for every move and composes the other parts around it. When Kraken was last heard from is
the protocol's to note (it sees every frame); the liveness rules take it as ``heard_at``.
It counts attempts, reconnects, failures and ping round trips into the protocol's
:class:`~kraken_proto.counters.Tally`.
"""

from __future__ import annotations

from collections.abc import Iterator

from kraken_proto.actions import Action, Emit, FetchToken, OpenConnection
from kraken_proto.auth import TokenRequest
from kraken_proto.backoff import Backoff
from kraken_proto.config import ClientConfig
from kraken_proto.counters import Tally
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import Pong, StateChanged
from kraken_proto.outbox import Outbox
from kraken_proto.state import ConnectionState, Trigger, transition
from kraken_proto.timing import NEVER, after
from kraken_proto.wire import Response, encode_request

__all__ = ["OPEN_STATES", "SUBSCRIBABLE_STATES", "Connection"]

_S = ConnectionState
OPEN_STATES = frozenset({_S.AUTHENTICATING, _S.SUBSCRIBING, _S.SUBSCRIBED, _S.RESYNCING})
"""The states with an open socket."""
SUBSCRIBABLE_STATES = frozenset({_S.SUBSCRIBING, _S.SUBSCRIBED, _S.RESYNCING})
"""The states in which requests go out (open, and authenticated where a token is needed)."""
_AFTER_FAILURE = frozenset({_S.DEGRADED, _S.CLOSED})
_MAX_PINGS_TRACKED = 16


class Connection:
    """One connection's life cycle, deadlines and liveness (see the module docstring)."""

    __slots__ = (
        "_auth_deadline",
        "_backoff",
        "_config",
        "_connect_deadline",
        "_failures",
        "_ids",
        "_last_failure",
        "_next_ping_at",
        "_number",
        "_outbox",
        "_ping_req_id",
        "_ping_sent_at",
        "_pings",
        "_retry_at",
        "_stale_armed",
        "_stale_timeout",
        "_state",
        "_tally",
        "_url",
        "is_open",
    )

    def __init__(
        self, config: ClientConfig, url: str, outbox: Outbox, ids: Iterator[int], tally: Tally
    ) -> None:
        self._config = config
        self._tally = tally
        self._url = url
        self._outbox = outbox
        self._ids = ids
        self._state = _S.DISCONNECTED
        self.is_open = False
        """Whether the state is one of :data:`OPEN_STATES` (kept by :meth:`move`)."""
        self._backoff = Backoff(config.reconnect, config.rng)
        self._number = 0  # counts OpenConnection: which connection a token is for
        self._last_failure: str | None = None
        self._failures = 0
        self._connect_deadline = NEVER
        self._auth_deadline = NEVER
        self._retry_at = NEVER
        self._stale_armed = False
        self._stale_timeout = config.stale_timeout
        self._next_ping_at = NEVER
        self._pings: dict[int, float] = {}  # req_id -> when it left, for Pong.rtt (bounded)
        # The ping in flight: its req_id and when it left (None while it waits in the
        # outbox). It is outstanding until its pong, or until ack_timeout after it left.
        self._ping_req_id: int | None = None
        self._ping_sent_at: float | None = None

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._state

    @property
    def last_failure(self) -> str | None:
        """Why the connection last failed, ``None`` since it last worked."""
        return self._last_failure

    @property
    def failures(self) -> int:
        """Failed attempts in a row since the connection last worked."""
        return self._failures

    @property
    def attempt(self) -> int:
        """Reconnect delays handed out since the connection last worked."""
        return self._backoff.attempt

    def waiting_deadline(self) -> float | None:
        """While not open: the connect timeout (connecting) or the retry time (degraded)."""
        state = self._state
        if state is _S.CONNECTING:
            return self._connect_deadline
        if state is _S.DEGRADED:
            return self._retry_at
        return None

    def deadline(self, heard_at: float, best: float) -> float:
        """While open: the earliest of ``best``, staleness, the token timeout and the next
        ping. (Drivers ask after every message: no call, list or hash on the way.)"""
        if self._stale_armed:
            stale = heard_at + self._stale_timeout
            best = stale if stale < best else best
        auth = self._auth_deadline
        best = auth if auth < best else best
        ping = self._next_ping_at
        return ping if ping < best else best

    # ------------------------------------------------------------------ moves

    def move(
        self,
        trigger: Trigger,
        now: float,
        reason: str,
        *,
        retry: int = 0,
        delay: float | None = None,
    ) -> Emit:
        """The one place the state changes: apply ``trigger`` through the table and return
        the ``StateChanged`` to emit. Raises ``LocalProtocolError`` if the table refuses."""
        old = self._state
        self._state = new = transition(old, trigger)
        self.is_open = new in OPEN_STATES
        if old is _S.DEGRADED and new is _S.CONNECTING:
            self._tally.reconnects += 1
        return Emit(StateChanged(old.value, new.value, reason, retry, delay, now))

    def restart(self) -> None:
        """``connect()`` after a close: a fresh retry budget and no failure on record."""
        self._backoff.reset()
        self._worked()

    def begin_connect(self, now: float) -> OpenConnection:
        """A new connection attempt: its number, its connect timeout."""
        self._number += 1
        self._tally.attempts += 1
        self._retry_at = NEVER
        self._connect_deadline = after(now, self._config.timeout)
        return OpenConnection(self._url)

    def opened(self, now: float, *, needs_token: bool) -> FetchToken | None:
        """The socket is open: pings start. Where a token is needed, it is due within
        ``timeout``: the ``FetchToken`` to ask for it is returned. Raises
        ``LocalProtocolError`` unless connecting (the driver's ``connection_made`` is only
        valid after ``OpenConnection``)."""
        if self._state is not _S.CONNECTING:
            raise LocalProtocolError(
                "connection_made is only valid after OpenConnection, while connecting; "
                f"the state is {self._state.value!r}"
            )
        config = self._config
        self._connect_deadline = NEVER
        self._stale_armed = False
        interval = config.ping_interval
        self._next_ping_at = NEVER if interval is None else after(now, interval)
        if not needs_token:
            return None
        self._auth_deadline = after(now, config.timeout)
        assert config.api_key is not None and config.api_secret is not None
        request = TokenRequest(
            rest_url=config.rest_url, api_key=config.api_key, api_secret=config.api_secret
        )
        return FetchToken(request, self._number)

    def stale_token_answer(self, connection: int | None, method: str) -> bool:
        """Whether a token answer (to ``method``) is for a connection other than the one
        authenticating: it is dropped. Raises ``LocalProtocolError`` when no connection is
        authenticating and the answer names none."""
        state = self._state
        if connection is not None and (
            connection != self._number or state is not _S.AUTHENTICATING
        ):
            return True
        if state is not _S.AUTHENTICATING:
            raise LocalProtocolError(
                f"{method} is only valid after FetchToken, while authenticating; "
                f"the state is {state.value!r}"
            )
        return False

    def data_while_closed(self) -> None:
        """Data came while the socket is not open: fine (the caller drops it) if it races a
        failure or close already acted on (degraded, closed); else raises
        ``LocalProtocolError`` (data before ``connection_made``)."""
        if self._state not in _AFTER_FAILURE:
            raise LocalProtocolError(
                f"receive_data while {self._state.value!r}: feed data only after connection_made"
            )

    def lost_already(self) -> bool:
        """Whether a lost connection was acted on already (degraded, closed): nothing more
        to do. Raises ``LocalProtocolError`` before ``connect()`` (there is no connection)."""
        if self._state is _S.DISCONNECTED:
            raise LocalProtocolError("connection_lost before connect(): there is no connection")
        return self._state in _AFTER_FAILURE

    @staticmethod
    def why_lost(exc: BaseException | None, close_code: int | None) -> tuple[str, bool]:
        """The reason for a lost connection, and whether it is terminal (close code 1008,
        a policy violation, is never retried)."""
        reason = "connection lost"
        if close_code == 1006:
            reason = "connection dropped without a close frame (1006)"
        elif close_code is not None:
            reason = f"server closed the connection with code {close_code}"
        if exc is not None:
            reason = f"{reason}: {type(exc).__name__}: {exc}"
        if close_code == 1008:
            return f"{reason} (policy violation; not retrying)", True
        return reason, False

    def authenticated(self) -> None:
        """The token arrived in time."""
        self._auth_deadline = NEVER

    def arm_stale(self) -> None:
        """A subscription was acknowledged: from now on silence counts as staleness."""
        self._stale_armed = True

    def settled(self) -> None:
        """Every initial subscription was answered: the connection works."""
        self._backoff.reset()
        self._worked()

    def _worked(self) -> None:
        self._last_failure = None
        self._failures = 0

    def failed(self, now: float, reason: str, *, terminal: bool) -> float | None:
        """Count a failure; return the delay before the next attempt, or ``None`` to give
        up (``terminal``, or the retry budget is spent)."""
        self._last_failure = reason
        self._failures += 1
        self._tally.failures += 1
        delay = None if terminal else self._backoff.next_delay()
        if delay is not None:
            self._retry_at = after(now, delay)
        return delay

    def reset(self) -> None:
        """Forget everything tied to the socket (its deadlines, pings, liveness)."""
        self._pings.clear()
        self._ping_req_id = self._ping_sent_at = None
        self._connect_deadline = self._auth_deadline = self._retry_at = NEVER
        self._next_ping_at = NEVER
        self._stale_armed = False

    # ------------------------------------------------------------------ timers

    def connect_expired(self, now: float) -> str | None:
        """While connecting: why the attempt must be given up now (no connection within
        ``timeout``), or ``None``."""
        if self._state is _S.CONNECTING and now >= self._connect_deadline:
            return f"no connection within {self._config.timeout:g} s"
        return None

    def retry_due(self, now: float) -> bool:
        """Degraded, and the backoff delay has passed."""
        return self._state is _S.DEGRADED and now >= self._retry_at

    def expired(self, now: float, heard_at: float) -> str | None:
        """While open: why the connection must be given up now (no token in time, or
        stale), or ``None``."""
        if now >= self._auth_deadline:
            return f"no WebSocket token within {self._config.timeout:g} s"
        # Compared exactly as deadline() computes it, so a timer fired at that deadline
        # always finds it due.
        if self._stale_armed and now >= heard_at + self._stale_timeout:
            return f"stale: no message from Kraken for {now - heard_at:.1f} s"
        return None

    def ping(self, actions: list[Action], now: float) -> None:
        """Queue a ping if one is due, unless the previous one is still outstanding.

        Outstanding means queued and not yet sent, or sent less than ``ack_timeout`` ago
        with no pong: at most one ping ever waits in the outbox, so pings can neither grow
        it nor starve the requests behind them. A pong that never comes holds the next
        ping back for ``ack_timeout`` only; it never stops the liveness rules (staleness
        counts Kraken's messages, not pongs).
        """
        if now < self._next_ping_at:
            return
        interval = self._config.ping_interval
        assert interval is not None
        self._next_ping_at = after(now, interval)
        if self._ping_req_id is not None and (
            self._ping_sent_at is None or now < self._ping_sent_at + self._config.ack_timeout
        ):
            return
        req_id = next(self._ids)
        self._ping_req_id = req_id
        self._ping_sent_at = None
        self._outbox.send(
            encode_request("ping", None, req_id), req_id, self._ping_left, actions, now
        )

    def _ping_left(self, req_id: int, now: float) -> None:
        """The ping left: its round trip and timeout count from here."""
        self._ping_sent_at = now
        if len(self._pings) >= _MAX_PINGS_TRACKED:
            self._pings.pop(next(iter(self._pings)))
        self._pings[req_id] = now

    def pong(self, response: Response, now: float) -> Emit:
        """Kraken's answer to a ping: the ``Pong`` event, with the round trip if known."""
        req_id = response.req_id
        sent = self._pings.pop(req_id, None) if req_id is not None else None
        if sent is not None and req_id == self._ping_req_id:
            # Only a ping that left can be answered: a pong for one still waiting in the
            # outbox proves nothing and must not let another queue behind it.
            self._ping_req_id = self._ping_sent_at = None
        if sent is None:
            return Emit(Pong(req_id, None, now))
        rtt = now - sent
        self._tally.round_trip(rtt)
        return Emit(Pong(req_id, rtt, now))
