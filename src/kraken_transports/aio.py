"""The asyncio driver: :class:`KrakenProtocol` over an aiohttp WebSocket.

Usage::

    async with connect(ClientConfig()) as client:
        await client.subscribe("book", ["BTC/USD", "ETH/USD"], depth=10)
        await client.subscribe("ticker", "BTC/USD")
        async for event in client:
            if isinstance(event, BookUpdate):
                print(event.symbol, client.book(event.symbol).best_bid())

The driver only translates the protocol's actions into IO; every policy (backoff,
liveness, pacing, resync) lives in :mod:`kraken_proto`. How it runs:

- Every action a protocol input returns is performed at once, in order, on the event loop
  thread: ``Emit`` goes through the :class:`~kraken_transports.router.EventRouter`
  (callbacks, then the bounded buffer), ``Send`` is written to the socket, ``OpenConnection``
  starts a connection task and ``CloseConnection`` cancels it (closing its socket with the
  code asked for). Nothing awaits between a protocol call and its actions, so callbacks see
  ``client.book(symbol)`` exactly as the event they are given left it.
- One task per connection opens the WebSocket, calls ``connection_made`` and feeds every
  message to ``receive_data``; a close or error becomes ``connection_lost``.
- One timer (``loop.call_at``) fires ``handle_timer`` at ``next_deadline()``; the protocol
  asks for the reconnect itself (``OpenConnection`` from ``handle_timer``).
- A background task holds the client's life: it ends when the protocol reaches ``CLOSED``
  (``close()``, close code 1008, retry budget spent), then the sockets and the aiohttp
  session are closed within a bounded time and iteration ends once the buffer is drained.
- Private and level3 connections (``connect(config, private=True)`` / ``level3=True``):
  ``FetchToken`` becomes a task that performs the signed token request with the client's
  aiohttp session (:func:`~kraken_transports.tokens.fetch_token_async`) and answers
  ``token_received``/``token_failed``, only if the connection that asked is still the
  current one and still authenticating; it is cancelled when that connection closes.
  At most one token request is in flight.

Trading (private clients)::

    async with connect(ClientConfig.from_env(), private=True) as client:
        await client.subscribe("executions", snap_orders=True)
        placed = await client.add_order(
            order_type="limit", side="buy", symbol="BTC/USD",
            order_qty=Decimal("0.01"), limit_price=Decimal("50000"),
        )
        await client.cancel_order(order_id=placed.order_id)

The WebSocket token never reaches a log line or the ``frame_hook``: outgoing text is passed
through :func:`~kraken_proto.auth.redact_token` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from kraken_proto import __version__
from kraken_proto.actions import (
    Action,
    CloseConnection,
    Emit,
    FetchToken,
    OpenConnection,
    Send,
)
from kraken_proto.auth import TokenRequest
from kraken_proto.config import ClientConfig
from kraken_proto.errors import AuthenticationError, LocalProtocolError
from kraken_proto.events import (
    OHLC,
    BookUpdate,
    Event,
    L3Update,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    Ticker,
    Trade,
    Unsubscribed,
)
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
    IN_FLIGHT,
    TRADABLE_STATES,
    ClientBase,
    Deadline,
    as_state,
    build_batch_add,
    build_cancel_order,
    cancel_results,
    check_symbols,
    expect_result,
    redact_frame,
    request_label,
)
from kraken_transports.router import AckWaiter
from kraken_transports.tokens import fetch_token_async

__all__ = ["AsyncClient", "FrameHook", "connect"]

log = logging.getLogger("kraken_transports.aio")

E = TypeVar("E")

FrameHook = Callable[[str, str | bytes, float], None]
"""``hook(direction, text, now)``: called for every WebSocket message, ``"in"`` or ``"out"``."""

_CLOSED = ConnectionState.CLOSED
_ACK_EVENTS = (Subscribed, SubscriptionFailed, Unsubscribed)
# Market data: no waiter is interested in it, and a received frame whose actions are only
# these changed no state and moved no deadline earlier (acks, requests, sequence gaps and
# every state change come with other events or with Send actions), so _read delivers it
# without the generic _perform and leaves the armed timer as it is.
_MARKET_EVENTS = frozenset({Ticker, Trade, OHLC, BookUpdate, L3Update})
_WS_CLOSE_TIMEOUT = 0.5  # how long a closing socket waits for the server's close frame
_CONNECTIONS_WAIT = 0.6  # shutdown: how long closing sockets may take before being cancelled
_SESSION_CLOSE_WAIT = 0.2  # shutdown: bound on closing the aiohttp session
_CLOSE_BUDGET = 0.9  # close(): wait this long for a clean shutdown, then cancel
_TIMER_RETRY = 0.01  # a deadline that is still due after handle_timer is retried this late
_EXCERPT = 200


def connect(
    config: ClientConfig | None = None,
    *,
    private: bool = False,
    level3: bool = False,
    buffer_events: bool = True,
    frame_hook: FrameHook | None = None,
) -> AsyncClient:
    """Create an :class:`AsyncClient`; use it as ``async with connect(config) as client:``.

    Entering the context starts the connection (without waiting for it: subscribe at once,
    the requests go out when it is up); leaving it closes the client, also on an exception
    or cancellation. ``buffer_events=False`` makes a callback-only client (no iteration, so
    no buffer to fill). ``frame_hook(direction, text, now)`` is called with ``"in"`` for every
    text or binary message received (before the protocol sees it) and ``"out"`` for every
    message sent, with the loop's time (used by ``kraken-ws record``); its exceptions are
    logged and ignored. The hook never sees the WebSocket token (it is shown as ``***``).

    ``private=True`` connects to the auth host (executions, balances, trading);
    ``level3=True`` to the level3 host. Both need ``api_key``/``api_secret`` in ``config``
    (e.g. ``ClientConfig.from_env()``); without them :class:`LocalProtocolError` is raised.
    """
    return AsyncClient(
        config,
        private=private,
        level3=level3,
        buffer_events=buffer_events,
        frame_hook=frame_hook,
    )


class _Connection:
    """One WebSocket connection attempt: its task, its socket, and how to close it."""

    __slots__ = ("close_code", "close_reason", "task", "token_task", "url", "ws")

    def __init__(self, url: str) -> None:
        self.url = url
        self.task: asyncio.Task[None] | None = None
        self.token_task: asyncio.Task[None] | None = None
        self.ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self.close_code = 1000
        self.close_reason = ""


class AsyncClient(ClientBase):
    """An asyncio client of Kraken's v2 WebSocket API: one connection to one of its hosts.

    Create it with :func:`connect`. Events can be consumed by iteration (``async for event
    in client``) and by callbacks (:meth:`on`), both at once; subscriptions are remembered
    and replayed after every reconnect, books are checksum-verified and resynced per symbol.
    A ``private=True`` client also trades (:meth:`submit`, :meth:`add_order`, ...).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        buffer_events: bool = True,
        frame_hook: FrameHook | None = None,
    ) -> None:
        super().__init__(config, private=private, level3=level3, buffer_events=buffer_events)
        self._frame_hook = frame_hook
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._conn: _Connection | None = None  # the current connection, if any
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._send_tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed_signal: asyncio.Future[None] | None = None
        self._readable = asyncio.Event()
        self._done = False  # closed and shut down: iteration ends once the buffer is empty
        self._acks: list[tuple[AckWaiter, asyncio.Future[None]]] = []
        self._state_waiters: list[tuple[ConnectionState, asyncio.Future[None]]] = []
        self._orders: dict[int, asyncio.Future[OrderResponse]] = {}
        self._token_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ queries

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the client has closed and shut down."""
        return self._task is not None and not self._task.done()

    def _now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else time.monotonic()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start connecting in the background (no-op if already running).

        Returns at once; use :meth:`wait_until` to wait for a state. A client that was
        closed may be started again (``async with client:`` once more): it reconnects and
        resubscribes what was subscribed when it closed, as the protocol keeps subscriptions
        (subscribing one of them again raises ``LocalProtocolError``: already subscribed).
        """
        if self.running:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            self._readable = asyncio.Event()  # an asyncio.Event binds to its first loop
        self._loop = loop
        self._done = False
        self._closed_signal = loop.create_future()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._config.timeout, sock_read=None
            ),
            headers={"User-Agent": f"kraken-ws-sdk/{__version__} (aiohttp)"},
        )
        # Connecting now, not in the task: a subscribe or close() right after start() sees
        # the connection coming up, never the CLOSED state of a previous run.
        now = loop.time()
        self._perform(self._proto.connect(now), now)
        self._task = loop.create_task(self._run(), name="kraken-aio-client")

    async def close(self) -> None:
        """Close the connection and stop the client. Idempotent; returns within about 1 s.

        Pending ``subscribe``/``unsubscribe``/``wait_until`` calls fail with
        :class:`~kraken_proto.errors.KrakenConnectionError`; iteration ends once the events
        still buffered have been consumed.
        """
        loop = asyncio.get_running_loop()
        if self._proto.state is not _CLOSED:
            now = loop.time()
            self._perform(self._proto.close(now), now)
        task = self._task
        if task is None or task.done():
            self._finish()
            return
        if task is asyncio.current_task():
            return  # called from inside the client's own task: it is ending already
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_BUDGET)
        if not done:
            log.warning("client did not shut down within %.1f s; cancelling it", _CLOSE_BUDGET)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0 - _CLOSE_BUDGET)

    async def __aenter__(self) -> AsyncClient:
        """Start the client (see :meth:`start`)."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client (see :meth:`close`)."""
        await self.close()

    async def wait_until(
        self, state: ConnectionState | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until the connection enters ``state`` (a :class:`ConnectionState` or its
        value, ``"subscribed"``).

        Returns at once if it is in ``state`` now. Raises
        :class:`~kraken_proto.errors.WaitTimeoutError` (a ``TimeoutError`` naming the last
        connection failure) after ``timeout`` seconds (``None``: no limit), and
        :class:`~kraken_proto.errors.KrakenConnectionError` if the client closes first.
        """
        wanted = as_state(state)
        if self._proto.state is wanted:
            return
        if self._proto.state is _CLOSED and not self.running:
            raise self._closed_error(f"the client is closed; it will not become {wanted.value!r}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, future)
        self._state_waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise self._timed_out(
                f"the connection did not become {wanted.value!r}", timeout
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._state_waiters.remove(entry)

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> list[Subscribed | Unsubscribed]:
        """Subscribe ``symbols`` (a str or an iterable of str) to ``channel`` (``depth=``,
        ``interval=``, ... as Kraken names them). Remembered and replayed after every reconnect.

        With ``wait=True`` (default) returns the per-symbol :class:`Subscribed` acks, waiting
        for the connection if it is not up yet; raises
        :class:`~kraken_proto.errors.SubscriptionError` (Kraken's text in ``error``) if a
        symbol is refused, :class:`~kraken_proto.errors.WaitTimeoutError` (a
        ``TimeoutError`` naming the last connection failure) after ``timeout`` seconds (the
        subscription stays requested; ``None``: no limit),
        :class:`~kraken_proto.errors.KrakenConnectionError` if the client closes first.
        With ``wait=False`` returns ``[]`` once the request is handed to the protocol
        (allowed before :meth:`start`). Bad arguments raise
        :class:`~kraken_proto.errors.LocalProtocolError` at once.
        """
        return await self._request("subscribe", channel, symbols, wait, timeout, params)

    async def unsubscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> list[Subscribed | Unsubscribed]:
        """Stop a subscription; with ``wait=True`` returns the :class:`Unsubscribed` acks.

        Errors as for :meth:`subscribe`. While disconnected the subscription is simply
        forgotten (and acknowledged at once).
        """
        return await self._request("unsubscribe", channel, symbols, wait, timeout, params)

    async def _request(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        wait: bool,
        timeout: float | None,
        params: dict[str, Any],
    ) -> list[Subscribed | Unsubscribed]:
        names, checked = check_symbols(channel, symbols, self._proto.host)
        if wait and not self.running:
            raise LocalProtocolError(
                f"{method} with wait=True needs a running client: use "
                "'async with connect(...) as client' (or await client.start()), "
                "or pass wait=False to only register it"
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        if method == "subscribe":
            _, actions = self._proto.subscribe(channel, names, now, **params)
        else:
            _, actions = self._proto.unsubscribe(channel, names, now, **params)
        if not wait:
            self._perform(actions, now)
            return []
        waiter = AckWaiter(method, channel, checked)
        future: asyncio.Future[None] = loop.create_future()
        entry = (waiter, future)
        self._acks.append(entry)
        try:
            self._perform(actions, now)
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            label = request_label(method, channel, checked)
            raise self._timed_out(f"no answer to {label}", timeout) from None
        finally:
            with contextlib.suppress(ValueError):
                self._acks.remove(entry)
        return waiter.result()

    # ------------------------------------------------------------------ trading

    async def submit(
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send a trading request (``AddOrder``, ``CancelOrder``, ...) and return its settled
        :class:`~kraken_proto.trading.OrderResponse` once Kraken accepted it.

        Needs a running ``private=True`` client. If the connection is not open and
        authenticated yet (connecting, fetching the token, reconnecting), waits for state
        ``subscribed`` first: the request is only handed to the protocol on an open
        connection, never queued across connections. Then waits for its one
        ``OrderResponse`` (the core always settles it, ``request_timeout`` at the latest),
        which also reaches callbacks and iteration like every event.

        Raises :class:`~kraken_proto.errors.OrderError` (Kraken refused it),
        :class:`~kraken_proto.errors.UnknownOutcomeError` (no answer: reconcile through
        ``executions``), :class:`~kraken_proto.errors.KrakenConnectionError` (not sent, or
        the client closed while waiting to send),
        :class:`~kraken_proto.errors.WaitTimeoutError` after ``timeout`` seconds (if it was
        sent it stays in flight and its ``OrderResponse`` still arrives as an event), and
        at once :class:`~kraken_proto.errors.InvalidRequestError`,
        :class:`~kraken_proto.errors.TradingRateLimitError` or
        :class:`~kraken_proto.errors.LocalProtocolError` for local misuse.
        """
        proto = self._proto
        if proto.host != "auth":
            raise LocalProtocolError(
                "trading needs a private client: connect(config, private=True)"
            )
        method = request.method
        if not self.running:
            if self._task is not None:
                raise self._closed_error(f"{method} not sent: the client is closed")
            raise LocalProtocolError(
                f"{method} needs a running client: use 'async with "
                "connect(config, private=True) as client' (or await client.start())"
            )
        loop = asyncio.get_running_loop()
        deadline = Deadline(timeout, loop.time)
        while proto.state not in TRADABLE_STATES:
            try:
                if deadline.expired:
                    raise TimeoutError
                await self.wait_until(ConnectionState.SUBSCRIBED, deadline.remaining())
            except TimeoutError:
                raise self._timed_out(
                    f"{method} not sent: the connection did not become 'subscribed'", timeout
                ) from None
        now = loop.time()
        req_id, actions = proto.submit(request, now)
        future: asyncio.Future[OrderResponse] = loop.create_future()
        self._orders[req_id] = future
        try:
            self._perform(actions, now)
            response = await asyncio.wait_for(future, deadline.remaining())
        except asyncio.TimeoutError:
            what = f"no answer to {method} (req_id {req_id})"
            raise self._timed_out(what, timeout, IN_FLIGHT) from None
        finally:
            if self._orders.get(req_id) is future:
                del self._orders[req_id]
        response.raise_for_outcome()
        return response

    async def add_order(
        self, *, timeout: float | None = DEFAULT_TIMEOUT, **fields: Any
    ) -> AddOrderResult:
        """Place one order (the fields of :class:`~kraken_proto.trading.AddOrder`); see
        :meth:`submit` for waiting and errors."""
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
        """Set Kraken's dead man's switch once to ``timeout`` seconds (0 disarms it);
        :meth:`arm_dead_man_switch` keeps it refreshed. ``wait_timeout`` bounds the wait."""
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
        """Keep Kraken's dead man's switch armed: every open order is cancelled if this
        client stops refreshing it for ``timeout`` seconds (sent now if connected, then
        every ``interval`` s, default ``timeout / 3``, and after reconnects). :meth:`close`
        disarms it. Its answers arrive as ``OrderResponse`` events."""
        now = self._now()
        self._perform(self._proto.arm_dead_man_switch(timeout, now, interval=interval), now)

    def disarm_dead_man_switch(self) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        now = self._now()
        self._perform(self._proto.disarm_dead_man_switch(now), now)

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> AsyncIterator[Event]:
        """Iterate over the events (see :meth:`events`)."""
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """The buffered events in order, ``Dropped`` summaries included.

        Ends after the client has closed and every buffered event was consumed. Several
        iterators share one stream (each event goes to one of them).
        """
        if not self._buffer_events:
            raise LocalProtocolError(
                "this client was created with buffer_events=False: events go to callbacks "
                "only (register them with on())"
            )
        loop = asyncio.get_running_loop()
        buffer = self._router.buffer
        take = buffer.take
        while True:
            event = take()  # the common case: no clock needed
            if event is not None:
                yield event
                continue
            now = loop.time()
            event = buffer.pop(now)
            if event is not None:
                yield event
                continue
            if self._done:
                return
            readable = self._readable
            readable.clear()
            ready = buffer.next_ready(now)
            if ready is None:
                await readable.wait()
            else:  # the delivery rate cap holds the next event back until ``ready``
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(readable.wait(), max(0.0, ready - now))

    # ------------------------------------------------------------------ performing actions

    def _perform(self, actions: list[Action], now: float) -> None:
        """Perform ``actions`` in order, then re-arm the timer. Never raises."""
        for action in actions:
            try:
                if isinstance(action, Emit):
                    self._emit(action.event, now)
                elif isinstance(action, Send):
                    self._send(action.text)
                elif isinstance(action, OpenConnection):
                    self._open(action.url)
                elif isinstance(action, CloseConnection):
                    self._close_connection(action)
                elif isinstance(action, FetchToken):
                    self._fetch_token(action.request)
            except Exception:
                log.exception("driver error while performing %s", type(action).__name__)
        if self._proto.state is _CLOSED:
            signal = self._closed_signal
            if signal is not None and not signal.done():
                signal.set_result(None)
        self._arm_timer()

    def _emit(self, event: Event, now: float) -> None:
        self._router.dispatch(event, now)
        if self._buffer_events:
            self._readable.set()
        if self._acks and isinstance(event, _ACK_EVENTS):
            for entry in list(self._acks):
                waiter, future = entry
                if waiter.feed(event):
                    self._acks.remove(entry)
                    if not future.done():
                        future.set_result(None)
        elif type(event) is StateChanged:
            self._on_state_changed(event)
        elif type(event) is OrderResponse and self._orders:
            settled = self._orders.pop(event.req_id, None)
            if settled is not None and not settled.done():
                settled.set_result(event)

    def _on_state_changed(self, event: StateChanged) -> None:
        log.debug("state %s -> %s: %s", event.old, event.new, event.reason)
        self._state_changed(event)
        if self._state_waiters:
            new = ConnectionState(event.new)
            for entry in list(self._state_waiters):
                state, future = entry
                if state is new and not future.done():
                    future.set_result(None)

    def _send(self, text: str) -> None:
        conn = self._conn
        ws = conn.ws if conn is not None else None
        if ws is None or ws.closed:
            log.debug("not sent, the connection is gone: %.80s", redact_frame(text))
            return
        # An uncompressed frame is written by the task's first step: tasks start in the order
        # they were created, so frames leave in the order the protocol asked for them.
        loop = self._require_loop()
        task = loop.create_task(self._write(ws, text))
        self._send_tasks.add(task)
        task.add_done_callback(self._send_tasks.discard)
        self._router.frames_out += 1
        if self._frame_hook is not None:
            self._call_frame_hook("out", redact_frame(text), loop.time())

    def _call_frame_hook(self, direction: str, text: str | bytes, now: float) -> None:
        hook = self._frame_hook
        assert hook is not None
        try:
            hook(direction, text, now)
        except Exception:
            log.exception("frame_hook raised; the message was handled normally")

    @staticmethod
    async def _write(ws: aiohttp.ClientWebSocketResponse[bool], text: str) -> None:
        try:
            await ws.send_str(text)
        except Exception as exc:  # the reader sees the connection end and reports it
            log.debug("send failed: %s: %s", type(exc).__name__, exc)

    def _open(self, url: str) -> None:
        old = self._conn
        if old is not None and old.task is not None:  # defensive: never two current sockets
            old.task.cancel()
        conn = _Connection(url)
        self._conn = conn
        task = self._require_loop().create_task(self._connection(conn), name="kraken-aio-conn")
        conn.task = task
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    def _fetch_token(self, request: TokenRequest) -> None:
        """Start the token request for the current connection (one at a time)."""
        old = self._token_task
        if old is not None:  # pragma: no cover - the old connection's end cancelled it
            old.cancel()
        conn = self._conn
        if conn is None:  # pragma: no cover - FetchToken only follows connection_made
            return
        task = self._require_loop().create_task(self._token(conn, request), name="kraken-aio-token")
        conn.token_task = self._token_task = task

    async def _token(self, conn: _Connection, request: TokenRequest) -> None:
        """Fetch a token and hand it (or the failure) to the protocol, if still wanted."""
        loop = self._require_loop()
        token = ""
        failure: AuthenticationError | None = None
        try:
            session = self._session
            assert session is not None
            http = request.build(time.time())
            token = await fetch_token_async(session, http, self._config.timeout)
        except AuthenticationError as exc:
            failure = exc
        except Exception as exc:  # a driver bug: fail this attempt, retry with backoff
            log.exception("token request raised")
            failure = AuthenticationError(
                f"token request failed: {type(exc).__name__}", terminal=False
            )
        finally:
            if self._token_task is asyncio.current_task():
                self._token_task = None
        if self._conn is not conn or self._proto.state is not ConnectionState.AUTHENTICATING:
            log.debug("token result dropped: the connection that asked for it is gone")
            return
        now = loop.time()
        if failure is not None:
            log.debug("token request failed: %s", failure.error)
            actions = self._proto.token_failed(failure.error, now, terminal=failure.terminal)
        else:
            actions = self._proto.token_received(token, now)
        self._perform(actions, now)

    def _close_connection(self, action: CloseConnection) -> None:
        conn = self._conn
        self._conn = None
        if conn is None:
            return
        conn.close_code = action.code
        conn.close_reason = action.reason
        if conn.task is not None:
            conn.task.cancel()  # aborts a pending connect; the task's finally closes the socket

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        deadline = self._proto.next_deadline()
        timer = self._timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        if timer is not None:
            if self._timer_at <= deadline:
                return  # fires no later than needed; it re-arms itself when it fires
            timer.cancel()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        loop = self._require_loop()
        now = loop.time()
        try:
            actions = self._proto.handle_timer(now)
        except Exception:
            log.exception("handle_timer raised")
            actions = []
        self._perform(actions, now)
        deadline = self._proto.next_deadline()
        if deadline is not None and deadline <= now and self._timer is not None:
            # Still due after firing: retry shortly instead of spinning.
            self._timer.cancel()
            self._timer_at = now + _TIMER_RETRY
            self._timer = loop.call_at(self._timer_at, self._on_timer)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    # ------------------------------------------------------------------ tasks

    async def _run(self) -> None:
        """The client's life: connect, then wait for ``CLOSED``; shut down on the way out."""
        signal = self._closed_signal
        assert signal is not None
        try:
            await signal
        finally:
            await self._shutdown()

    async def _connection(self, conn: _Connection) -> None:
        """Open one WebSocket and feed everything it receives to the protocol."""
        loop = self._require_loop()
        proto = self._proto
        try:
            session = self._session
            assert session is not None
            try:
                ws = await session.ws_connect(
                    conn.url,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_WS_CLOSE_TIMEOUT),
                    heartbeat=None,
                    autoping=True,
                    max_msg_size=self._config.max_message_size,
                    ssl=True,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("connect to %s failed: %s: %s", conn.url, type(exc).__name__, exc)
                if self._conn is conn:
                    self._conn = None
                    self._connection_lost(loop.time(), exc)
                return
            conn.ws = ws
            if self._conn is not conn:
                return  # given up on while connecting: the finally closes the socket
            now = loop.time()
            self._perform(proto.connection_made(now), now)
            await self._read(conn, ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a driver bug: report the connection as lost, keep going
            log.exception("connection task failed")
            if self._conn is conn:
                self._conn = None
                self._connection_lost(loop.time(), exc)
        finally:
            if conn.token_task is not None:
                conn.token_task.cancel()  # its answer is for this socket only
            ws_ = conn.ws
            if ws_ is not None and not ws_.closed:
                reason = conn.close_reason.encode("utf-8", "replace")[:123]
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        ws_.close(code=conn.close_code, message=reason), _CONNECTIONS_WAIT
                    )

    async def _read(self, conn: _Connection, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        loop = self._require_loop()
        clock = loop.time
        receive_data = self._proto.receive_data
        router = self._router
        dispatch = router.dispatch
        market = _MARKET_EVENTS
        receive = ws.receive
        text_types = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
        end_types = (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
        while True:
            msg = await receive()
            if self._conn is not conn:
                return
            now = clock()
            kind = msg.type
            if kind in text_types:
                router.frames_in += 1
                payload: str | bytes = msg.data
                if self._frame_hook is not None:
                    self._call_frame_hook("in", redact_frame(payload), now)
                try:
                    actions = receive_data(payload, now)
                except Exception as exc:
                    log.exception("receive_data raised")
                    excerpt = payload[:_EXCERPT]
                    if isinstance(excerpt, bytes):
                        excerpt = excerpt.decode("utf-8", "replace")
                    problem = f"frame not handled: {type(exc).__name__}: {exc}"
                    actions = [Emit(ProtocolError(problem, excerpt, now))]
                # The common case: market data. Delivered as _perform would, in order; the
                # first other action hands the rest to _perform.
                done = 0
                for action in actions:
                    if type(action) is not Emit:
                        break
                    event = action.event
                    if type(event) not in market:
                        break
                    try:
                        dispatch(event, now)
                    except Exception:  # pragma: no cover - dispatch catches callback errors
                        log.exception("driver error while delivering %s", type(event).__name__)
                    done += 1
                if done:
                    if self._buffer_events:
                        self._readable.set()
                    if done == len(actions):
                        continue  # no state changed, no deadline moved earlier: timer stays
                    actions = actions[done:]
                self._perform(actions, now)
            elif kind in end_types:
                # Only an ERROR carries the cause; after a plain close ``ws.exception()`` may
                # hold an unrelated failure of aiohttp's own close reply.
                error = msg.data if isinstance(msg.data, BaseException) else None
                self._conn = None
                self._connection_lost(now, error, ws.close_code)
                return

    async def _shutdown(self) -> None:
        """Close everything within a bounded time; wake every waiter."""
        loop = self._require_loop()
        if self._proto.state is not _CLOSED:  # cancelled from outside
            now = loop.time()
            self._perform(self._proto.close(now), now)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        self._conn = None
        if conn is not None and conn.task is not None:
            conn.task.cancel()
        token_task, self._token_task = self._token_task, None
        if token_task is not None:
            token_task.cancel()
        tasks = self._conn_tasks | self._send_tasks
        if token_task is not None:
            tasks = tasks | {token_task}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_CONNECTIONS_WAIT)
            for task in pending:
                task.cancel()
        session, self._session = self._session, None
        if session is not None:
            try:
                await asyncio.wait_for(session.close(), _SESSION_CLOSE_WAIT)
            except Exception as exc:
                log.debug("closing the HTTP session: %s: %s", type(exc).__name__, exc)
        self._finish()

    def _finish(self) -> None:
        """The client is closed: fail pending waits and let iterators end."""
        self._done = True
        self._readable.set()
        for waiter, future in self._acks:
            if not future.done():
                label = request_label(waiter.method, waiter.channel, waiter.symbols)
                future.set_exception(
                    self._closed_error(f"the client closed before Kraken answered {label}")
                )
        self._acks.clear()
        for req_id, order in list(self._orders.items()):  # the core settles them on close
            if not order.done():  # pragma: no cover - a backstop
                order.set_exception(
                    self._closed_error(f"the client closed before request {req_id} was settled")
                )
        self._orders.clear()
        for state, future in self._state_waiters:
            if not future.done():
                future.set_exception(
                    self._closed_error(f"the client closed before becoming {state.value!r}")
                )
