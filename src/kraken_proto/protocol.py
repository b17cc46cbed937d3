"""KrakenProtocol: the sans-IO core. Bytes and time in; events and IO requests out.

The object never touches a socket, a clock or a thread. A driver feeds it what happened
(``connection_made``, ``receive_data``, ``connection_lost``, ``handle_timer`` at
``next_deadline()``, ...) with its own monotonic ``now``, and performs the returned actions
in order. Everything Kraken-specific lives here once: subscriptions and their replay,
liveness, backoff, pacing, the checksum-verified books (L2 and L3), the sequence-checked
private streams, and trading requests matched to their responses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from kraken_proto.actions import (
    Action,
    CloseConnection,
    Emit,
    FetchToken,
    OpenConnection,
    ReconnectAfter,
    Send,
)
from kraken_proto.auth import TokenRequest
from kraken_proto.backoff import Backoff
from kraken_proto.book import BookState, OrderBook, apply_live_update
from kraken_proto.calls import Answer, Calls
from kraken_proto.config import ClientConfig, Precision
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import (
    MAX_NUMBER,
    Balance,
    BookResync,
    Execution,
    GapDetected,
    Instrument,
    Pong,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SystemStatus,
    Unsubscribed,
)
from kraken_proto.inflight import InFlight
from kraken_proto.level3 import L3Book, Level3Frame
from kraken_proto.private import BalancesFrame, ExecutionsFrame
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.sequence import GateResult, SequenceGate
from kraken_proto.state import ConnectionState, Trigger, transition
from kraken_proto.subscriptions import (
    Subscription,
    SubscriptionStatus,
    SubscriptionsView,
    book_depth_for,
    group_requests,
    unsubscribe_params,
    validate_subscription,
    validate_unsubscription,
)
from kraken_proto.throttle import TokenBucket
from kraken_proto.trading import (
    TRADING_METHODS,
    CancelAllOrdersAfter,
    TradingRequest,
    is_trading_request,
)
from kraken_proto.wire import (
    AckResult,
    BookFrame,
    HeartbeatFrame,
    InstrumentData,
    InstrumentFrame,
    OHLCFrame,
    Response,
    Salvaged,
    StatusFrame,
    TickerFrame,
    TradeFrame,
    ack_result,
    asset_problem,
    balance_problem,
    decode_data_frame,
    decode_entries,
    decode_generic,
    decode_instrument_entries,
    decode_response,
    encode_request,
    execution_problem,
    ohlc_problem,
    pair_problem,
    trade_problem,
)

__all__ = ["KrakenProtocol"]

_S = ConnectionState
_E = TypeVar("_E", bound=msgspec.Struct)
_OPEN = frozenset({_S.AUTHENTICATING, _S.SUBSCRIBING, _S.SUBSCRIBED, _S.RESYNCING})
_SUBSCRIBABLE = frozenset({_S.SUBSCRIBING, _S.SUBSCRIBED, _S.RESYNCING})
_AFTER_FAILURE = frozenset({_S.DEGRADED, _S.CLOSED})
_EXCERPT = 200
_ZERO = Decimal(0)
_NEVER = float("inf")
_MAX_PINGS_TRACKED = 16
_set = msgspec.structs.force_setattr
# What decoding hostile input can raise besides DecodeError: invalid UTF-8 inside a string
# (or a lone surrogate in a str payload), and nesting deep enough to exhaust the stack.
_UNDECODABLE = (msgspec.DecodeError, UnicodeError, RecursionError)
# Refusals of a subscription that mean this connection's token is no good: reconnect for a
# fresh one instead of failing the subscription.
_TOKEN_REFUSED = frozenset({"ESession:Invalid session", "EAPI:Invalid token"})
PrivateFrame = ExecutionsFrame | BalancesFrame


def _size_in_bytes(payload: bytes | str) -> int:
    if isinstance(payload, bytes):
        return len(payload)
    return len(payload.encode("utf-8", "surrogatepass"))


def _excerpt(payload: bytes | str) -> str:
    text = payload if isinstance(payload, str) else payload[:_EXCERPT].decode("utf-8", "replace")
    return text[:_EXCERPT]


class _Request:
    """One request awaiting its acks: one per symbol still outstanding."""

    __slots__ = ("channel", "deadline", "initial", "internal", "keys", "method")

    def __init__(
        self,
        method: str,
        channel: str,
        keys: list[tuple[str, str | None]],
        *,
        internal: bool,
        initial: bool,
    ) -> None:
        self.method = method
        self.channel = channel
        self.keys = set(keys)
        self.internal = internal  # sent by the core itself (book resync): acks are not emitted
        self.initial = initial  # part of the (re)subscribe when the connection opened
        self.deadline: float | None = None  # set when the request actually leaves


class _DeadManSwitch:
    """The armed dead man's switch: re-sent every ``interval`` seconds while connected."""

    __slots__ = ("interval", "next_at", "timeout")

    def __init__(self, timeout: int, interval: float) -> None:
        self.timeout = timeout
        self.interval = interval
        self.next_at: float | None = None  # None: send as soon as a token is there


