"""The IO-free half of every bundled driver: all that happens between the protocol and the user.

A :class:`Driver` owns a :class:`~kraken_proto.KrakenProtocol`, the
:class:`~kraken_transports.router.EventRouter` (callbacks, the bounded buffer, counters) and
every wait of the client's callers. The driver's IO, a :class:`DriverIO`, tells it what
happened (:meth:`Driver.connected`, :meth:`Driver.received`, :meth:`Driver.lost`,
:meth:`Driver.timer`, :meth:`Driver.token_answered`) and performs what it asks for
(:meth:`DriverIO.open`, :meth:`DriverIO.send`, :meth:`DriverIO.close`,
:meth:`DriverIO.fetch_token`). So the asyncio, socket and threaded clients answer every call
the same way, with the same errors, and differ only in how they do IO and how a caller waits.

Waits are :class:`Waiter` objects: a subscribe or unsubscribe call is settled by its
``SubscriptionResult``, a trading call by its ``OrderResponse`` (both found by ``req_id``),
``wait_until`` by a ``StateChanged``. A waiter never blocks: the client decides how its
caller waits (an asyncio future, its own loop, a condition variable) and gives up with
:meth:`Driver.expired` when its timeout runs out.

With ``config.latency`` the driver also tracks latencies (``latency``, a
:class:`~kraken_proto.analytics.LatencyTracker`) of the events as they are delivered: when
iteration takes them from the buffer, or, in a client with ``buffer_events=False``, when a
message's events are handed to the callbacks; a weighted sample of them under load
(:class:`~kraken_proto.analytics.LatencySampler`). Pongs (``Driver._on_pong``) give the
clock offset. Turned off, it costs one attribute check per message.

Logger ``kraken_transports.connection``: every connection failure at WARNING (what failed,
the attempt, the delay before the next one), and giving up at ERROR;
``kraken_transports.driver``: faults of the driver itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from kraken_proto.actions import (
    Action,
    CloseConnection,
    Emit,
    FetchToken,
    OpenConnection,
    Send,
)
from kraken_proto.analytics.latency import LATENCY_CHANNELS, LatencySampler, LatencyTracker
from kraken_proto.backpressure import BufferCounts, EventBuffer
from kraken_proto.config import BackpressureConfig, ClientConfig
from kraken_proto.counters import ProtocolCounters
from kraken_proto.errors import (
    AuthenticationError,
    KrakenConnectionError,
    KrakenError,
    LocalProtocolError,
    SubscriptionError,
    WaitTimeoutError,
)
from kraken_proto.events import (
    Event,
    Pong,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    Unsubscribed,
)
from kraken_proto.host import Host
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView
from kraken_proto.trading import OrderResponse, TradingRequest
from kraken_transports.base import (
    IN_FLIGHT,
    as_state,
    check_symbols,
    describe_failure,
    redact_frame,
    request_label,
)
from kraken_transports.router import ClientStats, EventRouter

__all__ = ["Acks", "Driver", "DriverIO", "DriverSnapshot", "FrameHook", "Waiter"]

T = TypeVar("T")

log = logging.getLogger("kraken_transports.driver")
connection_log = logging.getLogger("kraken_transports.connection")

Acks = list[Subscribed | Unsubscribed]
"""What a subscribe or unsubscribe call returns: one ack per symbol, in the call's order."""

FrameHook = Callable[[str, str | bytes, float], None]
"""``hook(direction, text, now)``: called for every WebSocket message, ``"in"`` or ``"out"``,
with the client's clock; the WebSocket token is shown as ``***``."""

_CLOSED = ConnectionState.CLOSED
_USER_CLOSE = "closed by the client"  # the core's reason for a close() it was asked for
_EXCERPT = 200
_START_HINT = "call start() first (entering a 'with' or 'async with' block does)"
_REGISTER_HINT = ", or pass wait=False to only register it (sent once the client is started)"


