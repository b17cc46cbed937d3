"""The part of a client that every driver answers the same way: queries, callbacks, trading.

A driver's client owns a :class:`~kraken_proto.KrakenProtocol` (``_proto``), its
configuration (``_config``) and an :class:`~kraken_transports.router.EventRouter`
(``_router``); everything here reads those, so the asyncio and socket clients cannot
drift apart. (The threaded client wraps a socket client and adds its lock.)

Also here: the policies of every wait (:data:`DEFAULT_TIMEOUT`, :class:`Deadline`, the
errors a wait raises and :class:`ConnectionHealth`, which remembers the last connection
failure so those errors can name it), the request builders and result checks behind the
typed trading helpers (``add_order``, ``cancel_order``, ...), and :class:`SyncTradingMixin`,
the blocking helpers shared by the socket and threaded clients (each only provides
``submit``).

Logger ``kraken_transports.connection``: every connection failure at WARNING (what failed,
the attempt, the delay before the next one), and giving up at ERROR.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from kraken_proto.actions import Action
from kraken_proto.auth import redact_token
from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.errors import (
    KrakenConnectionError,
    LocalProtocolError,
    UnknownOutcomeError,
    WaitTimeoutError,
)
from kraken_proto.events import StateChanged
from kraken_proto.level3 import L3Book
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView, validate_unsubscription
from kraken_proto.trading import (
    AddOrder,
    AddOrderResult,
    AmendOrder,
    AmendOrderResult,
    BatchAdd,
    BatchAddResult,
    BatchCancel,
    BatchCancelResult,
    BatchOrder,
    CancelAll,
    CancelAllOrdersAfter,
    CancelAllOrdersAfterResult,
    CancelAllResult,
    CancelOrder,
    CancelOrderResult,
    EditOrder,
    EditOrderResult,
    OrderResponse,
    TradingRequest,
)
from kraken_transports.router import ClientStats, EventRouter

__all__ = [
    "DEFAULT_TIMEOUT",
    "IN_FLIGHT",
    "TRADABLE_STATES",
    "ClientBase",
    "ConnectionHealth",
    "Deadline",
    "SyncTradingMixin",
    "as_state",
    "build_batch_add",
    "build_cancel_order",
    "cancel_results",
    "check_symbols",
    "describe_failure",
    "expect_result",
    "redact_frame",
    "request_label",
]

E = TypeVar("E")
R = TypeVar("R")

log = logging.getLogger("kraken_transports.connection")

DEFAULT_TIMEOUT = 30.0
"""Seconds every wait of every driver gives up after unless told otherwise: ``subscribe`` and
``unsubscribe`` with ``wait=True``, the trading calls, ``wait_until``. Long enough for a
connect timeout, a token and an answer (``ClientConfig.timeout``, ``ack_timeout`` and
``request_timeout`` are 10 s each by default, and the core settles every request itself);
``timeout=None`` waits without a limit."""

TRADABLE_STATES = frozenset(
    {ConnectionState.SUBSCRIBING, ConnectionState.SUBSCRIBED, ConnectionState.RESYNCING}
)
"""States in which a private connection is open and authenticated, so ``submit`` may send."""

IN_FLIGHT = "it is still in flight and its OrderResponse will arrive as an event"
"""What a trading call's timeout adds once the request was sent."""

_USER_CLOSE = "closed by the client"  # the core's reason for a close() it was asked for
_IDLE_STATES = ("closed", "disconnected")  # connecting from these is a fresh start


def as_state(state: ConnectionState | str) -> ConnectionState:
    """``state`` as a :class:`ConnectionState`; its value (``"subscribed"``, as
    ``StateChanged.new`` carries it) is accepted too. Anything else is refused."""
    if isinstance(state, ConnectionState):
        return state
    if isinstance(state, str):
        try:
            return ConnectionState(state)
        except ValueError:
            pass
    names = ", ".join(repr(s.value) for s in ConnectionState)
    raise LocalProtocolError(
        f"state must be a ConnectionState or one of its values ({names}), not {state!r}"
    )


def check_symbols(
    channel: str, symbols: Iterable[str] | str | None, host: str
) -> tuple[Sequence[str] | str | None, tuple[str | None, ...]]:
    """``symbols`` made readable twice (an iterator becomes a list), and the symbols an
    (un)subscribe of ``channel`` waits for. Raises ``LocalProtocolError`` for a bad channel or
    symbols (the protocol's own check: a str or an iterable of str, never bytes)."""
    names: Sequence[str] | str | None
    if isinstance(symbols, str | bytes | bytearray) or not isinstance(symbols, Iterable):
        names = symbols  # the protocol checks it (and refuses bytes and non-iterables)
    else:
        names = list(symbols)
    return names, validate_unsubscription(channel, names, {}, host)


