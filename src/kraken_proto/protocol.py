"""KrakenProtocol: the sans-IO core. Bytes and time in; events and IO requests out.

The object never touches a socket, a clock or a thread. A driver feeds it what happened
(``connection_made``, ``receive_data``, ``connection_lost``, ``handle_timer`` at
``next_deadline()``, ...) with its own monotonic ``now``, and performs the returned actions
in order.

``KrakenProtocol`` itself only routes: each concern is one part with one job, and the parts
talk through methods and return values, never through each other's state.

- :class:`~kraken_proto.connection.Connection`: the state table, connect/token/reconnect
  deadlines, backoff and liveness (staleness, pings);
- :class:`~kraken_proto.subscriber.Subscriber`: subscriptions (their status table), their
  requests and acks, the settle-once calls, the resync budget, silent subscriptions;
- :class:`~kraken_proto.books.Books`: the L2 and L3 books, with one snapshot, checksum and
  resync path, and the count of books resyncing;
- :class:`~kraken_proto.streams.PrivateStreams`: sequence gates and the gap policy;
- :class:`~kraken_proto.trader.Trader`: trading requests, responses, the rate counter and
  the dead man's switch;
- :class:`~kraken_proto.outbox.Outbox`: pacing of everything sent;
- :class:`~kraken_proto.channels.MarketChannels`: the stateless market channels.

What the parts count for monitoring goes into one :class:`~kraken_proto.counters.Tally`
(:attr:`KrakenProtocol.counters`); counting every message is opt-in
(:meth:`KrakenProtocol.count_messages`), the policy of a
:class:`~kraken_proto.counters.MessageCounter`, and takes a path of its own, so the default
path pays nothing for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kraken_proto.actions import Action, CloseConnection, Emit, ReconnectAfter
from kraken_proto.book import OrderBook
from kraken_proto.books import Books, l2_books, l3_books
from kraken_proto.channels import MarketChannels, excerpt
from kraken_proto.config import ClientConfig
from kraken_proto.connection import SUBSCRIBABLE_STATES, Connection
from kraken_proto.counters import (
    IGNORED,
    RESPONSE,
    UNKNOWN,
    MessageCounter,
    ProtocolCounters,
    Tally,
)
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import ProtocolError
from kraken_proto.host import Host
from kraken_proto.level3 import L3Book, Level3Frame
from kraken_proto.outbox import Outbox
from kraken_proto.private import BalancesFrame, ExecutionsFrame
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState, Trigger
from kraken_proto.streams import PrivateStreams
from kraken_proto.subscriber import MovedListener, Subscriber
from kraken_proto.subscriptions import (
    Subscription,
    SubscriptionStatus,
    SubscriptionsView,
    SubscriptionTrigger,
)
from kraken_proto.timing import NEVER
from kraken_proto.trader import Trader
from kraken_proto.trading import TRADING_METHODS, TradingRequest
from kraken_proto.wire import (
    UNDECODABLE,
    BookFrame,
    HeartbeatFrame,
    InstrumentFrame,
    OHLCFrame,
    Response,
    StatusFrame,
    TickerFrame,
    TradeFrame,
    decode_data_frame,
    decode_response,
)

__all__ = ["KrakenProtocol"]

_S = ConnectionState
# Refusals of a subscription that mean this connection's token is no good: reconnect for a
# fresh one instead of failing the subscription.
_TOKEN_REFUSED = frozenset({"ESession:Invalid session", "EAPI:Invalid token"})
_BY_CLIENT = "closed by the client"


def _byte_size(payload: bytes | str) -> int:
    """A message's size in UTF-8 bytes (a str that is ASCII, as Kraken's are, costs no copy)."""
    if isinstance(payload, bytes) or payload.isascii():
        return len(payload)
    return len(payload.encode("utf-8", "surrogatepass"))


def _too_large(size: int, payload: bytes | str, limit: int, now: float) -> list[Action]:
    """The ``ProtocolError`` for a message of ``size`` bytes, above ``max_message_size``."""
    problem = f"message of {size} bytes exceeds max_message_size ({limit})"
    return [Emit(ProtocolError(problem, excerpt(payload), now))]


def _following(books: Mapping[str, Books[Any]]) -> MovedListener:
    """The subscriber's ``moved`` listener: a subscription that moved is followed by its
    book (the one of its symbol in ``books``, by channel), if it has one."""

    def moved(
        record: Subscription,
        trigger: SubscriptionTrigger,
        status: SubscriptionStatus | None,
        actions: list[Action],
        now: float,
    ) -> None:
        part = books.get(record.channel)
        if part is not None and record.symbol is not None:
            part.follow(record, trigger, status, actions, now)

    return moved


def _handlers(
    l2: Books[Any], l3: Books[Any], channels: MarketChannels, streams: PrivateStreams
) -> dict[type, Callable[[Any, float], list[Action]]]:
    """Which part handles the data frames of each type."""
    return {
        BookFrame: l2.on_frame,
        TradeFrame: channels.on_trades,
        TickerFrame: channels.on_ticker,
        OHLCFrame: channels.on_candles,
        HeartbeatFrame: channels.on_heartbeat,
        StatusFrame: channels.on_status,
        InstrumentFrame: channels.on_instrument,
        ExecutionsFrame: streams.on_frame,
        BalancesFrame: streams.on_frame,
        Level3Frame: l3.on_frame,
    }


class KrakenProtocol:
    """The Kraken v2 WebSocket client protocol, without IO.

    One object per connection, to one of Kraken's three hosts (:class:`Host`):

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
        self._host = host = Host.of(config, private=private, level3=level3)
        self._private = host.needs_token
        self._url = host.url(config)
        ids = itertools.count(1)  # req_id of every request, whichever part sends it
        self._tally = tally = Tally()
        self._counter = MessageCounter(tally)  # counting every message: opt-in
        self._outbox = outbox = Outbox(config.max_requests_per_second, config.request_burst)
        self._conn = Connection(config, self._url, outbox, ids, tally)
        self._open = False  # the connection is open: kept by _transition
        # receive_data's own path applies: open, and messages are not counted. Kept by
        # _transition and count_messages; read on every frame.
        self._fast = False
        self._heard_at = 0.0  # when Kraken last spoke (pongs do not count): liveness
        # A str of n characters holds at most 4n bytes: only long ones need counting.
        self._size_check_from = config.max_message_size // 4
        books: dict[str, Books[Any]] = {}  # by channel; filled once built, on the subscriber
        moved = _following(books)
        self._subs = subs = Subscriber(
            config, host, replay=replay, outbox=outbox, ids=ids, moved=moved
        )
        changed = self._resyncs_changed
        self._l2 = l2_books(config, replay=replay, subscriber=subs, changed=changed, tally=tally)
        self._l3 = l3_books(config, replay=replay, subscriber=subs, changed=changed, tally=tally)
        books.update(book=self._l2, level3=self._l3)
        self._trader = Trader(config, host, outbox, ids)
        self._streams = PrivateStreams(config, subs, self._trader.track_executions, tally)
        silence = config.silent_subscription_timeout is not None
        self._channels = MarketChannels(subs.heard, books, silence=silence)
        self._handlers = _handlers(self._l2, self._l3, self._channels, self._streams)
        if config.count_messages:
            self._counter.start()

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._conn.state

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
    def host(self) -> Host:
        """Which of Kraken's hosts this connection is for."""
        return self._host

    def book(self, symbol: str) -> OrderBook | None:
        """The maintained L2 book of ``symbol``, or ``None`` if it is not subscribed.

        Read it through its query methods; they refuse to answer unless the book is live.
        """
        return self._l2.get(symbol)

    def l3_book(self, symbol: str) -> L3Book | None:
        """The maintained level3 book of ``symbol``, or ``None`` if it is not subscribed."""
        return self._l3.get(symbol)

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        return self._subs.view()

    @property
    def pending_calls(self) -> int:
        """Subscribe and unsubscribe calls not settled yet."""
        return self._subs.pending_calls

    @property
    def last_failure(self) -> str | None:
        """Why the connection last failed, or ``None`` if it has not failed since it last
        worked (``subscribed``) or since ``connect()`` after a close."""
        return self._conn.last_failure

    @property
    def failed_attempts(self) -> int:
        """Connection attempts that failed in a row since the connection last worked."""
        return self._conn.failures

    @property
    def can_submit(self) -> bool:
        """Whether :meth:`submit` can send a trading request now: a private connection,
        open and authenticated."""
        return self._trader.can_submit(self._conn.state)

    @property
    def pending_requests(self) -> int:
        """Trading requests submitted and not settled yet."""
        return self._trader.pending

    @property
    def counters(self) -> ProtocolCounters:
        """What this protocol counted so far, for monitoring (a frozen snapshot): book
        resyncs and checksum failures, sequence gaps, connection attempts and reconnects,
        ping round trips and, once :meth:`count_messages` is on, every message received by
        channel with its size."""
        return self._tally.snapshot()

    def count_messages(self, *, max_symbols: int = 0) -> None:
        """Count every message received from now on (``ClientConfig(count_messages=True)``:
        from the start), by channel with its size, and with ``max_symbols`` > 0 the market
        entries per symbol (:class:`~kraken_proto.counters.MessageCounter` says how).
        Counting takes a path of its own (about 0.2 µs a message more, as much again per
        symbol entries); without it the per-message path is untouched."""
        self._counter.start(max_symbols)
        self._fast = False

    @property
    def dead_man_switch(self) -> tuple[int, float] | None:
        """``(timeout, interval)`` of the armed dead man's switch, or ``None``."""
        return self._trader.dead_man_switch

    def rate_counter(self, symbol: str, now: float) -> RateCounterState:
        """The trading rate counter of ``symbol`` as tracked locally (requests sent through
        this protocol, and orders seen on ``executions``)."""
        return self._trader.rate_counter(symbol, now)

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called (driver's clock), or ``None``.

        See "The timer contract" in ``docs/own-driver.md`` for which inputs can move it
        earlier; after ``handle_timer(now)`` it is always ``None`` or later than ``now``.
        """
        if not self._open:
            return self._conn.waiting_deadline()
        best = self._subs.deadline(self._outbox.deadline())
        best = self._conn.deadline(self._heard_at, best)
        if self._private:
            best = self._streams.deadline(self._trader.deadline(best))
        return None if best == NEVER else best

    # ------------------------------------------------------------------ inputs

    def connect(self, now: float) -> list[Action]:
        """Start (or restart) the connection: returns ``OpenConnection``."""
        if self._conn.state is _S.CLOSED:
            self._conn.restart()
        start = self._transition(Trigger.CONNECT, now, "connect requested")
        return [start, self._conn.begin_connect(now)]

    def connection_made(self, now: float) -> list[Action]:
        """The driver opened the WebSocket asked for by the last ``OpenConnection``."""
        fetch = self._conn.opened(now, needs_token=self._private)  # raises unless connecting
        self._heard_at = now
        if fetch is not None:
            opened = self._transition(Trigger.OPENED_PRIVATE, now, "connected; fetching a token")
            return [opened, fetch]
        actions: list[Action] = [self._transition(Trigger.OPENED_PUBLIC, now, "connected")]
        self._subs.connected(None, actions, now)
        self._settle(actions, now)
        return actions

    def token_received(
        self, token: str, now: float, *, connection: int | None = None
    ) -> list[Action]:
        """The driver obtained the WebSocket token asked for by ``FetchToken``.

        Pass the ``FetchToken``'s ``connection``: an answer for a connection that is gone
        is then dropped (returns ``[]``), so a driver need not track that itself.
        """
        if self._conn.stale_token_answer(connection, "token_received"):
            return []
        if not isinstance(token, str) or not token:
            raise LocalProtocolError("token_received needs the non-empty token string")
        self._conn.authenticated()
        actions: list[Action] = [self._transition(Trigger.AUTHENTICATED, now, "token received")]
        self._subs.connected(token, actions, now)
        self._settle(actions, now)
        self._trader.connected(token, actions, now)
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
        if self._conn.stale_token_answer(connection, "token_failed"):
            return []
        reason = f"could not get a WebSocket token: {error}"
        reason = f"{reason} (not retrying)" if terminal else reason
        return self._fail(now, reason, close="no WebSocket token", terminal=terminal)

    def receive_data(self, payload: bytes | str, now: float) -> list[Action]:
        """One complete WebSocket message from the server.

        Never raises for bad remote input: that becomes a ``ProtocolError`` event. An entry
        whose numbers are unusable (not finite, out of range, negative where Kraken's never
        are: see :mod:`kraken_proto.wire`) becomes a ``ProtocolError`` in its place and the
        message's other entries are delivered; a private (sequenced) message holding one is
        dropped whole, so the sequence check sees the hole.
        """
        if not self._fast:
            return self._receive_slow(payload, now)
        if len(payload) > self._size_check_from:
            size = _byte_size(payload)
            limit = self._config.max_message_size
            if size > limit:
                return _too_large(size, payload, limit, now)
        try:
            frame = decode_data_frame(payload)
        except UNDECODABLE as exc:
            return self._receive_other(payload, exc, now)
        self._heard_at = now
        return self._handlers[type(frame)](frame, now)

    def _receive_slow(self, payload: bytes | str, now: float) -> list[Action]:
        """:meth:`receive_data` while not open, or while counting messages: the same, with
        each message handed to the counter (see :meth:`count_messages`)."""
        counter = self._counter
        if not self._open:
            self._conn.data_while_closed()  # racing a close we already acted on, or raises
            if counter.on:
                counter.count(IGNORED, _byte_size(payload))
            return []
        size = len(payload) if type(payload) is bytes or payload.isascii() else _byte_size(payload)
        limit = self._config.max_message_size
        if size > limit:
            counter.count(UNKNOWN, size)
            return _too_large(size, payload, limit, now)
        try:
            frame = decode_data_frame(payload)
        except UNDECODABLE as exc:
            return self._receive_other(payload, exc, now, size)
        counter.frame(frame, size)
        self._heard_at = now
        return self._handlers[type(frame)](frame, now)

    def connection_lost(
        self, now: float, exc: BaseException | None = None, *, close_code: int | None = None
    ) -> list[Action]:
        """The socket closed or could not be opened. ``close_code`` if a close frame came."""
        if self._conn.lost_already():
            return []
        reason, terminal = Connection.why_lost(exc, close_code)
        return self._fail(now, reason, terminal=terminal)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline that is due at ``now``. Spurious calls are harmless.

        Afterwards :meth:`next_deadline` is ``None`` or later than ``now``.
        """
        conn = self._conn
        if not self._open:
            timeout = conn.connect_expired(now)
            if timeout is not None:
                return self._fail(now, timeout, close=timeout)
            if conn.retry_due(now):
                retry = self._transition(Trigger.RETRY, now, "reconnecting")
                return [retry, conn.begin_connect(now)]
            return []
        reason = conn.expired(now, self._heard_at) or self._subs.silent(now)
        if reason is not None:
            return self._fail(now, reason, close=reason)
        actions: list[Action] = []
        self._subs.expire(actions, now)
        if self._private:
            self._trader.expire(actions, now)
            self._streams.timers(actions, now)
            self._trader.refresh(actions, now)
        conn.ping(actions, now)
        self._outbox.flush(actions, now)
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
        connected = self._conn.state in SUBSCRIBABLE_STATES
        return self._subs.subscribe(channel, symbols, params, now, connected=connected)

    def unsubscribe(
        self, channel: str, symbols: Sequence[str] | str | None, now: float, **params: Any
    ) -> tuple[int, list[Action]]:
        """Stop a subscription; returns the call's ``req_id`` and the actions.

        ``depth``/``interval`` are taken from the subscription itself (Kraken needs them
        echoed), so passing them is optional. One ``SubscriptionResult`` settles the call,
        at once while disconnected (the subscription is simply forgotten). An unanswered
        subscribe call of these symbols settles now, failed for them ("superseded").
        """
        connected = self._conn.state in SUBSCRIBABLE_STATES
        return self._subs.unsubscribe(channel, symbols, params, now, connected=connected)

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
        return self._trader.submit(request, now, self._conn.state)

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
        return self._trader.arm(timeout, interval, now, self._conn.state)

    def disarm_dead_man_switch(self, now: float) -> list[Action]:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        return self._trader.disarm(now, self._conn.state)

    def close(self, now: float) -> list[Action]:
        """Close for good (until ``connect()`` is called again). Idempotent.

        An armed dead man's switch is disarmed first (``timeout`` 0), so a clean close does
        not cancel the orders. Calls made while closed (waiting for ``connect()``) settle.
        """
        state = self._conn.state
        actions: list[Action] = []
        if state is _S.CLOSED:
            self._subs.settle_calls(_BY_CLIENT, actions, now)
            return actions
        self._trader.close(actions)
        if state is _S.CONNECTING or self._open:
            actions.append(CloseConnection(1000, _BY_CLIENT))
        self._reset(actions, now, _BY_CLIENT)
        self._subs.settle_calls(_BY_CLIENT, actions, now)
        actions.append(self._transition(Trigger.CLOSE, now, _BY_CLIENT))
        return actions

    # ------------------------------------------------------------------ composition

    def _transition(self, trigger: Trigger, now: float, reason: str, **failure: Any) -> Emit:
        """Move the connection (``failure``: its ``retry`` and ``delay``); keep ``_open``
        and ``_fast``."""
        emit = self._conn.move(trigger, now, reason, **failure)
        self._open = is_open = self._conn.is_open
        self._fast = is_open and not self._counter.on
        return emit

    def _fail(
        self, now: float, reason: str, *, close: str | None = None, terminal: bool = False
    ) -> list[Action]:
        """The connection failed for ``reason``: closed first if ``close`` is given (the close
        frame's reason, code 1000), then retried with backoff or given up (``terminal``)."""
        actions: list[Action] = [] if close is None else [CloseConnection(1000, close)]
        self._reset(actions, now, reason)
        conn = self._conn
        delay = conn.failed(now, reason, terminal=terminal)
        if delay is None:
            if not terminal:
                reason = f"{reason}; gave up after {conn.attempt} reconnect attempts"
            self._subs.settle_calls(reason, actions, now)
            actions.append(self._transition(Trigger.GIVE_UP, now, reason))
            return actions
        failed = self._transition(Trigger.FAILED, now, reason, retry=conn.attempt, delay=delay)
        actions += (failed, ReconnectAfter(delay, reason))
        return actions

    def _reset(self, actions: list[Action], now: float, reason: str) -> None:
        """Forget everything tied to the socket; keep what must be replayed."""
        if self._private:
            self._trader.connection_lost(actions, now, reason)
            self._streams.reset()
        self._outbox.clear()
        self._conn.reset()
        self._subs.connection_lost(actions, now)

    def _settle(self, actions: list[Action], now: float) -> None:
        """SUBSCRIBING becomes SUBSCRIBED once every initial request was answered."""
        if self._conn.state is not _S.SUBSCRIBING or self._subs.awaiting_initial:
            return
        actions.append(self._transition(Trigger.SETTLED, now, "all subscriptions answered"))
        self._conn.settled()
        self._resyncs_changed(actions, now, "a book is resyncing")  # resynced meanwhile?

    def _resyncs_changed(self, actions: list[Action], now: float, reason: str) -> None:
        """A book started or stopped resyncing: SUBSCRIBED ⇄ RESYNCING as the count says."""
        state = self._conn.state
        resyncing = self._l2.resyncing or self._l3.resyncing
        if resyncing and state is _S.SUBSCRIBED:
            actions.append(self._transition(Trigger.RESYNC_STARTED, now, reason))
        elif not resyncing and state is _S.RESYNCING:
            actions.append(self._transition(Trigger.RESYNC_FINISHED, now, reason))

    # ------------------------------------------------------------------ other frames

    def _receive_other(
        self, payload: bytes | str, error: Exception, now: float, size: int = -1
    ) -> list[Action]:
        """Classify a frame that is not a well-formed data frame of a known channel (counted
        if its ``size`` is given: on the counting path)."""
        try:
            response = decode_response(payload)
        except UNDECODABLE:
            if size >= 0:
                self._counter.count(UNKNOWN, size)
            # Neither a data frame nor a response: what the market channels make of it.
            actions, heard = self._channels.unusable_frame(payload, error, now)
            if heard:
                self._heard_at = now
            return actions
        if size >= 0:
            self._counter.count(RESPONSE, size)
        return self._on_response(response, now)

    def _on_response(self, response: Response, now: float) -> list[Action]:
        method = response.method
        if method == "pong":
            return [self._conn.pong(response, now)]
        self._heard_at = now
        if method in ("subscribe", "unsubscribe"):
            if self._private and response.success is not True and response.error in _TOKEN_REFUSED:
                reason = f"Kraken refused this connection's token ({response.error}); reconnecting"
                return self._fail(now, reason, close="token refused")
            actions: list[Action] = []
            if self._subs.on_ack(response, actions, now):
                self._conn.arm_stale()
            self._settle(actions, now)
            return actions
        if method in TRADING_METHODS and self._host is Host.AUTH:
            return self._trader.on_response(response, now)
        problem = f"unexpected response to method {method!r}"
        return [Emit(ProtocolError(problem, "", now))]
