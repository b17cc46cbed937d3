"""The awaitable surface of :class:`~kraken_transports.AsyncClient`, written on the driver.

:class:`AwaitableClient` implements ``subscribe``, ``unsubscribe``, ``wait_until``,
``submit``, the typed trading helpers (``add_order``, ``cancel_order``, ...) and the dead
man's switch on the client's :class:`~kraken_transports.driver.Driver`: the coroutine twin
of :class:`~kraken_transports.blocking.BlockingClient`, with the same arguments, defaults and
errors. A caller waits on a future of the running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from kraken_proto.state import ConnectionState
from kraken_proto.trading import (
    AddOrder,
    AddOrderResult,
    AmendOrder,
    AmendOrderResult,
    BatchAddResult,
    BatchCancel,
    BatchCancelResult,
    BatchOrder,
    CancelAll,
    CancelAllOrdersAfter,
    CancelAllOrdersAfterResult,
    CancelAllResult,
    CancelOrderResult,
    EditOrder,
    EditOrderResult,
    OrderResponse,
    TradingRequest,
)
from kraken_transports.base import (
    DEFAULT_TIMEOUT,
    build_batch_add,
    build_cancel_order,
    cancel_results,
    expect_result,
)
from kraken_transports.client import ClientBase
from kraken_transports.driver import Acks, Waiter

__all__ = ["AwaitableClient"]

T = TypeVar("T")


class AwaitableClient(ClientBase):
    """Awaitable calls on a :class:`~kraken_transports.driver.Driver` (see the module
    docstring); every call answers as in :class:`~kraken_transports.blocking.BlockingClient`."""

    async def _wait(self, waiter: Waiter[T], timeout: float | None) -> T:
        """Wait until ``waiter`` is settled and return its result (a future of the running
        loop is resolved when it is); past ``timeout`` seconds raise its timeout error."""
        if not waiter.done:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter.on_done(lambda: None if future.done() else future.set_result(None))
            try:
                await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                if not waiter.done:
                    raise self._driver.expired(waiter, timeout) from None
            except asyncio.CancelledError:
                self._driver.forget(waiter)
                raise
        return waiter.result()

    async def subscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> Acks:
        """Subscribe ``symbols`` to ``channel`` (``depth=``, ``interval=``, ...); remembered
        and replayed after reconnects. With ``wait=True`` returns the ``Subscribed`` acks
        (waiting for the connection first if needed); ``wait=False`` returns ``[]`` at once.
        Raises ``SubscriptionError``, ``WaitTimeoutError``, ``KrakenConnectionError`` or,
        for bad arguments, ``LocalProtocolError``; see ``docs/drivers.md``."""
        return await self._call("subscribe", channel, symbols, params, wait, timeout)

    async def unsubscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> Acks:
        """Stop a subscription; like :meth:`subscribe`, ``wait=True`` returns the
        ``Unsubscribed`` acks (at once while disconnected: the subscription is forgotten)."""
        return await self._call("unsubscribe", channel, symbols, params, wait, timeout)

    async def _call(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        params: Mapping[str, Any],
        wait: bool,
        timeout: float | None,
    ) -> Acks:
        waiter = self._driver.call(method, channel, symbols, params, self._now(), wait=wait)
        return [] if waiter is None else await self._wait(waiter, timeout)

    async def wait_until(
        self, state: ConnectionState | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until the connection is in ``state`` (a :class:`ConnectionState` or its
        value, ``"subscribed"``); returns at once if it is. Raises ``WaitTimeoutError`` after
        ``timeout`` seconds and ``KrakenConnectionError`` if the client closes first."""
        waiter = self._driver.wait_state(state)
        if waiter is not None:
            await self._wait(waiter, timeout)

    # ------------------------------------------------------------------ trading

    async def submit(
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send a trading request (``AddOrder``, ``CancelOrder``, ...) once the connection is
        open and authenticated and return its settled ``OrderResponse`` once Kraken accepted
        it. Raises ``OrderError``, ``UnknownOutcomeError``, ``KrakenConnectionError``,
        ``WaitTimeoutError`` (a sent request stays in flight) or, for local misuse,
        ``InvalidRequestError``/``TradingRateLimitError``/``LocalProtocolError``."""
        waiter = self._driver.submit(request, self._now())
        response = await self._wait(waiter, timeout)
        response.raise_for_outcome()
        return response

    async def add_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AddOrderResult:
        """Place one order (the fields of :class:`~kraken_proto.trading.AddOrder`)."""
        return expect_result(await self.submit(AddOrder(**fields), timeout), AddOrderResult)

    async def amend_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AmendOrderResult:
        """Amend an order in place (the fields of :class:`~kraken_proto.trading.AmendOrder`)."""
        return expect_result(await self.submit(AmendOrder(**fields), timeout), AmendOrderResult)

    async def edit_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> EditOrderResult:
        """Replace an order (the fields of :class:`~kraken_proto.trading.EditOrder`)."""
        return expect_result(await self.submit(EditOrder(**fields), timeout), EditOrderResult)

    async def cancel_order(
        self,
        *,
        order_id: str | Iterable[str] | None = None,
        cl_ord_id: str | Iterable[str] | None = None,
        order_userref: int | Iterable[int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> tuple[CancelOrderResult, ...]:
        """Cancel orders by id (one or several of each kind); one result per cancelled order."""
        request = build_cancel_order(order_id, cl_ord_id, order_userref)
        return cancel_results(await self.submit(request, timeout))

    async def cancel_all(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> CancelAllResult:
        """Cancel every open order of the account."""
        return expect_result(await self.submit(CancelAll(), timeout), CancelAllResult)

    async def cancel_all_orders_after(
        self, timeout: int, *, wait_timeout: float | None = DEFAULT_TIMEOUT
    ) -> CancelAllOrdersAfterResult:
        """Set Kraken's dead man's switch once to ``timeout`` seconds (0 disarms it)."""
        request = CancelAllOrdersAfter(timeout=timeout)
        return expect_result(await self.submit(request, wait_timeout), CancelAllOrdersAfterResult)

    async def batch_add(
        self,
        symbol: str,
        orders: Iterable[BatchOrder | Mapping[str, Any]],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> BatchAddResult:
        """Place 2 to 15 orders on ``symbol`` in one message (``deadline=``, ``validate=``)."""
        request = build_batch_add(symbol, orders, fields)
        return expect_result(await self.submit(request, timeout), BatchAddResult)

    async def batch_cancel(
        self,
        orders: Iterable[str | int] = (),
        cl_ord_id: Iterable[str] = (),
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> BatchCancelResult:
        """Cancel 2 to 50 orders (Kraken ids or user references, and client ids) at once."""
        request = BatchCancel(orders=tuple(orders), cl_ord_id=tuple(cl_ord_id))  # type: ignore[arg-type]
        return expect_result(await self.submit(request, timeout), BatchCancelResult)

    def arm_dead_man_switch(self, timeout: int, interval: float | None = None) -> None:
        """Keep Kraken's dead man's switch armed (every ``interval`` s, default
        ``timeout / 3``, and after reconnects); :meth:`close` disarms it."""
        self._driver.arm_dead_man_switch(timeout, interval, self._now())

    def disarm_dead_man_switch(self) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        self._driver.disarm_dead_man_switch(self._now())