def request_label(method: str, channel: str, symbols: Iterable[str | None]) -> str:
    """How errors name a request: ``"subscribe ticker BTC/USD, ETH/USD"``."""
    names = ", ".join(s for s in symbols if s is not None)
    return f"{method} {channel} {names}" if names else f"{method} {channel}"


class Deadline:
    """The end of one wait on a driver's monotonic ``clock`` (``timeout=None``: none)."""

    __slots__ = ("_at", "_clock", "timeout")

    def __init__(self, timeout: float | None, clock: Callable[[], float]) -> None:
        self.timeout = timeout
        self._clock = clock
        self._at = None if timeout is None else clock() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a limit."""
        return None if self._at is None else max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._at is not None and self._clock() >= self._at


def _failure_causes(exc: BaseException | None) -> Iterable[BaseException]:
    """``exc`` and what it wraps (aiohttp keeps the OS or certificate error beside it)."""
    seen = 0
    while exc is not None and seen < 5:
        seen += 1
        yield exc
        for name in ("os_error", "certificate_error"):
            inner = getattr(exc, name, None)
            if isinstance(inner, BaseException):
                yield inner
        exc = exc.__cause__ or exc.__context__


def describe_failure(url: str, exc: BaseException | None, reason: str) -> str:
    """One line saying how the connection to ``url`` failed, from the exception the driver
    saw (``exc``) or else the core's ``reason``."""
    for cause in _failure_causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused to {url}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host of {url} ({cause.strerror or cause})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or cause
            return f"TLS certificate of {url} refused ({detail})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS with {url} failed ({getattr(cause, 'reason', None) or cause})"
        if isinstance(cause, TimeoutError):
            return f"connecting to {url} timed out"
    return f"connection to {url} failed: {reason.removeprefix('connection lost: ')}"


class ConnectionHealth:
    """The last connection failure and how many attempts in a row have failed.

    Fed every ``StateChanged`` (:meth:`state_changed`) and, by the drivers, the exception
    behind each lost connection (:meth:`lost`, just before ``connection_lost``). A failure
    is remembered until the connection is fully up again (``subscribed``) or restarted.
    Every failure is logged at WARNING, giving up at ERROR (``kraken_transports.connection``).
    """

    __slots__ = ("_cause", "_url", "attempts", "closed_reason", "failure")

    def __init__(self, url: str) -> None:
        self._url = url
        self._cause: BaseException | None = None
        self.failure = ""
        """How the last failed attempt failed (``""``: not failing)."""
        self.attempts = 0
        """Failed attempts since the connection last worked."""
        self.closed_reason = ""
        """Why the connection was last closed for good."""

    def lost(self, exc: BaseException | None) -> None:
        """The driver is about to report a lost connection caused by ``exc``."""
        self._cause = exc

    def state_changed(self, event: StateChanged) -> None:
        """Follow a transition of the connection."""
        cause, self._cause = self._cause, None
        new = event.new
        if new == "closed":
            self.closed_reason = event.reason
        if new == "degraded" or (new == "closed" and event.reason != _USER_CLOSE):
            self.attempts += 1
            self.failure = describe_failure(self._url, cause, event.reason)
            if new == "degraded":
                log.warning(
                    "%s (attempt %d); reconnecting in %.2f s",
                    self.failure,
                    self.attempts,
                    event.delay or 0.0,
                )
            else:
                log.error("giving up on %s: %s", self._url, event.reason)
        elif new == "subscribed" or (new == "connecting" and event.old in _IDLE_STATES):
            self.attempts = 0
            self.failure = ""

    def describe(self) -> str:
        """``"connection refused to <url> after 3 attempts"``, or ``""`` if not failing."""
        if not self.attempts:
            return ""
        plural = "s" if self.attempts != 1 else ""
        return f"{self.failure} after {self.attempts} attempt{plural}"


def redact_frame(payload: str | bytes) -> str | bytes:
    """``payload`` with any WebSocket token value replaced by ``"***"`` (frame hooks, logs)."""
    if isinstance(payload, str):
        return redact_token(payload)
    if b'"token"' not in payload:
        return payload
    return redact_token(payload.decode("utf-8", "replace")).encode("utf-8")