class DriverIO(Protocol):
    """The IO a :class:`Driver` asks for; each bundled driver implements it once."""

    def open(self, url: str, now: float) -> None:
        """Start opening a WebSocket to ``url``; report ``connected`` or ``lost`` later."""

    def send(self, text: str) -> bool:
        """Write ``text`` on the open WebSocket; False if there is none (nothing sent)."""

    def close(self, action: CloseConnection, now: float) -> None:
        """Close the current socket (or abort its connect) with the code and reason given."""

    def fetch_token(self, action: FetchToken) -> None:
        """Start the token request; hand the outcome to ``token_answered`` later."""

    def performed(self) -> None:
        """Called after every batch of actions: any input may have moved ``next_deadline()``."""


class DriverSnapshot(msgspec.Struct, frozen=True):
    """Everything a driver counts, taken at one moment (:meth:`Driver.snapshot`): what
    ``kraken_transports.metrics`` exports.

    ``url`` and ``host`` name the connection, ``state`` is where it is; ``stats`` the
    client's counters (``client.stats``), ``events`` the events by type
    (:class:`~kraken_proto.backpressure.BufferCounts`); ``counters`` the protocol's
    (:class:`~kraken_proto.counters.ProtocolCounters`); ``subscriptions`` every
    subscription; ``latency`` a copy of the latency tracker (``None`` unless
    ``ClientConfig(latency=True)``).
    """

    url: str
    host: str
    state: ConnectionState
    stats: ClientStats
    events: BufferCounts
    counters: ProtocolCounters
    subscriptions: SubscriptionsView
    latency: LatencyTracker | None


class Waiter(Generic[T]):
    """One caller's wait for an answer, settled once by the :class:`Driver` (never blocks).

    ``what`` and ``note`` describe the wait for its timeout error, ``closed`` for the error
    raised when the client closes first.
    """

    __slots__ = ("_callbacks", "_error", "_value", "closed", "done", "note", "req_id", "what")

    def __init__(self, what: str, closed: str) -> None:
        self.what = what
        self.closed = closed
        self.note = ""
        self.req_id: int | None = None
        self.done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[], object]] = []

    def on_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once settled (at once if it is)."""
        if self.done:
            callback()
        else:
            self._callbacks.append(callback)

    def result(self) -> T:
        """The value it was settled with, or raise its error."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def settle(self, value: T | None, error: BaseException | None = None) -> None:
        """Settle with ``value`` (or ``error``); later calls are ignored."""
        if self.done:
            return
        self.done = True
        self._value, self._error = value, error
        for callback in self._callbacks:
            callback()
        self._callbacks.clear()