class KrakenProtocol:
    """The Kraken v2 WebSocket client protocol, without IO.

    One object per connection, to one of Kraken's three hosts:

    - ``KrakenProtocol(config)``: the public host (book, ticker, trade, ohlc, instrument);
    - ``KrakenProtocol(config, private=True)``: the authenticated host (executions, balances
      and trading requests through :meth:`submit`);
    - ``KrakenProtocol(config, level3=True)``: the level3 host (L3 books).

    The last two need ``api_key``/``api_secret``: after the socket opens, the protocol asks
    for a fresh WebSocket token (``FetchToken``) before subscribing, on every connection.

    ``replay=True`` is for feeding a recorded capture back (:func:`kraken_proto.replay.replay`
    sets it): a capture holds Kraken's side only, so a subscription Kraken acknowledges and a
    book snapshot it sends are adopted although this protocol never asked for them (and are
    resubscribed after a reconnect, like the user's own). On a live connection (the default)
    anything unsolicited is reported as a ``ProtocolError`` and nothing of it is kept: a
    server cannot make the client hold books or subscriptions it never asked for.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        replay: bool = False,
    ) -> None:
        self._config = config = config if config is not None else ClientConfig()
        self._replay = replay
        if private and level3:
            raise LocalProtocolError(
                "choose one host: private=True (executions, balances, trading) "
                "or level3=True (level3 books), each on its own KrakenProtocol"
            )
        self._host = "auth" if private else "level3" if level3 else "public"
        self._private = private or level3  # needs a token
        if self._private and not config.credentials_set:
            raise LocalProtocolError(
                f"a {self._host} connection needs api_key and api_secret in ClientConfig "
                "(or ClientConfig.from_env() with KRAKEN_API_KEY / KRAKEN_API_SECRET)"
            )
        self._url = {
            "public": config.endpoint,
            "auth": config.auth_endpoint,
            "level3": config.level3_endpoint,
        }[self._host]
        self._state = _S.DISCONNECTED
        self._open = False  # state in _OPEN, kept by _transition: checked on every frame
        self._stale_timeout = config.stale_timeout
        self._subs: dict[tuple[str, str | None], Subscription] = {}
        self._books: dict[str, OrderBook] = {}
        self._l3books: dict[str, L3Book] = {}
        self._gates: dict[str, SequenceGate[PrivateFrame]] = {}
        self._inflight = InFlight(config)
        self._dead_man: _DeadManSwitch | None = None
        self._instrument_precisions: dict[str, Precision] = {}
        self._requests: dict[int, _Request] = {}
        self._calls = Calls()
        self._connection = 0  # counts OpenConnection: which connection a token is for
        self._last_failure: str | None = None
        self._failures = 0
        self._next_req_id = 1
        self._backoff = Backoff(config.reconnect, config.rng)
        self._bucket = TokenBucket(config.max_requests_per_second, config.request_burst)
        self._outbox: deque[tuple[str, int | None]] = deque()
        self._outbox_ready_at: float | None = None
        self._token: str | None = None
        self._connect_deadline: float | None = None
        self._auth_deadline: float | None = None
        self._retry_at: float | None = None
        self._last_message_at = 0.0
        self._stale_armed = False
        self._next_ping_at: float | None = None
        self._pings: dict[int, float] = {}  # req_id -> when it left, for Pong.rtt (bounded)
        # The ping in flight: its req_id and when it left (None while it waits in the
        # outbox). It is outstanding until its pong, or until ack_timeout after it left.
        self._ping_req_id: int | None = None
        self._ping_sent_at: float | None = None
        # A str of n characters holds at most 4n bytes: only long ones need counting.
        self._size_check_from = config.max_message_size // 4
        self._silence_timeout = config.silent_subscription_timeout
        self._last_data: dict[tuple[str, str | None], float] = {}
        self._next_silence_check: float | None = None
        self._handlers: dict[type, Callable[[Any, float], list[Action]]] = {
            BookFrame: self._on_book,
            TradeFrame: self._on_trades,
            TickerFrame: self._on_entries,  # its numbers are checked as it is decoded
            OHLCFrame: self._on_candles,
            HeartbeatFrame: self._on_heartbeat,
            StatusFrame: self._on_status,
            InstrumentFrame: self._on_instrument,
            ExecutionsFrame: self._on_private,
            BalancesFrame: self._on_private,
            Level3Frame: self._on_level3,
        }

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._state

    @property
    def config(self) -> ClientConfig:
        """The configuration this protocol was built with."""
        return self._config

    @property
    def url(self) -> str:
        """The WebSocket URL this protocol connects to."""
        return self._url

    @property
    def is_replay(self) -> bool:
        """Whether this protocol replays a capture (``replay=True``): only then does it adopt
        subscriptions and books it never asked for."""
        return self._replay

    @property
    def host(self) -> str:
        """Which of Kraken's hosts this connection is for: "public", "auth" or "level3"."""
        return self._host

    def l3_book(self, symbol: str) -> L3Book | None:
        """The maintained level3 book of ``symbol``, or ``None`` if it is not subscribed."""
        return self._l3books.get(symbol)

    def rate_counter(self, symbol: str, now: float) -> RateCounterState:
        """The trading rate counter of ``symbol`` as tracked locally (requests sent through
        this protocol, and orders seen on ``executions``)."""
        return self._inflight.rate_counter(symbol, now)

    @property
    def last_failure(self) -> str | None:
        """Why the connection last failed, or ``None`` if it has not failed since it last
        worked (``subscribed``) or since ``connect()`` after a close."""
        return self._last_failure

    @property
    def failed_attempts(self) -> int:
        """Connection attempts that failed in a row since the connection last worked."""
        return self._failures

    @property
    def can_submit(self) -> bool:
        """Whether :meth:`submit` can send a trading request now: a private connection,
        open and authenticated."""
        return self._host == "auth" and self._state in _SUBSCRIBABLE and self._token is not None

    @property
    def pending_calls(self) -> int:
        """Subscribe and unsubscribe calls not settled yet."""
        return len(self._calls)

    @property
    def pending_requests(self) -> int:
        """Trading requests submitted and not settled yet."""
        return len(self._inflight)

    @property
    def dead_man_switch(self) -> tuple[int, float] | None:
        """``(timeout, interval)`` of the armed dead man's switch, or ``None``."""
        switch = self._dead_man
        return None if switch is None else (switch.timeout, switch.interval)

    def book(self, symbol: str) -> OrderBook | None:
        """The maintained L2 book of ``symbol``, or ``None`` if it is not subscribed.

        Read it through its query methods; they refuse to answer unless the book is live.
        """
        return self._books.get(symbol)

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        groups: dict[SubscriptionStatus, list[Any]] = {status: [] for status in SubscriptionStatus}
        for record in self._subs.values():
            groups[record.status].append(record.info())
        return SubscriptionsView(
            active=tuple(groups[SubscriptionStatus.ACTIVE]),
            pending=tuple(groups[SubscriptionStatus.PENDING]),
            failed=tuple(groups[SubscriptionStatus.FAILED]),
            unsubscribing=tuple(groups[SubscriptionStatus.UNSUBSCRIBING]),
        )

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called (driver's clock), or ``None``."""
        # Drivers ask after every message, so this avoids building lists and hashing the
        # state Enum (a Python-level __hash__).
        if not self._open:
            state = self._state
            if state is _S.CONNECTING:
                return self._connect_deadline
            if state is _S.DEGRADED:
                return self._retry_at
            return None
        best = self._last_message_at + self._stale_timeout if self._stale_armed else _NEVER
        for deadline in (
            self._auth_deadline,
            self._next_ping_at,
            self._outbox_ready_at,
            self._next_silence_check,
        ):
            if deadline is not None and deadline < best:
                best = deadline
        for request in self._requests.values():
            deadline = request.deadline
            if deadline is not None and deadline < best:
                best = deadline
        if self._private:
            for deadline in (
                self._inflight.next_deadline(),
                *(gate.next_deadline() for gate in self._gates.values()),
                None if self._dead_man is None or self._token is None else self._dead_man.next_at,
            ):
                if deadline is not None and deadline < best:
                    best = deadline
        return None if best == _NEVER else best

    # ------------------------------------------------------------------ inputs

    def connect(self, now: float) -> list[Action]:
        """Start (or restart) the connection: returns ``OpenConnection``."""
        if self._state is _S.CLOSED:
            self._backoff.reset()
            self._last_failure = None
            self._failures = 0
        actions: list[Action] = [self._transition(Trigger.CONNECT, now, "connect requested")]
        return self._begin_connect(actions, now)

    def connection_made(self, now: float) -> list[Action]:
        """The driver opened the WebSocket asked for by the last ``OpenConnection``."""
        if self._state is not _S.CONNECTING:
            raise LocalProtocolError(
                "connection_made is only valid after OpenConnection, while connecting; "
                f"the state is {self._state.value!r}"
            )
        self._connect_deadline = None
        self._last_message_at = now
        self._stale_armed = False
        interval = self._config.ping_interval
        self._next_ping_at = None if interval is None else now + interval
        if self._private:
            config = self._config
            assert config.api_key is not None and config.api_secret is not None
            self._auth_deadline = now + config.timeout
            request = TokenRequest(
                rest_url=config.rest_url, api_key=config.api_key, api_secret=config.api_secret
            )
            return [
                self._transition(Trigger.OPENED_PRIVATE, now, "connected; fetching a token"),
                FetchToken(request, self._connection),
            ]
        actions: list[Action] = [self._transition(Trigger.OPENED_PUBLIC, now, "connected")]
        return self._subscribe_all(actions, now)

    def token_received(
        self, token: str, now: float, *, connection: int | None = None
    ) -> list[Action]:
        """The driver obtained the WebSocket token asked for by ``FetchToken``.

        Pass the ``FetchToken``'s ``connection``: an answer for a connection that is gone
        is then dropped (returns ``[]``), so a driver need not track that itself.
        """
        if self._stale_token_answer(connection):
            return []
        if self._state is not _S.AUTHENTICATING:
            raise LocalProtocolError(
                "token_received is only valid after FetchToken, while authenticating; "
                f"the state is {self._state.value!r}"
            )
        if not isinstance(token, str) or not token:
            raise LocalProtocolError("token_received needs the non-empty token string")
        self._token = token
        self._auth_deadline = None
        actions: list[Action] = [self._transition(Trigger.AUTHENTICATED, now, "token received")]
        self._subscribe_all(actions, now)
        if self._dead_man is not None:
            self._send_dead_man_switch(actions, now)
        return actions

    def token_failed(
        self, error: str, now: float, *, terminal: bool, connection: int | None = None
    ) -> list[Action]:
        """The driver could not get a WebSocket token (``FetchToken`` failed).

        ``error`` says why (Kraken's error string, or the network failure); it must not
        contain secrets. ``terminal`` (e.g. ``AuthenticationError.terminal`` for a bad key)
        closes for good with that reason; otherwise the connection is retried with backoff.
        ``connection`` as for :meth:`token_received`.
        """
        if self._stale_token_answer(connection):
            return []
        if self._state is not _S.AUTHENTICATING:
            raise LocalProtocolError(
                "token_failed is only valid after FetchToken, while authenticating; "
                f"the state is {self._state.value!r}"
            )
        reason = f"could not get a WebSocket token: {error}"
        close = CloseConnection(1000, "no WebSocket token")
        if terminal:
            return self._fail(now, f"{reason} (not retrying)", close=close, terminal=True)
        return self._fail(now, reason, close=close)

    def _stale_token_answer(self, connection: int | None) -> bool:
        """Whether a token answer is for a connection other than the one authenticating."""
        if connection is None:
            return False
        return connection != self._connection or self._state is not _S.AUTHENTICATING

    def receive_data(self, payload: bytes | str, now: float) -> list[Action]:
        """One complete WebSocket message from the server.

        Never raises for bad remote input: that becomes a ``ProtocolError`` event. An entry
        whose numbers are unusable (not finite, out of range, negative where Kraken's never
        are: see :mod:`kraken_proto.wire`) becomes a ``ProtocolError`` in its place and the
        message's other entries are delivered; a private (sequenced) message holding one is
        dropped whole, so the sequence check sees the hole.
        """
        if not self._open:
            state = self._state
            if state in _AFTER_FAILURE:
                return []  # frames racing with a close we already acted on
            raise LocalProtocolError(
                f"receive_data while {state.value!r}: feed data only after connection_made"
            )
        if len(payload) > self._size_check_from:
            size = _size_in_bytes(payload)
            if size > self._config.max_message_size:
                problem = (
                    f"message of {size} bytes exceeds max_message_size "
                    f"({self._config.max_message_size})"
                )
                return [Emit(ProtocolError(problem, _excerpt(payload), now))]
        try:
            frame = decode_data_frame(payload)
        except _UNDECODABLE as exc:
            return self._receive_other(payload, exc, now)
        self._last_message_at = now
        return self._handlers[type(frame)](frame, now)

    def connection_lost(
        self, now: float, exc: BaseException | None = None, *, close_code: int | None = None
    ) -> list[Action]:
        """The socket closed or could not be opened. ``close_code`` if a close frame came."""
        state = self._state
        if state in _AFTER_FAILURE:
            return []
        if state is _S.DISCONNECTED:
            raise LocalProtocolError("connection_lost before connect(): there is no connection")
        reason = "connection lost"
        if close_code == 1006:
            reason = "connection dropped without a close frame (1006)"
        elif close_code is not None:
            reason = f"server closed the connection with code {close_code}"
        if exc is not None:
            reason = f"{reason}: {type(exc).__name__}: {exc}"
        if close_code == 1008:
            return self._fail(now, f"{reason} (policy violation; not retrying)", terminal=True)
        return self._fail(now, reason)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline that is due at ``now``. Spurious calls are harmless."""
        state = self._state
        if state is _S.CONNECTING:
            if self._connect_deadline is not None and now >= self._connect_deadline:
                reason = f"no connection within {self._config.timeout:g} s"
                return self._fail(now, reason, close=CloseConnection(1000, reason))
            return []
        if state is _S.DEGRADED:
            if self._retry_at is not None and now >= self._retry_at:
                return self._begin_connect(
                    [self._transition(Trigger.RETRY, now, "reconnecting")], now
                )
            return []
        if state not in _OPEN:
            return []
        if self._auth_deadline is not None and now >= self._auth_deadline:
            reason = f"no WebSocket token within {self._config.timeout:g} s"
            return self._fail(now, reason, close=CloseConnection(1000, reason))
        # Compared exactly as next_deadline() computes it, so a timer fired at that
        # deadline always finds it due.
        if self._stale_armed and now >= self._last_message_at + self._config.stale_timeout:
            reason = f"stale: no message from Kraken for {now - self._last_message_at:.1f} s"
            return self._fail(now, reason, close=CloseConnection(1000, reason))
        if self._next_silence_check is not None and now >= self._next_silence_check:
            silent = self._find_silent_subscription(now)
            if silent is not None:
                return self._fail(now, silent, close=CloseConnection(1000, silent))
        actions: list[Action] = []
        self._expire_requests(actions, now)
        if self._private:
            self._private_timers(actions, now)
        if self._next_ping_at is not None and now >= self._next_ping_at:
            self._send_ping(actions, now)
        self._flush(actions, now)
        self._settle(actions, now)
        return actions

    def subscribe(
        self, channel: str, symbols: Sequence[str] | str | None, now: float, **params: Any
    ) -> tuple[int, list[Action]]:
        """Subscribe ``symbols`` to ``channel``; remembered and replayed after reconnects.
        Returns the call's ``req_id`` and the actions.

        Allowed before ``connect()``: the request is sent once the connection is up.
        Exactly one ``SubscriptionResult`` with that ``req_id`` settles the call: when every
        symbol is acknowledged or refused, not acknowledged within ``ack_timeout`` after it
        was sent, or when the client closes or gives up first.
        Raises :class:`LocalProtocolError` for bad arguments or a duplicate subscription.
        """
        checked, wire, user_depth = validate_subscription(
            channel, symbols, params, self._config.depth_headroom, self._host
        )
        for symbol in checked:
            existing = self._subs.get((channel, symbol))
            if existing is not None and existing.status is not SubscriptionStatus.FAILED:
                what = f"{channel} {symbol}" if symbol else channel
                raise LocalProtocolError(
                    f"already subscribed to {what} ({existing.status.value}); unsubscribe first"
                )
        records = []
        for symbol in checked:
            record = Subscription(channel, symbol, dict(wire), user_depth)
            self._subs[record.key] = record
            records.append(record)
            if channel == "book":
                assert symbol is not None
                self._books[symbol] = self._new_book(symbol, wire["depth"], user_depth)
            elif channel == "level3":
                assert symbol is not None
                self._l3books[symbol] = self._new_l3book(symbol, wire["depth"])
        req_id = self._new_req_id()
        actions: list[Action] = []
        self._open_call(req_id, "subscribe", channel, records, actions, now)
        if self._state in _SUBSCRIBABLE:
            self._request("subscribe", channel, wire, records, actions, now, req_id=req_id)
        return req_id, actions

    def unsubscribe(
        self, channel: str, symbols: Sequence[str] | str | None, now: float, **params: Any
    ) -> tuple[int, list[Action]]:
        """Stop a subscription; returns the call's ``req_id`` and the actions.

        ``depth``/``interval`` are taken from the subscription itself (Kraken needs them
        echoed), so passing them is optional. One ``SubscriptionResult`` settles the call,
        at once while disconnected (the subscription is simply forgotten). An unanswered
        subscribe call of these symbols settles now, failed for them ("superseded").
        """
        checked = validate_unsubscription(channel, symbols, params, self._host)
        records = []
        for symbol in checked:
            record = self._subs.get((channel, symbol))
            if record is None or record.status is SubscriptionStatus.UNSUBSCRIBING:
                what = f"{channel} {symbol}" if symbol else channel
                raise LocalProtocolError(f"not subscribed to {what}; nothing to unsubscribe")
            records.append(record)
        req_id = self._new_req_id()
        actions: list[Action] = []
        self._open_call(req_id, "unsubscribe", channel, records, actions, now)
        if self._state not in _SUBSCRIBABLE:
            for record in records:
                self._forget(record)
                self._answer(Unsubscribed(channel, record.symbol, None, now), actions)
            return req_id, actions
        wire_id: int | None = req_id
        for _, params_, members in group_requests(records):
            for record in members:
                record.status = SubscriptionStatus.UNSUBSCRIBING
            self._request(
                "unsubscribe",
                channel,
                unsubscribe_params(params_),
                members,
                actions,
                now,
                req_id=wire_id,
            )
            wire_id = None  # one request per depth: the others get their own req_id
        return req_id, actions

    def submit(self, request: TradingRequest, now: float) -> tuple[int, list[Action]]:
        """Send a trading request (``AddOrder``, ``CancelOrder``, ...) on this private
        connection; return its ``req_id`` and the actions.

        Exactly one ``OrderResponse`` with that ``req_id`` settles it later: ``OK``,
        ``REJECTED`` (Kraken's error), ``UNKNOWN`` (no answer within ``request_timeout`` or
        the connection was lost after sending: never retried, reconcile via executions) or
        ``NOT_SENT``. A request that would overrun the pair's rate counter is held back
        (``handle_timer`` sends it) for up to ``max_pacing_delay``.

        Raises:
            LocalProtocolError: not a private connection, or not connected and
                authenticated (trading requests are never queued across connections).
            TradingRateLimitError: the rate counter would hold it back too long.
        """
        if not is_trading_request(request):
            raise LocalProtocolError(
                f"submit() takes a trading request such as AddOrder, not {type(request).__name__}"
            )
        if self._host != "auth":
            raise LocalProtocolError(
                "trading needs a private connection: KrakenProtocol(config, private=True)"
            )
        if self._state not in _SUBSCRIBABLE or self._token is None:
            raise LocalProtocolError(
                f"cannot send {request.method} while {self._state.value!r}: trading requests "
                "go out only on an open, authenticated connection and are never queued "
                "across connections; wait until the state is 'subscribed'"
            )
        req_id = self._new_req_id()
        actions: list[Action] = []
        if self._inflight.submit(req_id, request, now):
            self._queue(self._encode_trading(request, req_id), req_id, actions, now)
        return req_id, actions

    def arm_dead_man_switch(
        self, timeout: int, now: float, *, interval: float | None = None
    ) -> list[Action]:
        """Keep Kraken's ``cancel_all_orders_after`` armed: every open order is cancelled
        if this client stops refreshing it for ``timeout`` seconds.

        The request is sent now (when connected) and again every ``interval`` seconds
        (default ``timeout / 3``), also after reconnects; :meth:`close` and
        :meth:`disarm_dead_man_switch` disarm it. Each answer arrives as an
        ``OrderResponse`` for method ``cancel_all_orders_after``.
        """
        if self._host != "auth":
            raise LocalProtocolError(
                "the dead man's switch needs a private connection: "
                "KrakenProtocol(config, private=True)"
            )
        if type(timeout) is not int or not 1 <= timeout < 86400:
            raise LocalProtocolError(
                f"timeout must be an int of seconds in 1..86399, not {timeout!r}"
            )
        every = timeout / 3 if interval is None else interval
        if isinstance(every, bool) or not isinstance(every, int | float) or not 0 < every < timeout:
            raise LocalProtocolError(
                f"interval must be a number of seconds > 0 and < timeout ({timeout}), "
                f"not {interval!r}"
            )
        self._dead_man = _DeadManSwitch(timeout, float(every))
        actions: list[Action] = []
        if self._state in _SUBSCRIBABLE and self._token is not None:
            self._send_dead_man_switch(actions, now)
        return actions

    def disarm_dead_man_switch(self, now: float) -> list[Action]:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        if self._dead_man is None:
            return []
        self._dead_man = None
        actions: list[Action] = []
        if self._state in _SUBSCRIBABLE and self._token is not None:
            self._submit_unpaced(CancelAllOrdersAfter(timeout=0), actions, now)
        return actions

    def close(self, now: float) -> list[Action]:
        """Close for good (until ``connect()`` is called again). Idempotent.

        An armed dead man's switch is disarmed first (``timeout`` 0), so a clean close does
        not cancel the orders. Calls made while closed (waiting for ``connect()``) settle.
        """
        state = self._state
        if state is _S.CLOSED:
            closed: list[Action] = []
            self._settle_calls("closed by the client", closed, now)
            return closed
        actions: list[Action] = []
        if self._dead_man is not None:
            self._dead_man = None
            if state in _SUBSCRIBABLE and self._token is not None:
                # Sent past the pacing budget: it must leave before the close frame.
                disarm = CancelAllOrdersAfter(timeout=0)
                actions.append(Send(self._encode_trading(disarm, self._new_req_id())))
        if state is _S.CONNECTING or state in _OPEN:
            actions.append(CloseConnection(1000, "closed by the client"))
        self._reset_connection(actions, now, "closed by the client")
        self._settle_calls("closed by the client", actions, now)
        actions.append(self._transition(Trigger.CLOSE, now, "closed by the client"))
        return actions

    # ------------------------------------------------------------------ connection life

    def _transition(
        self,
        trigger: Trigger,
        now: float,
        reason: str,
        *,
        retry: int = 0,
        delay: float | None = None,
    ) -> Emit:
        old = self._state
        self._state = new = transition(old, trigger)
        self._open = new in _OPEN
        return Emit(StateChanged(old.value, new.value, reason, retry, delay, now))

    def _begin_connect(self, actions: list[Action], now: float) -> list[Action]:
        self._connection += 1
        self._retry_at = None
        self._connect_deadline = now + self._config.timeout
        actions.append(OpenConnection(self._url))
        return actions

    def _fail(
        self,
        now: float,
        reason: str,
        *,
        close: CloseConnection | None = None,
        terminal: bool = False,
    ) -> list[Action]:
        actions: list[Action] = [] if close is None else [close]
        self._reset_connection(actions, now, reason)
        self._last_failure = reason
        self._failures += 1
        if terminal:
            self._settle_calls(reason, actions, now)
            actions.append(self._transition(Trigger.GIVE_UP, now, reason))
            return actions
        delay = self._backoff.next_delay()
        if delay is None:
            attempts = self._backoff.attempt
            reason = f"{reason}; gave up after {attempts} reconnect attempts"
            self._settle_calls(reason, actions, now)
            actions.append(self._transition(Trigger.GIVE_UP, now, reason))
            return actions
        self._retry_at = now + delay
        actions.append(
            self._transition(Trigger.FAILED, now, reason, retry=self._backoff.attempt, delay=delay)
        )
        actions.append(ReconnectAfter(delay, reason))
        return actions

    def _reset_connection(self, actions: list[Action], now: float, reason: str) -> None:
        """Forget everything tied to the socket; keep what must be replayed."""
        if self._private:
            # Trading requests never survive their connection: settle each one now.
            for response in self._inflight.connection_lost(now, reason):
                actions.append(Emit(response))
            for gate in self._gates.values():
                gate.reset()
            if self._dead_man is not None:
                self._dead_man.next_at = None  # re-armed as soon as the next token arrives
        self._requests.clear()
        self._outbox.clear()
        self._outbox_ready_at = None
        self._pings.clear()
        self._ping_req_id = self._ping_sent_at = None
        self._token = None
        self._connect_deadline = self._auth_deadline = self._retry_at = None
        self._next_ping_at = self._next_silence_check = None
        self._stale_armed = False
        self._last_data.clear()
        for record in list(self._subs.values()):
            if record.status is SubscriptionStatus.UNSUBSCRIBING:
                # The user asked to stop it; a new connection simply will not subscribe it.
                self._forget(record)
                self._answer(Unsubscribed(record.channel, record.symbol, None, now), actions)
            elif record.status is SubscriptionStatus.ACTIVE:
                record.status = SubscriptionStatus.PENDING
        for book in self._books.values():
            if book.state is not BookState.FAILED:
                book.mark_awaiting_snapshot()
        for l3book in self._l3books.values():
            if l3book.state is not BookState.FAILED:
                l3book.mark_awaiting_snapshot()

    # ------------------------------------------------------------------ sending

    def _new_req_id(self) -> int:
        req_id = self._next_req_id
        self._next_req_id += 1
        return req_id

    def _encode_trading(self, request: TradingRequest, req_id: int) -> str:
        params = request.params()
        assert self._token is not None
        params["token"] = self._token
        return encode_request(request.method, params, req_id)

    def _send_dead_man_switch(self, actions: list[Action], now: float) -> None:
        switch = self._dead_man
        assert switch is not None
        switch.next_at = now + switch.interval
        self._submit_unpaced(CancelAllOrdersAfter(timeout=switch.timeout), actions, now)

    def _submit_unpaced(
        self, request: CancelAllOrdersAfter, actions: list[Action], now: float
    ) -> None:
        req_id = self._new_req_id()
        ready = self._inflight.submit(req_id, request, now)
        assert ready  # account-wide requests count against no pair: never held back
        self._queue(self._encode_trading(request, req_id), req_id, actions, now)

    def _subscribe_all(self, actions: list[Action], now: float) -> list[Action]:
        """Send every remembered subscription, one request per channel and parameters."""
        records = [
            r
            for r in self._subs.values()
            if r.status is SubscriptionStatus.PENDING
            or (r.status is SubscriptionStatus.FAILED and r.local_failure)
        ]
        for record in records:
            record.status = SubscriptionStatus.PENDING
            record.error = None
            if record.channel == "book":
                assert record.symbol is not None
                self._books[record.symbol].mark_awaiting_snapshot()
            elif record.channel == "level3":
                assert record.symbol is not None
                self._l3books[record.symbol].mark_awaiting_snapshot()
        for channel, params, members in group_requests(records):
            self._request("subscribe", channel, params, members, actions, now, initial=True)
        self._settle(actions, now)
        return actions

    def _request(
        self,
        method: str,
        channel: str,
        params: dict[str, Any],
        records: list[Subscription],
        actions: list[Action],
        now: float,
        *,
        internal: bool = False,
        initial: bool = False,
        req_id: int | None = None,
    ) -> None:
        if req_id is None:
            req_id = self._new_req_id()
        keys = [r.key for r in records]
        self._requests[req_id] = _Request(method, channel, keys, internal=internal, initial=initial)
        wire: dict[str, Any] = {"channel": channel}
        if records[0].symbol is not None:
            wire["symbol"] = [r.symbol for r in records]
        wire.update(params)
        if self._token is not None:
            wire["token"] = self._token
        self._queue(encode_request(method, wire, req_id), req_id, actions, now)

    def _queue(self, text: str, req_id: int | None, actions: list[Action], now: float) -> None:
        self._outbox.append((text, req_id))
        self._flush(actions, now)

    def _flush(self, actions: list[Action], now: float) -> None:
        """Send what the message-rate budget allows; the rest waits for ``handle_timer``."""
        outbox = self._outbox
        bucket = self._bucket
        while outbox and bucket.try_acquire(now):
            text, req_id = outbox.popleft()
            if req_id is None:  # the ping: its round trip and timeout count from here
                ping = self._ping_req_id
                assert ping is not None  # only a pong to a ping that left ends it
                self._ping_sent_at = now
                if len(self._pings) >= _MAX_PINGS_TRACKED:
                    self._pings.pop(next(iter(self._pings)))
                self._pings[ping] = now
            else:
                request = self._requests.get(req_id)
                if request is not None:
                    request.deadline = now + self._config.ack_timeout
                else:
                    self._inflight.sent(req_id, now)
            actions.append(Send(text))
        self._outbox_ready_at = bucket.next_available(now) if outbox else None

    def _send_ping(self, actions: list[Action], now: float) -> None:
        """Queue a ping, unless the previous one is still outstanding.

        Outstanding means queued and not yet sent, or sent less than ``ack_timeout`` ago
        with no pong: at most one ping ever waits in the outbox, so pings can neither grow
        it nor starve the requests behind them. A pong that never comes holds the next
        ping back for ``ack_timeout`` only; it never stops the liveness rules (staleness
        counts Kraken's messages, not pongs).
        """
        interval = self._config.ping_interval
        assert interval is not None
        self._next_ping_at = now + interval
        if self._ping_req_id is not None and (
            self._ping_sent_at is None or now < self._ping_sent_at + self._config.ack_timeout
        ):
            return
        req_id = self._new_req_id()
        self._ping_req_id = req_id
        self._ping_sent_at = None
        self._queue(encode_request("ping", None, req_id), None, actions, now)

    # ------------------------------------------------------------------ timers

    def _expire_requests(self, actions: list[Action], now: float) -> None:
        expired = [
            (req_id, request)
            for req_id, request in self._requests.items()
            if request.deadline is not None and now >= request.deadline
        ]
        for req_id, request in expired:
            del self._requests[req_id]
            error = f"no acknowledgement within {self._config.ack_timeout:g} s"
            for key in sorted(request.keys, key=lambda k: k[1] or ""):
                record = self._subs.get(key)
                if record is None:
                    continue
                if request.method == "unsubscribe":
                    if not request.internal:
                        self._forget(record)
                        self._answer(
                            Unsubscribed(record.channel, record.symbol, req_id, now), actions
                        )
                    continue
                if record.status is SubscriptionStatus.UNSUBSCRIBING:
                    # Being unsubscribed: its own request ends it, and it must not come
                    # back on the next connection as a failed subscription to retry.
                    failed = SubscriptionFailed(key[0], key[1], error, req_id, now)
                    self._answer(failed, actions)
                    continue
                self._fail_record(record, error, req_id, actions, now, local=True)

    def _private_timers(self, actions: list[Action], now: float) -> None:
        """Response timeouts, paced requests, sequence-gap buffers, the dead man's switch."""
        inflight = self._inflight
        for response in inflight.expire(now):
            actions.append(Emit(response))
        for req_id, request in inflight.take_due(now):
            self._queue(self._encode_trading(request, req_id), req_id, actions, now)
        for channel, gate in list(self._gates.items()):
            deadline = gate.next_deadline()
            if deadline is not None and now >= deadline:
                self._gate_result(channel, gate.handle_timer(now), actions, now)
        switch = self._dead_man
        if (
            switch is not None
            and self._token is not None
            and switch.next_at is not None
            and now >= switch.next_at
        ):
            self._send_dead_man_switch(actions, now)

    def _find_silent_subscription(self, now: float) -> str | None:
        timeout = self._silence_timeout
        assert timeout is not None
        self._next_silence_check = now + timeout / 4
        for record in self._subs.values():
            if record.status is not SubscriptionStatus.ACTIVE or record.symbol is None:
                continue
            last = self._last_data.get(record.key)
            if last is not None and now - last >= timeout:
                return f"stale: {record.channel} {record.symbol} silent for {now - last:.1f} s"
        return None

    def _settle(self, actions: list[Action], now: float) -> None:
        """SUBSCRIBING becomes SUBSCRIBED once every initial request was answered."""
        if self._state is not _S.SUBSCRIBING:
            return
        if any(r.initial for r in self._requests.values()):
            return
        actions.append(self._transition(Trigger.SETTLED, now, "all subscriptions answered"))
        self._backoff.reset()
        self._last_failure = None
        self._failures = 0
        if any(b.state is BookState.RESYNCING for b in self._books.values()) or any(
            b.state is BookState.RESYNCING for b in self._l3books.values()
        ):
            actions.append(self._transition(Trigger.RESYNC_STARTED, now, "a book is resyncing"))

    # ------------------------------------------------------------------ receiving

    def _on_entries(self, frame: TickerFrame, now: float) -> list[Action]:
        actions: list[Action] = []
        append = actions.append
        for entry in frame.data:
            _set(entry, "received_at", now)
            append(Emit(entry))
        if self._silence_timeout is not None:
            self._heard("ticker", frame.data, now)
        return actions

    def _on_trades(self, frame: TradeFrame, now: float) -> list[Action]:
        """Trades: one whose price or quantity is unusable becomes a ``ProtocolError`` in
        its place; the message's other trades are delivered."""
        actions: list[Action] = []
        append = actions.append
        zero = _ZERO
        limit = MAX_NUMBER
        for entry in frame.data:
            # trade_problem's quick check, inlined: this runs for every trade.
            try:
                usable = zero < entry.price < limit and zero < entry.qty < limit
            except ArithmeticError:  # a NaN compared while InvalidOperation is trapped
                usable = False
            if usable:
                _set(entry, "received_at", now)
                append(Emit(entry))
            else:
                problem = trade_problem(entry)
                assert problem is not None  # the same check, spelt out
                append(_unusable_entry("trade", problem, _entry_excerpt(entry), now))
        if self._silence_timeout is not None:
            self._heard("trade", frame.data, now)
        return actions

    def _on_candles(self, frame: OHLCFrame, now: float) -> list[Action]:
        """Candles: one with an unusable number becomes a ``ProtocolError`` in its place; the
        message's other candles are delivered."""
        actions: list[Action] = []
        for entry in frame.data:
            problem = ohlc_problem(entry)
            if problem is None:
                _set(entry, "received_at", now)
                actions.append(Emit(entry))
            else:
                actions.append(_unusable_entry("ohlc", problem, _entry_excerpt(entry), now))
        if self._silence_timeout is not None:
            self._heard("ohlc", frame.data, now)
        return actions

    def _salvage_entries(self, channel: str, salvaged: Salvaged, now: float) -> list[Action]:
        """A ticker, trade or ohlc frame that did not decode whole: deliver the entries that
        decode and hold usable numbers, a ``ProtocolError`` in place of each other one."""
        actions: list[Action] = []
        delivered = []
        problem_of = _PROBLEM_OF[channel]
        for entry, raw in salvaged:
            problem = entry if isinstance(entry, str) else problem_of(entry)
            if problem is not None:
                actions.append(_unusable_entry(channel, problem, _raw_excerpt(raw), now))
                continue
            _set(entry, "received_at", now)
            actions.append(Emit(entry))
            delivered.append(entry)
        if self._silence_timeout is not None:
            self._heard(channel, delivered, now)
        return actions

    def _on_heartbeat(self, frame: HeartbeatFrame, now: float) -> list[Action]:
        return []

    def _on_status(self, frame: StatusFrame, now: float) -> list[Action]:
        return [
            Emit(SystemStatus(e.system, e.version, e.api_version, e.connection_id, now))
            for e in frame.data
        ]

    def _on_instrument(self, frame: InstrumentFrame, now: float) -> list[Action]:
        actions: list[Action] = []
        assets = _usable(frame.data.assets, asset_problem, actions, now)
        pairs = _usable(frame.data.pairs, pair_problem, actions, now)
        for pair in pairs:
            precision = Precision(price=pair.price_precision, qty=pair.qty_precision)
            self._instrument_precisions[pair.symbol] = precision
            book = self._books.get(pair.symbol)
            if book is not None:
                book.set_precision(precision.price, precision.qty)
        actions.append(Emit(Instrument(assets, pairs, frame.type == "snapshot", now)))
        return actions

    def _salvage_instrument(
        self, instrument: tuple[str, Salvaged, Salvaged], now: float
    ) -> list[Action]:
        """An instrument frame that did not decode whole: the assets and pairs that decode
        are handled as usual, a ``ProtocolError`` stands for each other one."""
        kind, asset_entries, pair_entries = instrument
        actions: list[Action] = []
        assets = _decoded(asset_entries, actions, now)
        pairs = _decoded(pair_entries, actions, now)
        frame = InstrumentFrame(kind, InstrumentData(assets, pairs))
        return actions + self._on_instrument(frame, now)

    def _on_book(self, frame: BookFrame, now: float) -> list[Action]:
        if frame.type == "snapshot":
            return self._on_book_snapshot(frame, now)
        actions: list[Action] = []
        books = self._books
        for update in frame.data:
            symbol = update.symbol
            book = books.get(symbol)
            if book is None:
                problem = f"book update for {symbol} without a snapshot"
                actions.append(Emit(ProtocolError(problem, "", now)))
                continue
            if not book.is_live:
                continue  # deltas are dropped until the new snapshot arrives
            try:
                # The book is live: straight to the update loop (OrderBook.apply_update
                # would check that again).
                computed = apply_live_update(book, update.bids, update.asks)
            except (ArithmeticError, ValueError) as exc:  # no number, NaN, absurd exponents
                self._unusable_book(symbol, exc, actions, now)
                continue
            if computed != update.checksum:
                self._checksum_mismatch(symbol, computed, update.checksum, actions, now)
                continue
            _set(update, "received_at", now)
            actions.append(Emit(update))
        if self._silence_timeout is not None:
            self._heard("book", frame.data, now)
        return actions

    def _on_book_snapshot(self, frame: BookFrame, now: float) -> list[Action]:
        actions: list[Action] = []
        for update in frame.data:
            symbol = update.symbol
            book = self._books.get(symbol)
            if book is None:
                if not self._replay:
                    problem = f"Kraken sent a book snapshot for {symbol}, which is not subscribed"
                    actions.append(Emit(ProtocolError(f"{problem}; ignored", "", now)))
                    continue
                book = self._adopt_book(symbol, max(len(update.bids), len(update.asks)), now)
            resyncing = book.state is BookState.RESYNCING
            try:
                computed = book.apply_snapshot(update.bids, update.asks)
            except (ArithmeticError, ValueError) as exc:
                self._unusable_book(symbol, exc, actions, now)
                continue
            if computed != update.checksum:
                self._checksum_mismatch(symbol, computed, update.checksum, actions, now)
                continue
            _set(update, "received_at", now)
            _set(update, "snapshot", True)
            actions.append(Emit(update))
            if resyncing:
                self._resync_finished(actions, now)
        if self._silence_timeout is not None:
            self._heard("book", frame.data, now)
        return actions

    def _heard(self, channel: str, entries: Sequence[Any], now: float) -> None:
        """Note data for each entry's symbol on ``channel`` (the silent-subscription check).

        Only subscriptions already acknowledged are noted: data for anything else must not
        grow the table.
        """
        last_data = self._last_data
        for entry in entries:
            key = (channel, entry.symbol)
            if key in last_data:
                last_data[key] = now

    def _unusable_book(
        self, symbol: str, exc: Exception, actions: list[Action], now: float
    ) -> None:
        problem = f"unusable number in the {symbol} book: {exc!r}"
        actions.append(Emit(ProtocolError(problem, "", now)))
        self._resync("book", symbol, problem, actions, now)

    def _checksum_mismatch(
        self, symbol: str, computed: int, sent: int, actions: list[Action], now: float
    ) -> None:
        reason = f"checksum mismatch: computed {computed}, Kraken sent {sent}"
        self._resync("book", symbol, reason, actions, now)

    def _on_private(self, frame: PrivateFrame, now: float) -> list[Action]:
        channel = "executions" if type(frame) is ExecutionsFrame else "balances"
        problem_of: Callable[[Any], str | None] = (
            execution_problem if channel == "executions" else balance_problem
        )
        for index, entry in enumerate(frame.data):
            problem = problem_of(entry)
            if problem is not None:
                # Dropped whole, like a frame that does not decode: delivering the rest
                # would hide a hole in the sequenced stream; the gate sees this one.
                problem = (
                    f"Kraken sent an unusable {channel} message (sequence {frame.sequence}, "
                    f"data[{index}]): {problem}; the message is dropped"
                )
                return [Emit(ProtocolError(problem, "", now))]
        gate = self._gates.get(channel)
        if gate is None:
            config = self._config
            gate = SequenceGate(
                config.gap_policy, config.gap_buffer_size, config.gap_buffer_timeout
            )
            self._gates[channel] = gate
        actions: list[Action] = []
        result = gate.accept(frame.sequence, frame, frame.type == "snapshot", now)
        self._gate_result(channel, result, actions, now)
        if self._silence_timeout is not None:
            self._last_data[(channel, None)] = now
        return actions

    def _gate_result(
        self, channel: str, result: GateResult[PrivateFrame], actions: list[Action], now: float
    ) -> None:
        """Emit what a sequence gate released, report its gaps, resync if it asks."""
        policy = self._config.gap_policy.value
        for expected, received in result.gaps:
            actions.append(Emit(GapDetected(channel, expected, received, policy, now)))
        for frame in result.released:
            snapshot = frame.type == "snapshot"
            entry: Execution | Balance
            for entry in frame.data:
                _set(entry, "sequence", frame.sequence)
                _set(entry, "snapshot", snapshot)
                _set(entry, "received_at", now)
                actions.append(Emit(entry))
            if type(frame) is ExecutionsFrame:
                self._inflight.track_executions(frame.data, now)
        if result.resync:
            self._resync_stream(channel, actions, now)

    def _resync_stream(self, channel: str, actions: list[Action], now: float) -> None:
        """Resubscribe a private stream for a fresh snapshot after a sequence gap."""
        record = self._subs.get((channel, None))
        gate = self._gates[channel]
        if record is None or record.status is not SubscriptionStatus.ACTIVE:
            gate.reset()
            return
        if not self._spend_resync(record, now):
            error = (
                f"sequence gaps; gave up after {self._config.resync_max_attempts} resyncs "
                f"within {self._config.resync_window:g} s"
            )
            self._fail_record(record, error, None, actions, now, local=True)
            unsubscribe = unsubscribe_params(record.params)
            self._request(
                "unsubscribe", channel, unsubscribe, [record], actions, now, internal=True
            )
            return
        record.status = SubscriptionStatus.PENDING
        unsubscribe = unsubscribe_params(record.params)
        self._request("unsubscribe", channel, unsubscribe, [record], actions, now, internal=True)
        self._request("subscribe", channel, record.params, [record], actions, now, internal=True)
        if record.params.get("snapshot") is False:
            gate.reset()  # no snapshot will come: the next update restarts the stream

    def _on_level3(self, frame: Level3Frame, now: float) -> list[Action]:
        actions: list[Action] = []
        snapshot = frame.type == "snapshot"
        for update in frame.data:
            symbol = update.symbol
            book = self._l3books.get(symbol)
            if book is None:
                problem = f"level3 message for {symbol}, which is not subscribed"
                actions.append(Emit(ProtocolError(problem, "", now)))
                continue
            resyncing = book.state is BookState.RESYNCING
            if not snapshot and not book.is_live:
                continue  # deltas are dropped until the new snapshot arrives
            try:
                if snapshot:
                    computed = book.apply_snapshot(update.bids, update.asks)
                else:
                    computed = book.apply_update(update.bids, update.asks)
            except (ArithmeticError, ValueError) as exc:
                problem = f"unusable level3 message for {symbol}: {exc}"
                actions.append(Emit(ProtocolError(problem, "", now)))
                self._resync("level3", symbol, problem, actions, now)
                continue
            if computed != update.checksum:
                reason = f"checksum mismatch: computed {computed}, Kraken sent {update.checksum}"
                self._resync("level3", symbol, reason, actions, now)
                continue
            _set(update, "received_at", now)
            if snapshot:
                _set(update, "snapshot", True)
            actions.append(Emit(update))
            if snapshot and resyncing:
                self._resync_finished(actions, now)
        if self._silence_timeout is not None:
            self._heard("level3", frame.data, now)
        return actions

    def _receive_other(self, payload: bytes | str, error: Exception, now: float) -> list[Action]:
        """Classify a frame that is not a well-formed data frame of a known channel."""
        try:
            response = decode_response(payload)
        except _UNDECODABLE:
            pass
        else:
            return self._on_response(response, now)
        try:
            obj = decode_generic(payload)
        except _UNDECODABLE as exc:
            problem = f"malformed JSON: {type(exc).__name__}: {exc}"
            return [Emit(ProtocolError(problem, _excerpt(payload), now))]
        if not isinstance(obj, dict):
            problem = f"expected a JSON object, got {type(obj).__name__}"
            return [Emit(ProtocolError(problem, _excerpt(payload), now))]
        self._last_message_at = now
        if "method" in obj:
            return [Emit(ProtocolError(f"invalid response: {error}", _excerpt(payload), now))]
        for key in ("Error", "error"):
            if isinstance(obj.get(key), str):
                return [Emit(ProtocolError(f"Kraken error: {obj[key]}", _excerpt(payload), now))]
        channel = obj.get("channel")
        if not isinstance(channel, str):
            problem = "frame has neither a channel nor a method"
            return [Emit(ProtocolError(problem, _excerpt(payload), now))]
        if channel not in _KNOWN_CHANNELS:
            problem = f"unknown channel {channel!r}"
            return [Emit(ProtocolError(problem, _excerpt(payload), now))]
        if channel in _PROBLEM_OF:
            salvaged = decode_entries(channel, payload)
            if salvaged is not None:
                return self._salvage_entries(channel, salvaged, now)
        elif channel == "instrument":
            instrument = decode_instrument_entries(payload)
            if instrument is not None:
                return self._salvage_instrument(instrument, now)
        actions: list[Action] = [
            Emit(ProtocolError(f"invalid {channel} frame: {error}", _excerpt(payload), now))
        ]
        if channel in ("book", "level3"):
            # The stream of these books can no longer be trusted: rebuild them. (A broken
            # private frame needs nothing here: the sequence gate sees the hole it left.)
            books: dict[str, OrderBook] | dict[str, L3Book] = (
                self._books if channel == "book" else self._l3books
            )
            for symbol in _symbols_in(obj):
                book = books.get(symbol)
                if book is not None and book.state is BookState.LIVE:
                    self._resync(channel, symbol, f"invalid {channel} frame: {error}", actions, now)
        return actions

    def _on_response(self, response: Response, now: float) -> list[Action]:
        method = response.method
        if method == "pong":
            req_id = response.req_id
            sent = self._pings.pop(req_id, None) if req_id is not None else None
            if sent is not None and req_id == self._ping_req_id:
                # Only a ping that left can be answered: a pong for one still waiting in
                # the outbox proves nothing and must not let another queue behind it.
                self._ping_req_id = self._ping_sent_at = None
            rtt = None if sent is None else now - sent
            return [Emit(Pong(response.req_id, rtt, now))]
        self._last_message_at = now
        if method in ("subscribe", "unsubscribe"):
            if self._private and response.success is not True and response.error in _TOKEN_REFUSED:
                reason = f"Kraken refused this connection's token ({response.error}); reconnecting"
                return self._fail(now, reason, close=CloseConnection(1000, "token refused"))
            actions: list[Action] = []
            self._on_ack(response, actions, now)
            self._settle(actions, now)
            return actions
        if method in TRADING_METHODS and self._host == "auth":
            settled = self._inflight.on_response(response, now)
            return [] if settled is None else [Emit(settled)]
        problem = f"unexpected response to method {method!r}"
        return [Emit(ProtocolError(problem, "", now))]

    def _on_ack(self, response: Response, actions: list[Action], now: float) -> None:
        req_id = response.req_id
        request = self._requests.get(req_id) if req_id is not None else None
        # Kraken answers a failed unsubscribe with method "subscribe": trust our own record.
        method = request.method if request is not None else response.method
        result: dict[str, Any] = {}
        if response.success is True:
            try:
                ack = ack_result(response.result)
            except msgspec.ValidationError as exc:
                problem = f"invalid {response.method} ack: {exc}"
                actions.append(Emit(ProtocolError(problem, "", now)))
                return
            result = response.result
            keys = [(ack.channel, ack.symbol)]
        else:
            channel = response.channel or (request.channel if request is not None else "")
            if request is not None and response.symbol is None:
                keys = sorted(request.keys, key=lambda k: k[1] or "")
            elif not channel:
                keys = [self._pending_key_for(response.symbol)]
            else:
                keys = [(channel, response.symbol)]
        internal = request is not None and request.internal
        asked = request is not None and not request.keys.isdisjoint(keys)
        if request is not None:
            request.keys.difference_update(keys)
            if not request.keys:
                del self._requests[req_id]  # type: ignore[arg-type]
        for key in keys:
            record = self._subs.get(key)
            if response.success is not True:
                error = response.error or "request failed without an error message"
                if method == "unsubscribe":
                    if not internal and record is not None:
                        self._forget(record)
                        self._answer(Unsubscribed(key[0], key[1], req_id, now), actions)
                elif record is not None and record.status is not SubscriptionStatus.UNSUBSCRIBING:
                    self._fail_record(record, error, req_id, actions, now, local=False)
                else:  # nothing (left) to fail: the unsubscribe, if any, ends it
                    self._answer(SubscriptionFailed(key[0], key[1], error, req_id, now), actions)
            elif method == "unsubscribe":
                if internal:
                    continue
                if record is not None:
                    if request is None and record.status is SubscriptionStatus.PENDING:
                        continue  # late, for an unsubscribe that timed out: not this one's
                    self._forget(record)
                self._answer(Unsubscribed(key[0], key[1], req_id, now), actions)
            else:
                if record is None:
                    if not self._replay:
                        if not asked:  # a late answer to our own request is no one's fault
                            what = f"{key[0]} {key[1]}" if key[1] is not None else key[0]
                            problem = (
                                f"Kraken acknowledged a subscription to {what} that this "
                                "client never requested; ignored"
                            )
                            actions.append(Emit(ProtocolError(problem, "", now)))
                        continue
                    record = self._adopt_subscription(key[0], key[1], ack)
                if record.status is not SubscriptionStatus.UNSUBSCRIBING:
                    record.status = SubscriptionStatus.ACTIVE
                record.error = None
                record.local_failure = False
                if not self._stale_armed:
                    self._stale_armed = True
                    self._last_message_at = now
                if self._silence_timeout is not None:
                    self._last_data.setdefault(key, now)
                    if self._next_silence_check is None:
                        self._next_silence_check = now + self._silence_timeout / 4
                if not internal:
                    self._answer(Subscribed(key[0], key[1], req_id, result, now), actions)

    def _pending_key_for(self, symbol: str | None) -> tuple[str, str | None]:
        """The key of the one pending subscription of ``symbol``, for a refusal that names
        no request and no channel (Kraken's own examples carry no ``req_id``)."""
        found = [
            r.key
            for r in self._subs.values()
            if r.symbol == symbol and r.status is SubscriptionStatus.PENDING
        ]
        return found[0] if len(found) == 1 else ("", symbol)

    # ------------------------------------------------------------------ books

    def _precision(self, symbol: str) -> Precision | None:
        found = self._instrument_precisions.get(symbol)
        if found is None:
            found = self._config.precisions.get(symbol)
        return found

    def _new_book(self, symbol: str, depth: int, user_depth: int | None) -> OrderBook:
        precision = self._precision(symbol)
        return OrderBook(
            symbol,
            depth,
            view_depth=user_depth,
            price_precision=None if precision is None else precision.price,
            qty_precision=None if precision is None else precision.qty,
        )

    def _new_l3book(self, symbol: str, depth: int) -> L3Book:
        precision = self._precision(symbol)
        return L3Book(
            symbol,
            depth,
            price_precision=None if precision is None else precision.price,
            qty_precision=None if precision is None else precision.qty,
        )

    def _adopt_subscription(self, channel: str, symbol: str | None, ack: AckResult) -> Subscription:
        """Record a subscription acknowledged without our request (replay mode only)."""
        params: dict[str, Any] = {}
        for name in ("depth", "interval", "event_trigger"):
            value = getattr(ack, name)
            if value is not None:
                params[name] = value
        depth = ack.depth if channel == "book" else None
        record = Subscription(channel, symbol, params, depth)
        self._subs[record.key] = record
        if channel == "book" and symbol is not None:
            self._books[symbol] = self._new_book(symbol, depth or 10, depth or 10)
        elif channel == "level3" and symbol is not None:
            self._l3books[symbol] = self._new_l3book(symbol, ack.depth or 10)
        return record

    def _adopt_book(self, symbol: str, levels: int, now: float) -> OrderBook:
        """A snapshot for a symbol we never subscribed (replay mode only: a capture that
        starts mid-stream)."""
        depth = book_depth_for(max(levels, 1), 0)
        record = self._adopt_subscription("book", symbol, AckResult("book", symbol, depth))
        record.status = SubscriptionStatus.ACTIVE
        return self._books[symbol]

    def _spend_resync(self, record: Subscription, now: float) -> bool:
        """Count one resync against the record's budget; ``False`` once it is spent."""
        config = self._config
        if now - record.resync_window_start > config.resync_window:
            record.resync_count = 0
            record.resync_window_start = now
        record.resync_count += 1
        return record.resync_count <= config.resync_max_attempts

    def _resync(
        self, channel: str, symbol: str, reason: str, actions: list[Action], now: float
    ) -> None:
        """Rebuild one book (L2 ``book`` or ``level3``) from a fresh snapshot; give up after
        the configured budget."""
        config = self._config
        book = self._books[symbol] if channel == "book" else self._l3books[symbol]
        record = self._subs[(channel, symbol)]
        if record.status is SubscriptionStatus.UNSUBSCRIBING:
            # Going away: not rebuilt (a resubscribe would outlive the unsubscribe), and
            # not trusted until then either.
            book.mark_awaiting_snapshot()
            self._resync_finished(actions, now)
            return
        unsubscribe = unsubscribe_params(record.params)
        if not self._spend_resync(record, now):
            error = (
                f"{reason}; gave up after {config.resync_max_attempts} resyncs "
                f"within {config.resync_window:g} s"
            )
            self._fail_record(record, error, None, actions, now, local=True)
            self._request(
                "unsubscribe", channel, unsubscribe, [record], actions, now, internal=True
            )
            self._resync_finished(actions, now)
            return
        book.mark_resyncing()
        record.status = SubscriptionStatus.PENDING
        actions.append(Emit(BookResync(symbol, reason, record.resync_count, now)))
        self._request("unsubscribe", channel, unsubscribe, [record], actions, now, internal=True)
        self._request("subscribe", channel, record.params, [record], actions, now, internal=True)
        if self._state is _S.SUBSCRIBED:
            actions.append(self._transition(Trigger.RESYNC_STARTED, now, f"resyncing {symbol}"))

    def _resync_finished(self, actions: list[Action], now: float) -> None:
        if (
            self._state is _S.RESYNCING
            and not any(b.state is BookState.RESYNCING for b in self._books.values())
            and not any(b.state is BookState.RESYNCING for b in self._l3books.values())
        ):
            actions.append(self._transition(Trigger.RESYNC_FINISHED, now, "no book left resyncing"))

    def _fail_record(
        self,
        record: Subscription,
        error: str,
        req_id: int | None,
        actions: list[Action],
        now: float,
        *,
        local: bool,
    ) -> None:
        record.status = SubscriptionStatus.FAILED
        record.error = error
        record.local_failure = local
        failed = SubscriptionFailed(record.channel, record.symbol, error, req_id, now)
        self._answer(failed, actions)
        if record.channel in ("book", "level3") and record.symbol is not None:
            books = self._books if record.channel == "book" else self._l3books
            book = books[record.symbol]  # every book record has its book
            was_resyncing = book.state is BookState.RESYNCING
            book.mark_failed()
            if was_resyncing:
                self._resync_finished(actions, now)

    def _open_call(
        self,
        req_id: int,
        method: str,
        channel: str,
        records: list[Subscription],
        actions: list[Action],
        now: float,
    ) -> None:
        keys = [record.key for record in records]
        for result in self._calls.open(req_id, method, channel, keys, now):
            actions.append(Emit(result))

    def _answer(self, answer: Answer, actions: list[Action]) -> None:
        """Emit one symbol's answer, then the result of the call it completes, if any."""
        actions.append(Emit(answer))
        result = self._calls.answer(answer, answer.received_at)
        if result is not None:
            actions.append(Emit(result))

    def _settle_calls(self, reason: str, actions: list[Action], now: float) -> None:
        """Settle every open call, failed with ``reason`` (the client closed or gave up)."""
        for result in self._calls.settle_all(reason, now):
            actions.append(Emit(result))

    def _forget(self, record: Subscription) -> None:
        self._subs.pop(record.key, None)
        self._last_data.pop(record.key, None)
        if record.channel == "book" and record.symbol is not None:
            self._books.pop(record.symbol, None)
        elif record.channel == "level3" and record.symbol is not None:
            self._l3books.pop(record.symbol, None)


# The channels whose entries stand alone (a bad one costs only itself), and the check of
# an entry's numbers once decoded (a ticker's are checked as it is decoded).
_PROBLEM_OF: dict[str, Callable[[Any], str | None]] = {
    "trade": trade_problem,
    "ohlc": ohlc_problem,
    "ticker": lambda entry: None,
}


def _unusable_entry(channel: str, problem: str, payload: str, now: float) -> Emit:
    """The ``ProtocolError`` standing for one entry of a message that could not be used."""
    error = (
        f"Kraken sent an unusable {channel} entry: {problem}; "
        "the message's other entries are delivered"
    )
    return Emit(ProtocolError(error, payload, now))


def _raw_excerpt(raw: msgspec.Raw) -> str:
    return bytes(raw)[:_EXCERPT].decode("utf-8", "replace")


def _entry_excerpt(entry: msgspec.Struct) -> str:
    return msgspec.json.encode(entry)[:_EXCERPT].decode("utf-8", "replace")


def _decoded(salvaged: Salvaged, actions: list[Action], now: float) -> tuple[Any, ...]:
    """The entries that decoded; a ``ProtocolError`` for each other one."""
    decoded = []
    for entry, raw in salvaged:
        if isinstance(entry, str):
            actions.append(_unusable_entry("instrument", entry, _raw_excerpt(raw), now))
        else:
            decoded.append(entry)
    return tuple(decoded)


def _usable(
    entries: Sequence[_E], problem_of: Callable[[_E], str | None], actions: list[Action], now: float
) -> tuple[_E, ...]:
    """The ``entries`` whose numbers are usable; a ``ProtocolError`` for each other one."""
    usable = []
    for entry in entries:
        problem = problem_of(entry)
        if problem is None:
            usable.append(entry)
        else:
            actions.append(_unusable_entry("instrument", problem, _entry_excerpt(entry), now))
    return tuple(usable)


_KNOWN_CHANNELS = frozenset(
    {
        "book",
        "ticker",
        "trade",
        "ohlc",
        "status",
        "instrument",
        "heartbeat",
        "executions",
        "balances",
        "level3",
    }
)


def _symbols_in(obj: dict[str, Any]) -> list[str]:
    """The symbols named in a generic frame's ``data`` entries, when it has any."""
    data = obj.get("data")
    if not isinstance(data, list):
        return []
    return [e["symbol"] for e in data if isinstance(e, dict) and isinstance(e.get("symbol"), str)]