def expect_result(response: OrderResponse, kind: type[R]) -> R:
    """The first result of a settled, successful ``response``, checked to be a ``kind``."""
    result = response.result
    if not isinstance(result, kind):
        raise UnknownOutcomeError(
            response.method, response.req_id, f"the response carried no {kind.__name__}"
        )
    return result


def cancel_results(response: OrderResponse) -> tuple[CancelOrderResult, ...]:
    """The per-order results of a settled, successful ``cancel_order`` response."""
    return tuple(r for r in response.results if isinstance(r, CancelOrderResult))


def _ids(value: Any) -> tuple[Any, ...]:
    """One id or a sequence of ids as a tuple (``None``: none)."""
    if value is None:
        return ()
    if isinstance(value, str | int):
        return (value,)
    return tuple(value)


def build_cancel_order(order_id: Any, cl_ord_id: Any, order_userref: Any) -> CancelOrder:
    """A :class:`CancelOrder` from single ids or sequences of them."""
    return CancelOrder(
        order_id=_ids(order_id), cl_ord_id=_ids(cl_ord_id), order_userref=_ids(order_userref)
    )


def build_batch_add(
    symbol: str, orders: Iterable[BatchOrder | Mapping[str, Any]], fields: dict[str, Any]
) -> BatchAdd:
    """A :class:`BatchAdd` of ``orders`` (``BatchOrder`` values or mappings of their fields)."""
    return BatchAdd(symbol=symbol, orders=tuple(orders), **fields)  # type: ignore[arg-type]


class ClientBase:
    """Queries, callback registration and the wait errors shared by the driver clients."""

    def __init__(
        self,
        config: ClientConfig | None,
        *,
        private: bool,
        level3: bool,
        buffer_events: bool,
    ) -> None:
        self._config = config = config if config is not None else ClientConfig()
        self._proto = KrakenProtocol(config, private=private, level3=level3)
        self._router = EventRouter(config.backpressure, buffer_events=buffer_events)
        self._buffer_events = buffer_events
        self._health = ConnectionHealth(self._proto.url)

    def _now(self) -> float:  # pragma: no cover - every driver overrides it
        """The driver's monotonic clock (the ``now`` its protocol calls get)."""
        raise NotImplementedError

    def _state_changed(self, event: StateChanged) -> None:
        """What every driver does on a transition: count reconnects, follow failures."""
        if event.old == "degraded" and event.new == "connecting":
            self._router.reconnects += 1
        self._health.state_changed(event)

    def _connection_lost(
        self, now: float, exc: BaseException | None, close_code: int | None = None
    ) -> None:
        """Tell the protocol the connection is gone (remembering why) and perform the result."""
        self._health.lost(exc)
        self._perform(self._proto.connection_lost(now, exc, close_code=close_code), now)

    def _perform(self, actions: list[Action], now: float) -> None:  # pragma: no cover
        """Perform the protocol's actions (every driver overrides it)."""
        raise NotImplementedError

    def _timed_out(self, what: str, timeout: float | None, note: str = "") -> WaitTimeoutError:
        """The error of a wait for ``what`` that ran out after ``timeout`` s: it names the
        connection's state and, if it has been failing, the last failure."""
        state = self._proto.state.value
        failure = self._health.describe()
        limit = "" if timeout is None else f" within {timeout:g} s"
        message = f"{what}{limit}; the connection is {state!r}"
        if failure:
            message += f"; last connection failure: {failure}"
        if note:
            message += f"; {note}"
        return WaitTimeoutError(message, state=state, last_failure=failure)

    def _closed_error(self, what: str) -> KrakenConnectionError:
        """The error of a wait for ``what`` that the client's closing ended."""
        cause = self._health.describe() or self._health.closed_reason or _USER_CLOSE
        return KrakenConnectionError(f"{what} ({cause})", terminal=True)

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._config

    @property
    def protocol(self) -> KrakenProtocol:
        """The sans-IO protocol object this driver performs IO for."""
        return self._proto

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`~kraken_proto.ConnectionState`)."""
        return self._proto.state

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        return self._proto.subscriptions

    @property
    def stats(self) -> ClientStats:
        """Counters: events received/delivered/dropped/coalesced/queued, frames, reconnects,
        callback errors. ``received == delivered + dropped + coalesced + queued``."""
        return self._router.stats()

    @property
    def pending_requests(self) -> int:
        """Trading requests submitted and not settled yet (private connections)."""
        return self._proto.pending_requests

    def book(self, symbol: str) -> OrderBook | None:
        """The maintained, checksum-verified L2 book of ``symbol`` (``None`` if not subscribed).

        Its query methods raise :class:`~kraken_proto.BookNotLiveError` while the book is
        awaiting a snapshot, resyncing or failed; check ``is_live`` first.
        """
        return self._proto.book(symbol)

    def l3_book(self, symbol: str) -> L3Book | None:
        """The maintained, checksum-verified level3 book of ``symbol`` (``level3=True``
        clients; ``None`` if not subscribed). Check ``is_live`` before reading it."""
        return self._proto.l3_book(symbol)

    def rate_counter(self, symbol: str) -> RateCounterState:
        """The trading rate counter of ``symbol`` as this client tracks it, now."""
        return self._proto.rate_counter(symbol, self._now())

    def on(self, event_type: type[E] | None, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type`` (``None``: all events).

        Callbacks run in the driver's IO context as events are produced, before
        backpressure applies, so they see every event and the book exactly as that event
        left it; several per type run in registration order. An exception in a callback is
        counted in ``stats.callback_errors``, never propagated; the first one of each
        callback is logged with its traceback, then only its 2nd, 4th, 8th, ... as a count
        (logger ``kraken_transports.callbacks``). Returns a function that removes the
        registration.
        """
        return self._router.on(event_type, callback)