class Driver:
    """The protocol, the router and the waits of one client; see the module docstring.

    Not thread-safe: a driver that runs IO on another thread calls it under its own lock.
    ``settled`` counts the waiters settled so far (a threaded driver polls it to end a step
    early). ``clock`` is the client's clock (the ``now`` it passes), read only to stamp
    deliveries when ``config.latency`` is on (required then); ``wall_clock`` its UTC wall
    clock (``time.time``), read at each connection to map exchange times before a pong
    gives a better offset.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        buffer_events: bool = True,
        frame_hook: FrameHook | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config = config if config is not None else ClientConfig()
        self.proto = KrakenProtocol(config, private=private, level3=level3)
        self.router = EventRouter(config.backpressure, buffer_events=buffer_events)
        self.buffer_events = buffer_events
        self.frame_hook = frame_hook
        self.io: DriverIO = _NoIO()
        self.settled = 0
        self._waits: dict[int, Waiter[Any]] = {}  # by req_id: calls and trading requests
        self._states: list[tuple[ConnectionState, Waiter[None]]] = []
        self._unsent: list[tuple[TradingRequest, Waiter[OrderResponse]]] = []
        self._cause: BaseException | None = None  # what the IO saw behind the last loss
        self._failure = ""
        self._failure_key = (0, "")
        self._closed_reason = ""
        self._handlers: dict[type, Callable[[Any], None]] = {  # what an event settles
            StateChanged: self._on_state,
            SubscriptionResult: self._on_result,
            OrderResponse: self._on_order,
        }
        self.latency: LatencyTracker | None = None
        """The latency tracker (``config.latency``), else ``None``."""
        if config.latency:
            self._track_latency(clock, wall_clock)

    def _track_latency(
        self, clock: Callable[[], float] | None, wall_clock: Callable[[], float] | None
    ) -> None:
        if clock is None:
            raise LocalProtocolError(
                "config.latency needs the client's clock: pass Driver(..., clock=...)"
            )
        self.latency = tracker = LatencyTracker()
        self._clock = clock
        self._wall_clock = wall_clock
        delivered = LatencySampler(self.config.latency_sample_rate)
        self._frame: str | bytes = ""  # the last message received
        self._handlers[Pong] = self._on_pong
        self._at_callbacks: LatencySampler | None = None
        if self.buffer_events:  # delivered when taken from the buffer
            router = self.router
            buffer = _TimedBuffer(self.config.backpressure, tracker, delivered, clock)
            router.buffer, router.push = buffer, buffer.push
        else:  # delivered when the callbacks are called
            self._at_callbacks = delivered

    def snapshot(self) -> DriverSnapshot:
        """Every count now (see :class:`DriverSnapshot`); call it under the client's lock."""
        proto = self.proto
        router = self.router
        tracker = self.latency
        return DriverSnapshot(
            url=proto.url,
            host=proto.host.value,
            state=proto.state,
            stats=router.stats(),
            events=router.counts(),
            counters=proto.counters,
            subscriptions=proto.subscriptions,
            latency=None if tracker is None else tracker.copy(),
        )

    # ------------------------------------------------------------------ inputs from the IO

    def connect(self, now: float) -> None:
        """Start (or restart) connecting."""
        self.perform(self.proto.connect(now), now)

    def close(self, now: float) -> None:
        """Close for good (until :meth:`connect`); idempotent."""
        self.perform(self.proto.close(now), now)

    def connected(self, now: float) -> None:
        """The WebSocket asked for by the last ``open`` is open."""
        if self.latency is not None and self._wall_clock is not None:
            self.latency.wall_clock(self._wall_clock(), self._clock())
        self.perform(self.proto.connection_made(now), now)

    def received(self, payload: str | bytes, now: float) -> None:
        """One complete WebSocket message arrived."""
        router = self.router
        router.frames_in += 1
        if self.frame_hook is not None:
            self._hook("in", redact_frame(payload), now)
        try:
            actions = self.proto.receive_data(payload, now)
        except Exception as exc:  # a core bug: report it, keep the connection
            log.exception("receive_data raised")
            excerpt = payload[:_EXCERPT]
            text = excerpt if isinstance(excerpt, str) else excerpt.decode("utf-8", "replace")
            problem = f"frame not handled: {type(exc).__name__}: {exc}"
            actions = [Emit(ProtocolError(problem, text, now))]
        if self.latency is not None:
            self._frame = payload  # for its Pong, if any (see _on_pong)
            if self._at_callbacks is not None:
                self._handed_over(actions, now)
        self.perform(actions, now)

    def discarded(self, problem: str, excerpt: str, now: float) -> None:
        """A message arrived that the IO had to discard (too large): report it."""
        self.router.frames_in += 1
        self.perform([Emit(ProtocolError(problem, excerpt, now))], now)

    def lost(self, now: float, exc: BaseException | None, close_code: int | None = None) -> None:
        """The current WebSocket closed or could not be opened; ``exc`` is why, if known."""
        self._cause = exc
        self.perform(self.proto.connection_lost(now, exc, close_code=close_code), now)

    def timer(self, now: float) -> None:
        """``proto.next_deadline()`` has come."""
        try:
            actions = self.proto.handle_timer(now)
        except Exception:  # a core bug: logged; the next input re-arms
            log.exception("handle_timer raised")
            actions = []
        self.perform(actions, now)

    def token_answered(
        self, fetch: FetchToken, answer: str | AuthenticationError, now: float
    ) -> None:
        """The token request of ``fetch`` ended with a token or an ``AuthenticationError``;
        an answer for a connection that is gone is dropped by the protocol."""
        proto = self.proto
        if isinstance(answer, AuthenticationError):
            log.debug("token request failed: %s", answer.error)
            terminal = answer.terminal
            actions = proto.token_failed(
                answer.error, now, terminal=terminal, connection=fetch.connection
            )
        else:
            actions = proto.token_received(answer, now, connection=fetch.connection)
        if not actions:
            log.debug("token result dropped: the connection that asked for it is gone")
        self.perform(actions, now)

    # ------------------------------------------------------------------ performing

    def perform(self, actions: list[Action], now: float) -> None:
        """Perform ``actions`` in order, then tell the IO (``performed``). Never raises."""
        router = self.router
        push, release, handlers = router.push, router.release, self._handlers
        for action in actions:
            if type(action) is not Emit:
                self._perform_other(action, now)
                continue
            event = action.event
            try:
                # router.dispatch inlined (one call less per event): callbacks, buffer
                typed, catch_all = router.routes
                etype = type(event)
                callbacks = typed.get(etype, catch_all)
                if callbacks:
                    if release is None:
                        for callback in callbacks:
                            try:
                                callback(event)
                            except Exception as exc:
                                router.failed(callback, event, exc)
                    else:
                        router.call(callbacks, event)
                if push is not None:
                    push(event, now)
                elif router.handed is not None:  # no buffer, metrics on: count by type
                    handed = router.handed
                    handed[etype] = handed.get(etype, 0) + 1
                if etype in handlers:
                    handlers[etype](event)
            except Exception:
                log.exception("driver error while performing Emit")
        if self._unsent and self.proto.can_submit:
            self._send_unsent(now)
        self.io.performed()

    def _handed_over(self, actions: list[Action], now: float) -> None:
        """In a callback-only client tracking latency, the events of a message received at
        ``now`` are delivered as they are handed to the callbacks: record a sample of them
        (the time is read once, after the protocol has handled the message)."""
        sampler = self._at_callbacks
        tracker = self.latency
        assert sampler is not None and tracker is not None
        delivered: float | None = None
        for action in actions:
            if type(action) is Emit and type(action.event) in _TRACKED:
                left = sampler.left
                if left > 1:
                    sampler.left = left - 1
                    continue
                if delivered is None:
                    delivered = self._clock()
                tracker.record(action.event, delivered, sampler.sample(now))

    def _on_pong(self, event: Pong) -> None:
        """A clock-offset sample from a pong and its message (the last one received: a
        ``Pong`` is only ever emitted by ``receive_data``)."""
        assert self.latency is not None
        self.latency.pong(event, self._frame)

    def _perform_other(self, action: Action, now: float) -> None:
        """Perform one action other than ``Emit``."""
        io = self.io
        kind = type(action)
        try:
            if kind is Send:
                self._send(action.text, now)  # type: ignore[union-attr]
            elif kind is OpenConnection:
                io.open(action.url, now)  # type: ignore[union-attr]
            elif kind is CloseConnection:
                io.close(action, now)  # type: ignore[arg-type]
            elif kind is FetchToken:
                io.fetch_token(action)  # type: ignore[arg-type]
        except Exception:
            log.exception("driver error while performing %s", kind.__name__)

    def emit(self, event: Event, now: float) -> None:
        """Deliver ``event`` (callbacks, then the buffer) and settle what it answers."""
        self.router.dispatch(event, now)
        if type(event) in self._handlers:
            self._handlers[type(event)](event)

    def _send(self, text: str, now: float) -> None:
        if self.io.send(text):
            self.router.frames_out += 1
            if self.frame_hook is not None:
                self._hook("out", redact_frame(text), now)

    def _hook(self, direction: str, text: str | bytes, now: float) -> None:
        hook = self.frame_hook
        assert hook is not None
        try:
            hook(direction, text, now)
        except Exception:
            log.exception("frame_hook raised; the message was handled normally")

    # ------------------------------------------------------------------ calls

    def call(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        params: Mapping[str, Any],
        now: float,
        *,
        wait: bool,
    ) -> Waiter[Acks] | None:
        """Subscribe or unsubscribe (``method``); with ``wait`` the :class:`Waiter` of its acks.

        Arguments are checked first (``LocalProtocolError``). A waiting call needs a started
        client (see :meth:`check_started`); ``wait=False`` only registers the request.
        """
        names, checked = check_symbols(channel, symbols, self.proto.host)
        if wait:
            self.check_started(f"{method}(wait=True)", _REGISTER_HINT)
        start = self.proto.subscribe if method == "subscribe" else self.proto.unsubscribe
        req_id, actions = start(channel, names, now, **params)
        waiter: Waiter[Acks] | None = None
        if wait:
            label = request_label(method, channel, checked)
            waiter = Waiter(
                f"no answer to {label}", f"the client closed before Kraken answered {label}"
            )
            self._track(req_id, waiter)
        self.perform(actions, now)
        return waiter

    def submit(self, request: TradingRequest, now: float) -> Waiter[OrderResponse]:
        """Hand a trading request to the protocol now if it can send it, else once the
        connection is open and authenticated; the :class:`Waiter` of its ``OrderResponse``."""
        self.check_private()
        method = request.method
        self.check_started(method)
        waiter: Waiter[OrderResponse] = Waiter(
            f"{method} not sent: the connection did not become 'subscribed'",
            f"{method} not sent: the client is closed",
        )
        if self.proto.can_submit:
            self._submit(request, waiter, now)
        else:
            self._unsent.append((request, waiter))
        return waiter

    def wait_state(self, state: ConnectionState | str) -> Waiter[None] | None:
        """A :class:`Waiter` settled when the connection enters ``state``; ``None`` if it is
        in it now."""
        wanted = as_state(state)
        if self.proto.state is wanted:
            return None
        self.check_started(f"wait_until({wanted.value!r})")
        waiter: Waiter[None] = Waiter(
            f"the connection did not become {wanted.value!r}",
            f"the client closed before becoming {wanted.value!r}",
        )
        self._states.append((wanted, waiter))
        return waiter

    def arm_dead_man_switch(self, timeout: int, interval: float | None, now: float) -> None:
        """Keep Kraken's dead man's switch armed (see ``KrakenProtocol.arm_dead_man_switch``)."""
        self.perform(self.proto.arm_dead_man_switch(timeout, now, interval=interval), now)

    def disarm_dead_man_switch(self, now: float) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken."""
        self.perform(self.proto.disarm_dead_man_switch(now), now)

    def forget(self, waiter: Waiter[Any]) -> None:
        """Stop tracking ``waiter``: its caller gave up. A request already sent stays in
        flight (its answer still arrives as an event); one not sent yet never will be."""
        if waiter.req_id is not None:
            self._waits.pop(waiter.req_id, None)
        self._unsent = [entry for entry in self._unsent if entry[1] is not waiter]
        self._states = [entry for entry in self._states if entry[1] is not waiter]

    def expired(self, waiter: Waiter[Any], timeout: float | None) -> WaitTimeoutError:
        """:meth:`forget` ``waiter``, whose ``timeout`` ran out, and return its timeout error."""
        self.forget(waiter)
        return self.timed_out(waiter.what, timeout, waiter.note)

    def check_private(self) -> None:
        """Refuse trading on a client that is not private (before anything else happens)."""
        if self.proto.host is not Host.AUTH:
            raise LocalProtocolError("trading needs a private client: create it with private=True")

    def check_buffered(self) -> None:
        """Refuse reading events from a client created with ``buffer_events=False``."""
        if not self.buffer_events:
            raise LocalProtocolError(
                "this client was created with buffer_events=False: events go to callbacks "
                "only (register them with on())"
            )

    def check_started(self, call: str, hint: str = "") -> None:
        """The rule of every waiting call: on a client never started it raises
        ``LocalProtocolError`` (``hint`` adds what else to do), on a closed one
        ``KrakenConnectionError`` naming why it closed; either way nothing is registered."""
        state = self.proto.state
        if state is ConnectionState.DISCONNECTED:
            raise self.not_started(call, hint)
        if state is _CLOSED:
            raise self.closed_error(f"{call} refused: the client is closed")

    @staticmethod
    def not_started(call: str, hint: str = "") -> LocalProtocolError:
        """The error of ``call`` on a client that was never started."""
        return LocalProtocolError(f"{call} needs a started client: {_START_HINT}{hint}")

    def _track(self, req_id: int, waiter: Waiter[Any]) -> None:
        waiter.req_id = req_id
        self._waits[req_id] = waiter

    def _submit(self, request: TradingRequest, waiter: Waiter[OrderResponse], now: float) -> None:
        req_id, actions = self.proto.submit(request, now)
        waiter.what = f"no answer to {request.method} (req_id {req_id})"
        waiter.note = IN_FLIGHT
        waiter.closed = f"the client closed before request {req_id} was settled"
        self._track(req_id, waiter)
        self.perform(actions, now)

    def _send_unsent(self, now: float) -> None:
        unsent, self._unsent = self._unsent, []
        for request, waiter in unsent:
            if not self.proto.can_submit:  # pragma: no cover - an earlier one closed it
                self._unsent.append((request, waiter))
                continue
            try:
                self._submit(request, waiter, now)
            except KrakenError as exc:  # refused locally (pacing): nothing was sent
                self._settle(waiter, None, exc)

    # ------------------------------------------------------------------ answers

    def _settle(self, waiter: Waiter[T], value: T | None, error: BaseException | None) -> None:
        self.settled += 1
        waiter.settle(value, error)

    def _on_result(self, event: SubscriptionResult) -> None:
        waiter = self._waits.pop(event.req_id, None)
        if waiter is None:
            return
        if event.ok:
            acks = [a for a in event.answers if not isinstance(a, SubscriptionFailed)]
            self._settle(waiter, acks, None)
        elif self.proto.state is _CLOSED:  # closed or gave up first: say why
            self._settle(waiter, None, self.closed_error(waiter.closed))
        else:
            first = event.failures[0]
            self._settle(waiter, None, SubscriptionError(first.channel, first.symbol, first.error))

    def _on_order(self, event: OrderResponse) -> None:
        waiter = self._waits.pop(event.req_id, None)
        if waiter is not None:
            self._settle(waiter, event, None)

    def _on_state(self, event: StateChanged) -> None:
        new = event.new
        log.debug("state %s -> %s: %s", event.old, new, event.reason)
        if event.old == "degraded" and new == "connecting":
            self.router.reconnects += 1
        self._follow_failures(event)
        if self._states:
            waiting, self._states = self._states, []
            for state, waiter in waiting:
                if state.value == new:
                    self._settle(waiter, None, None)
                else:
                    self._states.append((state, waiter))
        if new == "closed":
            self._fail_all()

    def _fail_all(self) -> None:
        """The client closed: fail every wait the protocol did not settle (unsent requests,
        state waits; calls and requests only as a backstop)."""
        waiters = [
            *self._waits.values(),
            *(waiter for _, waiter in self._unsent),
            *(waiter for _, waiter in self._states),
        ]
        self._waits, self._unsent, self._states = {}, [], []
        for waiter in waiters:
            self._settle(waiter, None, self.closed_error(waiter.closed))

    # ------------------------------------------------------------------ failures

    def _follow_failures(self, event: StateChanged) -> None:
        """Log each failed attempt, named from the exception the IO saw (refused, DNS, TLS)
        or else the core's reason; the exception is forgotten at every transition."""
        new = event.new
        if new == "closed":
            self._closed_reason = event.reason
        if new == "degraded" or (new == "closed" and event.reason != _USER_CLOSE):
            failure = self._name_failure()
            if new == "degraded":
                connection_log.warning(
                    "%s (attempt %d); reconnecting in %.2f s",
                    failure,
                    self.proto.failed_attempts,
                    event.delay or 0.0,
                )
            else:
                connection_log.error("giving up on %s: %s", self.proto.url, event.reason)
        self._cause = None

    def _name_failure(self) -> str:
        """The last failure (``proto.last_failure``) as one line naming the URL; named once,
        also when asked before its ``StateChanged`` was delivered."""
        key = (self.proto.failed_attempts, self.proto.last_failure or "")
        if key != self._failure_key:
            self._failure_key = key
            self._failure = describe_failure(self.proto.url, self._cause, key[1])
        return self._failure

    def describe_failure(self) -> str:
        """``"connection refused to <url> after 3 attempts"``, or ``""`` when the connection
        has not failed since it last worked or was restarted."""
        attempts = self.proto.failed_attempts
        if self.proto.last_failure is None or not attempts:
            return ""
        plural = "s" if attempts != 1 else ""
        return f"{self._name_failure()} after {attempts} attempt{plural}"

    def timed_out(self, what: str, timeout: float | None, note: str = "") -> WaitTimeoutError:
        """The error of a wait for ``what`` that ran out after ``timeout`` s: it names the
        connection's state and, if it has been failing, the last failure."""
        state = self.proto.state.value
        failure = self.describe_failure()
        limit = "" if timeout is None else f" within {timeout:g} s"
        message = f"{what}{limit}; the connection is {state!r}"
        if failure:
            message += f"; last connection failure: {failure}"
        if note:
            message += f"; {note}"
        return WaitTimeoutError(message, state=state, last_failure=failure)

    def closed_error(self, what: str) -> KrakenConnectionError:
        """The error of a call that the client's closing ended (or found closed)."""
        cause = self.describe_failure() or self._closed_reason or _USER_CLOSE
        return KrakenConnectionError(f"{what} ({cause})", terminal=True)


