"""The blocking surface of :class:`~kraken_transports.SocketClient` and
:class:`~kraken_transports.ThreadedClient`, written once.

:class:`BlockingClient` implements ``subscribe``, ``unsubscribe``, ``wait_until``,
``submit``, the typed trading helpers (``add_order``, ``cancel_order``, ...) and the dead
man's switch, and reading events (``get``, ``events``), on the client's
:class:`~kraken_transports.driver.Driver`. A client provides the primitives:
:meth:`~BlockingClient._run` (run a call where the driver may be touched: here, or on its IO
thread), :meth:`~BlockingClient._pause` (let the IO make progress while a caller waits:
drive the loop, or wait on a condition), :meth:`~BlockingClient._in_callback` and
:meth:`~BlockingClient._ended`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import Event
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
    Deadline,
    as_state,
    build_batch_add,
    build_cancel_order,
    cancel_results,
    check_symbols,
    expect_result,
    read_wait,
    request_label,
)
from kraken_transports.client import ClientBase
from kraken_transports.driver import Acks, Waiter

__all__ = ["BlockingClient"]

T = TypeVar("T")


class BlockingClient(ClientBase):
    """Blocking calls on a :class:`~kraken_transports.driver.Driver` (see the module docstring).

    Every call checks its arguments first, then follows the rule of every driver: a waiting
    call on a client never started raises ``LocalProtocolError``, on a closed one
    ``KrakenConnectionError``; a wait that ends without an answer raises
    :class:`~kraken_proto.errors.WaitTimeoutError` after ``timeout`` seconds
    (:data:`~kraken_transports.base.DEFAULT_TIMEOUT` unless given; ``None``: no limit), or
    ``KrakenConnectionError`` if the client closes first. Calls that block raise
    ``LocalProtocolError`` inside a callback.
    """

    def _run(self, fn: Callable[[], T], what: str, deadline: Deadline) -> T:  # pragma: no cover
        """Run ``fn`` where the driver may be touched and return its result (a client
        whose IO is busy elsewhere gives up past ``deadline`` with the timeout of ``what``)."""
        raise NotImplementedError

    def _pause(self, timeout: float | None) -> None:  # pragma: no cover
        """Let the IO make progress for up to ``timeout`` s (called under ``_lock``)."""
        raise NotImplementedError

    def _in_callback(self) -> bool:  # pragma: no cover
        """Whether the caller is a callback, inside the client's IO."""
        raise NotImplementedError

    def _ended(self) -> bool:  # pragma: no cover
        """Whether the client is closed and its IO done: no event will come any more."""
        raise NotImplementedError

    def _block(self, waiter: Waiter[T], deadline: Deadline) -> T:
        """Wait until ``waiter`` is settled; past ``deadline`` raise its timeout."""
        with self._lock:
            while not waiter.done:
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise self._driver.expired(waiter, deadline.timeout)
                self._pause(remaining)
        return waiter.result()

    def _refuse_in_callback(self, call: str, why: str) -> None:
        if self._in_callback():
            raise LocalProtocolError(f"{call} cannot run inside a callback{why}")

    # ------------------------------------------------------------------ events

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` s for it (``None``: as long as it takes)
        while the client's IO runs; ``None`` on timeout, or at once when the client is
        closed and every queued event was read. Needs a started client."""
        self._check_reader("get()")
        buffer = self._driver.router.buffer
        deadline = Deadline(timeout, self._now)
        with self._lock:
            while True:
                now = self._now()
                event = buffer.pop(now)
                if event is not None:
                    return event
                stop, wait = read_wait(buffer, now, deadline, self._ended())
                if stop:
                    return None
                self._pause(wait)

    def events(self, idle_timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they arrive; ends once the client is closed and every queued
        event was yielded, or after ``idle_timeout`` seconds without an event (``None``:
        never). Needs a started client."""
        self._check_reader("events()")
        buffer = self._driver.router.buffer
        lock = self._lock
        shared = lock is not ClientBase._lock  # IO on another thread: read under its lock
        while True:
            if shared:  # the common case first: an event is waiting
                with lock:
                    event = buffer.take() or buffer.pop(self._now())
            else:
                event = buffer.take() or buffer.pop(self._now())
            if event is None:
                event = self.get(idle_timeout)
                if event is None:
                    return
            yield event

    def __iter__(self) -> Iterator[Event]:
        """``for event in client:`` is ``client.events()``."""
        return self.events()

    def _check_reader(self, call: str) -> None:
        driver = self._driver
        driver.check_buffered()
        self._refuse_in_callback(call, ": it blocks")
        if driver.proto.state is ConnectionState.DISCONNECTED:
            raise driver.not_started(call)

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> Acks:
        """Subscribe ``symbols`` (a str or an iterable of str) to ``channel`` (``depth=``,
        ``interval=``, ... as Kraken names them); remembered and replayed after reconnects.

        With ``wait=True`` (default) blocks until every symbol is answered and returns the
        ``Subscribed`` acks, waiting for the connection first if it is still coming up;
        raises :class:`~kraken_proto.SubscriptionError` with Kraken's text on a refusal,
        :class:`~kraken_proto.errors.WaitTimeoutError` after ``timeout`` seconds (the
        subscription stays requested) and :class:`~kraken_proto.KrakenConnectionError` if
        the client closes first. ``wait=False`` returns ``[]`` at once (also before the
        client is started: it is sent once it is) and the answers arrive as events.
        """
        return self._call("subscribe", channel, symbols, params, wait, timeout)

    def unsubscribe(
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
        return self._call("unsubscribe", channel, symbols, params, wait, timeout)

    def _call(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        params: Mapping[str, Any],
        wait: bool,
        timeout: float | None,
    ) -> Acks:
        names, checked = check_symbols(channel, symbols, self._driver.proto.host)
        if wait:
            self._refuse_in_callback(f"{method}(wait=True)", "; pass wait=False")
        deadline = Deadline(timeout, self._now)
        what = f"no answer to {request_label(method, channel, checked)}"
        driver = self._driver
        waiter = self._run(
            lambda: driver.call(method, channel, names, params, self._now(), wait=wait),
            what,
            deadline,
        )
        return [] if waiter is None else self._block(waiter, deadline)

    def wait_until(
        self, state: ConnectionState | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Block until the connection is in ``state`` (a :class:`ConnectionState` or its
        value, ``"subscribed"``); returns at once if it is.

        Raises :class:`~kraken_proto.errors.WaitTimeoutError` (naming the last connection
        failure) after ``timeout`` seconds and ``KrakenConnectionError`` if the client
        closes first.
        """
        wanted = as_state(state)
        self._refuse_in_callback("wait_until()", ": it blocks")
        deadline = Deadline(timeout, self._now)
        what = f"the connection did not become {wanted.value!r}"
        waiter = self._run(lambda: self._driver.wait_state(wanted), what, deadline)
        if waiter is not None:
            self._block(waiter, deadline)

    # ------------------------------------------------------------------ trading

    def submit(
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send a trading request (``AddOrder``, ``CancelOrder``, ...) and return its settled
        :class:`~kraken_proto.trading.OrderResponse` once Kraken accepted it.

        Needs a started ``private=True`` client. While the connection is not open and
        authenticated yet (connecting, fetching the token, reconnecting) the request waits
        for it: it is handed to the protocol only on an open connection, never queued
        across connections. The ``OrderResponse`` also reaches callbacks and the events.

        Raises :class:`~kraken_proto.OrderError` (refused),
        :class:`~kraken_proto.UnknownOutcomeError` (no answer: reconcile through
        ``executions``), :class:`~kraken_proto.KrakenConnectionError` (not sent, or the
        client is or gets closed), :class:`~kraken_proto.errors.WaitTimeoutError` after
        ``timeout`` seconds (a sent request stays in flight; its ``OrderResponse`` arrives
        as an event), and ``InvalidRequestError``, ``TradingRateLimitError`` or
        ``LocalProtocolError`` for local misuse (also inside a callback).
        """
        driver = self._driver
        driver.check_private()
        method = request.method
        self._refuse_in_callback(method, ": it blocks until Kraken answers")
        deadline = Deadline(timeout, self._now)
        waiter = self._run(
            lambda: driver.submit(request, self._now()),
            f"{method} not sent: the connection did not become 'subscribed'",
            deadline,
        )
        response = self._block(waiter, deadline)
        response.raise_for_outcome()
        return response

    def add_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AddOrderResult:
        """Place one order (fields of :class:`~kraken_proto.trading.AddOrder`); see
        :meth:`submit` for waiting and errors."""
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
        :meth:`arm_dead_man_switch` to keep it refreshed. ``wait_timeout`` bounds the wait."""
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

    def arm_dead_man_switch(self, timeout: int, interval: float | None = None) -> None:
        """Keep Kraken's dead man's switch armed: every open order is cancelled if this
        client stops refreshing it for ``timeout`` seconds (sent now if connected, then
        every ``interval`` s, default ``timeout / 3``, and after reconnects). ``close()``
        disarms it. Its answers arrive as ``OrderResponse`` events. Safe in callbacks."""
        driver = self._driver
        deadline = Deadline(DEFAULT_TIMEOUT, self._now)
        self._run(
            lambda: driver.arm_dead_man_switch(timeout, interval, self._now()),
            "arm_dead_man_switch not handled",
            deadline,
        )

    def disarm_dead_man_switch(self) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        driver = self._driver
        deadline = Deadline(DEFAULT_TIMEOUT, self._now)
        what = "disarm_dead_man_switch not handled"
        self._run(lambda: driver.disarm_dead_man_switch(self._now()), what, deadline)