class SyncTradingMixin:
    """The typed trading helpers of the blocking clients, all built on ``submit``.

    Each builds the request from its arguments (:class:`~kraken_proto.errors.InvalidRequestError`
    propagates unchanged), submits it, waits for its settled
    :class:`~kraken_proto.trading.OrderResponse` and returns the typed result; a refusal
    raises :class:`~kraken_proto.errors.OrderError`, an unknown outcome
    :class:`~kraken_proto.errors.UnknownOutcomeError`. ``timeout`` bounds the whole wait
    (:data:`DEFAULT_TIMEOUT` unless given; then
    :class:`~kraken_proto.errors.WaitTimeoutError`).
    """

    def submit(  # pragma: no cover - every driver overrides it
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send ``request`` and return its settled, successful ``OrderResponse``."""
        raise NotImplementedError

    def add_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AddOrderResult:
        """Place one order (fields of :class:`~kraken_proto.trading.AddOrder`)."""
        return expect_result(self.submit(AddOrder(**fields), timeout), AddOrderResult)

    def amend_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AmendOrderResult:
        """Amend an order in place (fields of :class:`~kraken_proto.trading.AmendOrder`)."""
        return expect_result(self.submit(AmendOrder(**fields), timeout), AmendOrderResult)

    def edit_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> EditOrderResult:
        """Replace an order (fields of :class:`~kraken_proto.trading.EditOrder`)."""
        return expect_result(self.submit(EditOrder(**fields), timeout), EditOrderResult)

    def cancel_order(
        self,
        *,
        order_id: str | Iterable[str] | None = None,
        cl_ord_id: str | Iterable[str] | None = None,
        order_userref: int | Iterable[int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> tuple[CancelOrderResult, ...]:
        """Cancel orders by id (one or several of each kind); one result per cancelled order."""
        request = build_cancel_order(order_id, cl_ord_id, order_userref)
        return cancel_results(self.submit(request, timeout))

    def cancel_all(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> CancelAllResult:
        """Cancel every open order of the account."""
        return expect_result(self.submit(CancelAll(), timeout), CancelAllResult)

    def cancel_all_orders_after(
        self, timeout: int, *, wait_timeout: float | None = DEFAULT_TIMEOUT
    ) -> CancelAllOrdersAfterResult:
        """Set Kraken's dead man's switch once to ``timeout`` seconds (0 disarms); see
        ``arm_dead_man_switch`` to keep it refreshed. ``wait_timeout`` bounds the wait."""
        request = CancelAllOrdersAfter(timeout=timeout)
        return expect_result(self.submit(request, wait_timeout), CancelAllOrdersAfterResult)

    def batch_add(
        self,
        symbol: str,
        orders: Iterable[BatchOrder | Mapping[str, Any]],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> BatchAddResult:
        """Place 2 to 15 orders on ``symbol`` in one message (``deadline=``, ``validate=``)."""
        request = build_batch_add(symbol, orders, fields)
        return expect_result(self.submit(request, timeout), BatchAddResult)

    def batch_cancel(
        self,
        orders: Iterable[str | int] = (),
        cl_ord_id: Iterable[str] = (),
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> BatchCancelResult:
        """Cancel 2 to 50 orders (Kraken ids or user references, and client ids) at once."""
        request = BatchCancel(orders=tuple(orders), cl_ord_id=tuple(cl_ord_id))  # type: ignore[arg-type]
        return expect_result(self.submit(request, timeout), BatchCancelResult)