class _TimedBuffer(EventBuffer):
    """The event buffer of a driver tracking latency: an event taken from it has been
    delivered (``async for``, ``events()``, ``get()``, ``poll()``), so a sample of them
    has its receive -> delivery latency recorded, on the client's ``clock``."""

    def __init__(
        self,
        config: BackpressureConfig,
        tracker: LatencyTracker,
        sampler: LatencySampler,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(config)
        self._tracker = tracker
        self._sampler = sampler
        self._clock = clock

    def take(self) -> Event | None:
        """As :meth:`EventBuffer.take`; a sample of the events is timed."""
        event = _take(self)
        if event is not None:
            sampler = self._sampler
            left = sampler.left
            if left > 1:
                sampler.left = left - 1
            else:
                self._delivered(event, self._clock())
        return event

    def pop(self, now: float) -> Event | None:
        """As :meth:`EventBuffer.pop`; a sample of the events is timed (at ``now``)."""
        event = _pop(self, now)
        if event is not None:
            sampler = self._sampler
            left = sampler.left
            if left > 1:
                sampler.left = left - 1
            else:
                self._delivered(event, now)
        return event

    def _delivered(self, event: Event, now: float) -> None:
        sampler = self._sampler
        weight = sampler.sample(event.received_at)
        if not self._tracker.record(event, now, weight):
            sampler.unused(weight)


_TRACKED = frozenset(LATENCY_CHANNELS)
_take = EventBuffer.take
_pop = EventBuffer.pop


class _NoIO:
    """Until a driver attaches its IO: registering calls performs no IO."""

    def open(self, url: str, now: float) -> None:  # pragma: no cover - connect() needs IO
        raise LocalProtocolError("this driver has no IO attached")

    def send(self, text: str) -> bool:
        return False

    def close(self, action: CloseConnection, now: float) -> None:
        pass

    def fetch_token(self, action: FetchToken) -> None:  # pragma: no cover
        pass

    def performed(self) -> None:
        pass
