"""The part of a client that every driver answers the same way: queries, callbacks, trading.

A driver's client owns a :class:`~kraken_proto.KrakenProtocol` (``_proto``), its
configuration (``_config``) and an :class:`~kraken_transports.router.EventRouter`
(``_router``); everything here reads those, so the asyncio and socket clients cannot
drift apart. (The threaded client wraps a socket client and adds its lock.)

Also here: the request builders and result checks behind the typed trading helpers
(``add_order``, ``cancel_order``, ...), and :class:`SyncTradingMixin`, the blocking helpers
shared by the socket and threaded clients (each only provides ``submit``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kraken_proto.auth import redact_token
from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.errors import UnknownOutcomeError
from kraken_proto.level3 import L3Book
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView
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
    "TRADABLE_STATES",
    "ClientBase",
    "SyncTradingMixin",
    "build_batch_add",
    "build_cancel_order",
    "cancel_results",
    "expect_result",
    "redact_frame",
]

E = TypeVar("E")
R = TypeVar("R")

TRADABLE_STATES = frozenset(
    {ConnectionState.SUBSCRIBING, ConnectionState.SUBSCRIBED, ConnectionState.RESYNCING}
)
"""States in which a private connection is open and authenticated, so ``submit`` may send."""


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
    """Queries and callback registration shared by the driver clients."""

    _config: ClientConfig
    _proto: KrakenProtocol
    _router: EventRouter

    def _now(self) -> float:  # pragma: no cover - every driver overrides it
        """The driver's monotonic clock (the ``now`` its protocol calls get)."""
        raise NotImplementedError

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
        logged and counted in ``stats.callback_errors``, never propagated. Returns a
        function that removes the registration.
        """
        return self._router.on(event_type, callback)


class SyncTradingMixin:
    """The typed trading helpers of the blocking clients, all built on ``submit``.

    Each builds the request from its arguments (:class:`~kraken_proto.errors.InvalidRequestError`
    propagates unchanged), submits it, waits for its settled
    :class:`~kraken_proto.trading.OrderResponse` and returns the typed result; a refusal
    raises :class:`~kraken_proto.errors.OrderError`, an unknown outcome
    :class:`~kraken_proto.errors.UnknownOutcomeError`. ``timeout`` bounds the whole wait.
    """

    def submit(  # pragma: no cover - every driver overrides it
        self, request: TradingRequest, timeout: float | None = None
    ) -> OrderResponse:
        """Send ``request`` and return its settled, successful ``OrderResponse``."""
        raise NotImplementedError

    def add_order(self, *, timeout: float | None = None, **fields: Any) -> AddOrderResult:
        """Place one order (fields of :class:`~kraken_proto.trading.AddOrder`)."""
        return expect_result(self.submit(AddOrder(**fields), timeout), AddOrderResult)

    def amend_order(self, *, timeout: float | None = None, **fields: Any) -> AmendOrderResult:
        """Amend an order in place (fields of :class:`~kraken_proto.trading.AmendOrder`)."""
        return expect_result(self.submit(AmendOrder(**fields), timeout), AmendOrderResult)

    def edit_order(self, *, timeout: float | None = None, **fields: Any) -> EditOrderResult:
        """Replace an order (fields of :class:`~kraken_proto.trading.EditOrder`)."""
        return expect_result(self.submit(EditOrder(**fields), timeout), EditOrderResult)

    def cancel_order(
        self,
        *,
        order_id: str | Iterable[str] | None = None,
        cl_ord_id: str | Iterable[str] | None = None,
        order_userref: int | Iterable[int] | None = None,
        timeout: float | None = None,
    ) -> tuple[CancelOrderResult, ...]:
        """Cancel orders by id (one or several of each kind); one result per cancelled order."""
        request = build_cancel_order(order_id, cl_ord_id, order_userref)
        return cancel_results(self.submit(request, timeout))

    def cancel_all(self, *, timeout: float | None = None) -> CancelAllResult:
        """Cancel every open order of the account."""
        return expect_result(self.submit(CancelAll(), timeout), CancelAllResult)

    def cancel_all_orders_after(
        self, timeout: int, *, wait_timeout: float | None = None
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
        timeout: float | None = None,
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
        timeout: float | None = None,
    ) -> BatchCancelResult:
        """Cancel 2 to 50 orders (Kraken ids or user references, and client ids) at once."""
        request = BatchCancel(orders=tuple(orders), cl_ord_id=tuple(cl_ord_id))  # type: ignore[arg-type]
        return expect_result(self.submit(request, timeout), BatchCancelResult)
