"""A background IO thread around :class:`~kraken_transports.sockets.SocketClient`, for scripts.

::

    from kraken_proto import BookUpdate, ClientConfig
    from kraken_transports.threaded import ThreadedClient

    with ThreadedClient(ClientConfig()) as client:          # starts the thread
        client.subscribe("book", ["BTC/USD", "ETH/USD"], depth=10)   # blocks until acked
        for event in client.events(idle_timeout=30):
            if isinstance(event, BookUpdate):
                bids, asks = client.book_snapshot(event.symbol)
                print(event.symbol, bids[0].price, asks[0].price)
    # leaving the block closes the connection and stops the thread within about a second

How it works: one daemon thread (named ``kraken-ws``) runs ``SocketClient.step()`` in a loop.
Other threads never touch the socket or the protocol: their commands (subscribe,
unsubscribe, close) go through a queue, and a byte on a ``socket.socketpair()`` that is part
of the thread's ``select`` set wakes it at once. Events cross to the consuming thread
through the bounded buffer under the client's lock (a ``threading.Condition``).

Threading rules:

- Callbacks registered with :meth:`ThreadedClient.on` run **on the IO thread**, one event at
  a time, without the client's lock: other threads keep reading, subscribing and trading
  while a callback runs, and :meth:`~ThreadedClient.close` returns within about a second
  even with slow callbacks. A slow callback still delays the stream (the IO thread does
  nothing else meanwhile). Callbacks may call non-blocking methods (``subscribe(...,
  wait=False)``, ``book()``, ``close()``); blocking ones (``wait=True``, ``get()``,
  ``events()``) raise there.
- The IO thread's work per step is bounded (at most 256 messages) and it stops early, after
  the message in hand, when ``close()`` or a command from another thread is waiting, so a
  backlog never starves them.
- Everything else is safe from any thread.

Private and level3 clients (``ThreadedClient(config, private=True)`` / ``level3=True``) work
as the socket client's do: the token is fetched on a short-lived helper thread and handed
to the protocol by the IO thread. Trading calls (:meth:`ThreadedClient.submit`,
``add_order``, ``cancel_order``, ...) are blocking and thread-safe: the IO thread sends the
request and the caller waits for its ``OrderResponse``; they raise if called from a
callback.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import BookLevel, Event, Subscribed, Unsubscribed
from kraken_proto.level3 import L3Book
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView
from kraken_proto.trading import OrderResponse, TradingRequest
from kraken_transports.base import (
    DEFAULT_TIMEOUT,
    IN_FLIGHT,
    TRADABLE_STATES,
    Deadline,
    SyncTradingMixin,
    as_state,
    check_symbols,
    request_label,
)
from kraken_transports.router import AckWaiter, ClientStats
from kraken_transports.sockets import SocketClient

__all__ = ["ThreadedClient"]

log = logging.getLogger(__name__)

E = TypeVar("E")
T = TypeVar("T")

_IDLE_WAIT = 1.0  # longest wait of the IO thread with nothing to do (commands wake it)
_THREAD_NAME = "kraken-ws"
_Acks = list[Subscribed | Unsubscribed]


class _Unlocked:
    """Entered around the callbacks of each event on the IO thread, which holds the client's
    lock once there: wakes the waiting threads, then releases the lock until the callbacks
    return, so slow user code never holds it. (Where a thread holds it twice, as before
    :meth:`ThreadedClient.start`, the callbacks simply run with it held.)"""

    __slots__ = ("_cond",)

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond

    def __call__(self) -> _Unlocked:
        return self

    def __enter__(self) -> None:
        self._cond.notify_all()
        self._cond.release()

    def __exit__(self, *exc_info: object) -> None:
        self._cond.acquire()


class ThreadedClient(SyncTradingMixin):
    """A Kraken v2 WebSocket client whose IO runs on a background thread.

    Use it as a context manager (``with ThreadedClient(config) as client:``) or call
    :meth:`start` and :meth:`close`. ``buffer_events=False`` makes a callback-only client.
    ``ssl_context`` replaces the default verifying TLS context (e.g. for a private CA).
    A closed client may be started again (:meth:`start`, or ``with client:`` once more); it
    resubscribes what was subscribed when it closed.

    ``private=True`` connects to the auth host (executions, balances, trading with
    :meth:`submit`, ``add_order``, ...); ``level3=True`` to the level3 host. Both need
    ``api_key``/``api_secret`` in ``config``, else :class:`LocalProtocolError` is raised.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        buffer_events: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._client = SocketClient(
            config,
            private=private,
            level3=level3,
            buffer_events=buffer_events,
            ssl_context=ssl_context,
        )
        self._buffer_events = buffer_events
        self._cond = threading.Condition(threading.RLock())
        self._client._lock = self._cond
        self._client._router.callback_guard = _Unlocked(self._cond)
        self._client._pause = self._should_pause
        self._commands: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._acks: list[tuple[AckWaiter, concurrent.futures.Future[_Acks]]] = []
        self._orders: list[concurrent.futures.Future[OrderResponse]] = []
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._closing = False  # close() was called
        self._finished = False  # the IO thread has ended (or never will run)
        self._close_budget = 0.5

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start connecting and the IO thread. No-op if running.

        A closed client starts again: it reconnects and resubscribes what was subscribed
        when it closed (the protocol keeps subscriptions; subscribing one of them again
        raises ``LocalProtocolError``: already subscribed). Events still queued from the
        previous run stay readable.
        """
        with self._cond:
            if self._running():
                return
            if self._thread is not None and not self._finished:
                raise LocalProtocolError(
                    "this ThreadedClient is still closing (is a callback blocking its IO "
                    "thread?); start it again once close() has returned"
                )
            self._closing = self._finished = False
            self._close_budget = 0.5
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._client.connect()
            self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
            self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Close the connection and stop the IO thread; returns within about ``timeout`` s.

        From any state (connecting, subscribed, stalled, in backoff, behind a backlog with
        slow callbacks: the IO thread stops after the callbacks of the event in hand):
        about half of the time goes to the WebSocket close handshake, then the socket is
        closed hard and the thread joined. Idempotent. Waiting subscribe calls fail with
        :class:`~kraken_proto.KrakenConnectionError`; queued events stay readable. A
        closed client may be started again.
        """
        with self._cond:
            thread = self._thread
            if not self._closing:
                self._closing = True
                self._close_budget = max(0.0, timeout / 2)
                if thread is None:  # never started: nothing to stop
                    self._client.close(0.0)
                    self._finished = True
                    self._cond.notify_all()
        self._wake()
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "the kraken-ws IO thread did not stop within %.1f s (is a callback blocking?)",
                timeout,
            )

    def __enter__(self) -> ThreadedClient:
        """Start the client and return it."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    # ------------------------------------------------------------------ queries

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._client.config

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        with self._cond:
            return self._client.state

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped by status (a consistent snapshot)."""
        with self._cond:
            return self._client.subscriptions

    @property
    def stats(self) -> ClientStats:
        """Counters, taken under the lock: ``received == delivered + dropped + coalesced +
        queued`` holds for every value returned."""
        with self._cond:
            return self._client.stats

    def book(self, symbol: str) -> OrderBook | None:
        """The live :class:`~kraken_proto.OrderBook` of ``symbol`` (``None`` if not subscribed).

        The object is updated in place by the IO thread: reading it from another thread
        can observe a half-applied update. Read it inside callbacks (which run on the IO
        thread), or use :meth:`book_snapshot` from other threads.
        """
        return self._client.book(symbol)

    def book_snapshot(
        self, symbol: str, depth: int | None = None
    ) -> tuple[list[BookLevel], list[BookLevel]] | None:
        """``(bids, asks)`` of ``symbol``, best first, copied consistently under the lock.

        ``None`` if the symbol is not subscribed; raises
        :class:`~kraken_proto.BookNotLiveError` while the book is not live (awaiting its
        snapshot, resyncing, failed). ``depth`` limits the levels per side.
        """
        with self._cond:
            book = self._client.book(symbol)
            if book is None:
                return None
            return book.bids(depth), book.asks(depth)

    def l3_book(self, symbol: str) -> L3Book | None:
        """The live level3 book of ``symbol`` (``None`` if not subscribed); updated in place
        by the IO thread, so read it inside callbacks, as for :meth:`book`."""
        return self._client.l3_book(symbol)

    def rate_counter(self, symbol: str) -> RateCounterState:
        """The trading rate counter of ``symbol`` as this client tracks it, now."""
        with self._cond:
            return self._client.rate_counter(symbol)

    @property
    def pending_requests(self) -> int:
        """Trading requests submitted and not settled yet."""
        with self._cond:
            return self._client.pending_requests

    def on(self, event_type: type[E] | None, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type`` (``None``: all events).

        Callbacks run **on the IO thread**, as events are produced and before backpressure
        applies, without the client's lock (other threads are not held up while they run);
        exceptions are counted, the first of each callback logged with its traceback.
        Returns a function that removes the callback (safe from any thread).
        """
        with self._cond:
            remove = self._client.on(event_type, callback)

        def locked_remove() -> None:
            with self._cond:
                remove()

        return locked_remove

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> list[Subscribed | Unsubscribed]:
        """Subscribe ``symbols`` (a str or an iterable of str) to ``channel`` from any thread
        (replayed after reconnects).

        With ``wait=True`` (default) blocks until every symbol is acknowledged and returns
        the ``Subscribed`` events; raises :class:`~kraken_proto.SubscriptionError` with
        Kraken's text on a refusal, :class:`~kraken_proto.errors.WaitTimeoutError` (a
        ``TimeoutError`` naming the last connection failure) after ``timeout`` seconds (the
        subscription stays requested; ``None``: no limit) and
        :class:`~kraken_proto.KrakenConnectionError` if the client closes first.
        ``wait=False`` returns ``[]`` once the request is queued (also before :meth:`start`
        and after :meth:`close`: it is sent on the next start). Bad arguments raise
        ``LocalProtocolError``.
        """
        return self._request("subscribe", channel, symbols, params, wait, timeout)

    def unsubscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> list[Subscribed | Unsubscribed]:
        """Stop a subscription; like :meth:`subscribe`, ``wait=True`` returns the acks."""
        return self._request("unsubscribe", channel, symbols, params, wait, timeout)

    def _request(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        params: dict[str, Any],
        wait: bool,
        timeout: float | None,
    ) -> list[Subscribed | Unsubscribed]:
        client = self._client
        names, checked = check_symbols(channel, symbols, client.protocol.host)

        def register() -> None:
            client._end_request(client._begin_request(method, channel, names, checked, params))

        if self._on_io_thread():
            if wait:
                raise LocalProtocolError(
                    f"{method}(wait=True) cannot run inside a callback; pass wait=False"
                )
            register()
            return []
        with self._cond:
            if not self._running():
                if wait:
                    closed = "this one is closed: " if self._closing else ""
                    raise LocalProtocolError(
                        f"{method}(wait=True) needs a running client; {closed}use 'with "
                        "ThreadedClient(...)' or start(), or pass wait=False to register it"
                    )
                if self._thread is not None and not self._finished:
                    raise LocalProtocolError("this ThreadedClient is closing")
                register()
                return []

        def command() -> concurrent.futures.Future[_Acks] | None:
            waiter = client._begin_request(method, channel, names, checked, params)
            if not wait:
                client._end_request(waiter)
                return None
            acked: concurrent.futures.Future[_Acks] = concurrent.futures.Future()
            self._acks.append((waiter, acked))
            return acked

        deadline = Deadline(timeout, time.monotonic)
        what = f"no answer to {request_label(method, channel, checked)}"
        acked = self._result(self._submit(command), deadline, what)
        if acked is None:
            return []
        return self._result(acked, deadline, what)

    def _result(
        self,
        future: concurrent.futures.Future[T],
        deadline: Deadline,
        what: str,
        note: str = "",
    ) -> T:
        try:
            return future.result(deadline.remaining())
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()  # the request stays made; nobody waits for its answer any more
            with self._cond:
                raise self._client._timed_out(what, deadline.timeout, note) from None

    # ------------------------------------------------------------------ trading

    def submit(
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send a trading request from any thread and return its settled, successful
        :class:`~kraken_proto.trading.OrderResponse` (see ``SocketClient.submit``).

        Waits until the connection is open and authenticated (state ``subscribed``) if it
        is not yet, then the IO thread sends the request and this call waits for its
        answer. Raises ``OrderError``, ``UnknownOutcomeError``, ``KrakenConnectionError``
        (not sent, or the client is or gets closed),
        :class:`~kraken_proto.errors.WaitTimeoutError` after ``timeout`` seconds (a sent
        request stays in flight; its ``OrderResponse`` arrives as an event), and
        ``InvalidRequestError``/``TradingRateLimitError``/``LocalProtocolError`` for local
        misuse (also when called from a callback or before :meth:`start`).
        """
        client = self._client
        method = request.method
        if client.protocol.host != "auth":
            raise LocalProtocolError(
                "trading needs a private client: ThreadedClient(config, private=True)"
            )
        if self._on_io_thread():
            raise LocalProtocolError(
                f"{method} cannot run inside a callback: it blocks until Kraken answers"
            )
        deadline = Deadline(timeout, time.monotonic)
        with self._cond:
            if self._thread is None and not self._closing:
                raise LocalProtocolError(
                    f"{method} needs a started client: use 'with ThreadedClient(...)'"
                )
        settled: concurrent.futures.Future[OrderResponse] = concurrent.futures.Future()

        def deliver(response: OrderResponse) -> None:
            if not settled.done():
                settled.set_result(response)

        def command() -> int | None:
            # On the IO thread, which alone changes the state: no lock needed to read it,
            # and none held while _begin_submit runs the callbacks of what it emits.
            if client.state not in TRADABLE_STATES:  # pragma: no cover - a race
                return None  # the connection went away meanwhile: wait for it again
            with self._cond:
                self._orders.append(settled)
            return client._begin_submit(request, deliver)

        while True:
            self._wait_tradable(method, deadline)
            try:
                accepted = self._submit(command)
            except LocalProtocolError:  # pragma: no cover - closed between wait and send
                with self._cond:
                    raise client._closed_error(f"{method} not sent: the client is closed") from None
            req_id = self._result(
                accepted, deadline, f"{method} not sent: the connection did not become 'subscribed'"
            )
            if req_id is not None:
                break
        try:
            response = self._result(
                settled, deadline, f"no answer to {method} (req_id {req_id})", IN_FLIGHT
            )
        finally:
            with self._cond:
                if settled in self._orders:
                    self._orders.remove(settled)
        response.raise_for_outcome()
        return response

    def _wait_tradable(self, method: str, deadline: Deadline) -> None:
        self._await(
            lambda: self._client.state in TRADABLE_STATES,
            deadline,
            f"{method} not sent: the connection did not become 'subscribed'",
            f"{method} not sent: the client is closed",
            closing_ends=True,
        )

    def _await(
        self,
        done: Callable[[], bool],
        deadline: Deadline,
        what: str,
        closed: str,
        *,
        closing_ends: bool = False,
    ) -> None:
        """Wait (woken by the IO thread) until ``done()``; raise the timeout of ``what`` past
        ``deadline``, or the error ``closed`` once the client is closed."""
        client = self._client
        with self._cond:
            while not done():
                if (
                    self._finished
                    or client.state is ConnectionState.CLOSED
                    or (closing_ends and self._closing)
                ):
                    raise client._closed_error(closed)
                wait = deadline.remaining()
                if wait is not None and wait <= 0:
                    raise client._timed_out(what, deadline.timeout)
                self._cond.wait(wait)

    def arm_dead_man_switch(self, timeout: int, interval: float | None = None) -> None:
        """Keep Kraken's dead man's switch armed (see ``SocketClient.arm_dead_man_switch``);
        :meth:`close` disarms it. Safe from any thread, callbacks included."""
        self._call(lambda: self._client.arm_dead_man_switch(timeout, interval))

    def disarm_dead_man_switch(self) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        self._call(self._client.disarm_dead_man_switch)

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the IO thread (directly if this is it, or while none runs) and wait."""
        if self._on_io_thread():
            fn()
            return
        with self._cond:
            if not self._running():
                fn()
                return
        self._submit(fn).result()

    # ------------------------------------------------------------------ events

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` s (``None``: as long as it takes).

        Returns ``None`` on timeout, or at once when the client is closed and every queued
        event was read.
        """
        self._check_reader()
        buffer = self._client._router.buffer
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                event = self._client.poll()
                if event is not None:
                    return event
                now = time.monotonic()
                ready = buffer.next_ready(now)
                if ready is None and self._ended():
                    return None
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    return None
                if ready is not None:  # the delivery rate cap holds the next event back
                    wait = ready - now if wait is None else min(wait, ready - now)
                self._cond.wait(wait)

    def events(self, idle_timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they arrive; ends once the client is closed and drained, or
        after ``idle_timeout`` seconds without an event (``None``: never)."""
        self._check_reader()
        while True:
            event = self.get(idle_timeout)
            if event is None:
                return
            yield event

    def __iter__(self) -> Iterator[Event]:
        """``for event in client:`` is ``client.events()``."""
        return self.events()

    def wait_until(
        self, state: ConnectionState | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Block until the connection is in ``state`` (a :class:`ConnectionState` or its
        value, ``"subscribed"``); returns at once if it is.

        Raises :class:`~kraken_proto.errors.WaitTimeoutError` (a ``TimeoutError`` naming
        the last connection failure) after ``timeout`` seconds (``None``: no limit) and
        :class:`~kraken_proto.KrakenConnectionError` if the client closes first.
        """
        wanted = as_state(state)
        if self._on_io_thread():
            raise LocalProtocolError("wait_until() cannot run inside a callback: it blocks")
        self._await(
            lambda: self._client.state is wanted,
            Deadline(timeout, time.monotonic),
            f"the connection did not become {wanted.value!r}",
            f"the client is closed; it will not become {wanted.value!r}",
        )

    def _check_reader(self) -> None:
        if not self._buffer_events:
            raise LocalProtocolError(
                "this client was created with buffer_events=False: events go to callbacks only"
            )
        if self._on_io_thread():
            raise LocalProtocolError("get()/events() cannot be called from a callback")
        if self._thread is None and not self._closing:
            raise LocalProtocolError("start the client first: use 'with ThreadedClient(...)'")

    def _ended(self) -> bool:
        return self._finished or self._client.state is ConnectionState.CLOSED

    # ------------------------------------------------------------------ the IO thread

    def _on_io_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _running(self) -> bool:
        """Whether the IO thread runs and takes commands (started, not closing)."""
        return self._thread is not None and not self._closing and not self._finished

    def _should_pause(self) -> bool:
        """Asked by the IO thread after each message: end the step now, to close, run a
        command or settle an answered subscribe, instead of working off a backlog first."""
        return (
            self._closing
            or not self._commands.empty()
            or any(waiter.done for waiter, _ in self._acks)
        )

    def _wake(self) -> None:
        sock = self._wake_w
        if sock is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                sock.send(b"\0")

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._cond:
            if self._closing or self._finished:
                raise LocalProtocolError("this ThreadedClient is closed")
            self._commands.put((fn, future))
        self._wake()
        return future

    def _run(self) -> None:
        client = self._client
        try:
            while True:
                self._run_commands()
                if self._closing:
                    break
                client._step(_IDLE_WAIT, self._wake_r)
                self._settle()
        except BaseException:
            log.exception("the kraken-ws IO thread failed")
        finally:
            try:
                client.close(timeout=self._close_budget)
            except Exception:
                log.exception("closing the connection failed")
            with self._cond:
                self._finished = True
                self._fail_all()
                for sock in (self._wake_r, self._wake_w):
                    if sock is not None:
                        sock.close()
                self._wake_r = self._wake_w = None
                self._cond.notify_all()

    def _run_commands(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _settle(self) -> None:
        """Resolve the answered subscribe/unsubscribe calls; wake readers."""
        with self._cond:
            for entry in list(self._acks):
                waiter, future = entry
                if waiter.done or future.done():
                    self._acks.remove(entry)
                    self._client._end_request(waiter)
                    if future.done():  # cancelled: its caller timed out
                        continue
                    try:
                        future.set_result(waiter.result())
                    except Exception as exc:
                        future.set_exception(exc)
            if self._acks and self._client.state is ConnectionState.CLOSED:
                self._fail_all()
            self._cond.notify_all()

    def _fail_all(self) -> None:
        """The connection is closed: fail every waiting call (under the lock)."""
        client = self._client
        for waiter, future in self._acks:
            client._end_request(waiter)
            if not future.done():
                label = request_label(waiter.method, waiter.channel, waiter.symbols)
                error = client._closed_error(f"the client closed before Kraken answered {label}")
                future.set_exception(error)
        self._acks.clear()
        for order in self._orders:  # the core settles them on close; this is a backstop
            if not order.done():  # pragma: no cover
                order.set_exception(client._closed_error("the client closed first"))
        self._orders.clear()
        while True:
            try:
                _, future = self._commands.get_nowait()
            except queue.Empty:
                break
            if future.set_running_or_notify_cancel():
                future.set_exception(LocalProtocolError("this ThreadedClient is closed"))
