"""A background IO thread running the asyncio driver's IO, for scripts.

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

One daemon thread (``kraken-ws``) runs an asyncio event loop with the aiohttp IO of
:mod:`kraken_transports.aiohttp_io`, the same as ``AsyncClient``'s. Other threads
never touch the socket or the protocol: their calls are handed to the event loop
(``call_soon_threadsafe``), which runs them after the message in hand; events reach them
through the bounded buffer under the client's lock, which the IO thread holds while it feeds
a message to the protocol. Readers are woken once per batch, not per event: a reader that
goes to sleep is woken after the next message the IO thread has handled. Callbacks run
**on the IO thread**, one event at a time and without the lock, so slow ones delay the
stream but never the other threads or :meth:`~ThreadedClient.close`; in them, non-blocking
calls work (``subscribe(..., wait=False)``, ``book()``, ``close()``) and blocking ones
raise. The IO thread lets its loop run every 256 messages, and after the message in hand
when ``close()`` or a call is waiting. Everything else is safe from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kraken_proto.errors import LocalProtocolError
from kraken_proto.state import ConnectionState
from kraken_transports.aiohttp_io import AioTransport
from kraken_transports.base import Deadline
from kraken_transports.blocking import BlockingClient

__all__ = ["ThreadedClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_THREAD_NAME = "kraken-ws"


class ThreadedClient(BlockingClient):
    """A Kraken v2 WebSocket client whose IO runs on a background thread.

    Use it as a context manager (``with ThreadedClient(config) as client:``) or call
    :meth:`start` and :meth:`close`; the arguments of every client (see
    :class:`~kraken_transports.client.ClientBase`; ``frame_hook`` runs on the IO thread).
    Every call answers as in the other drivers (``docs/drivers.md``); a ``private=True``
    client also trades (:meth:`submit`, ``add_order``, ...).
    """

    def _attach_io(self, ssl_context: ssl.SSLContext | None) -> None:
        lock = threading.RLock()  # held by the IO thread once, released around callbacks
        self._lock = lock
        self._cond = threading.Condition(lock)
        router = self._driver.router
        router.release, router.reacquire = lock.release, lock.acquire
        self._io = AioTransport(
            self._driver, ssl_context, lock=lock, wake_readers=self._wake_readers
        )
        self._commands: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False  # close() was called
        self._finished = False  # the IO thread has ended (or never will run)

    def _now(self) -> float:
        return time.monotonic()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`close`."""
        return self._thread is not None and not self._closing and not self._finished

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start connecting and the IO thread; a no-op if running. A closed client starts
        again: it resubscribes what was subscribed when it closed (events still queued from
        the previous run stay readable)."""
        with self._lock:
            if self.running:
                return
            if self._thread is not None and not self._finished:
                raise LocalProtocolError(
                    "this ThreadedClient is still closing (is a callback blocking its IO "
                    "thread?); start it again once close() has returned"
                )
            self._closing = self._finished = False
            self._loop = loop = asyncio.new_event_loop()
            self._io.begin(loop)  # the loop runs once the thread starts
            self._driver.connect(self._io.clock())
            life = loop.create_task(self._io.run(), name="kraken-threaded-client")
            self._thread = threading.Thread(
                target=self._run_io, args=(loop, life), name=_THREAD_NAME, daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Close the connection and stop the IO thread; returns within about ``timeout`` s.

        From any state (even behind a backlog with slow callbacks): the close handshake gets
        about half a second, then the socket is closed hard and the thread joined; past 90%
        of ``timeout`` the shutdown is cancelled. Idempotent. Pending waits fail with
        ``KrakenConnectionError``; queued events stay readable.
        """
        with self._lock:
            thread = self._thread
            first = not self._closing
            self._closing = True
            if first and (thread is None or thread is threading.current_thread()):
                self._driver.close(self._io.clock())  # never started, or from a callback
                if thread is None:
                    self._finished = True
                    self._cond.notify_all()
        if thread is None or thread is threading.current_thread():
            return
        if first:
            self._call_soon(self._close_on_loop)
        thread.join(timeout * 0.9)
        if thread.is_alive():
            self._call_soon(self._cancel_all)
            thread.join(timeout * 0.1)
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

    # ------------------------------------------------------------------ BlockingClient

    def _run(self, fn: Callable[[], T], what: str, deadline: Deadline) -> T:
        """On the IO thread while it runs (queued, interrupting it), else here; under the
        lock."""
        with self._lock:
            if self._thread is None or self._finished or self._in_callback():
                return fn()
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            self._commands.put((fn, future))
        self._call_soon(self._run_commands)
        try:
            return future.result(deadline.remaining())
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()  # never runs if it has not started
            with self._lock:
                raise self._driver.timed_out(what, deadline.timeout) from None

    def _pause(self, timeout: float | None) -> None:
        self._io.woken = False  # the IO thread wakes us after its next message
        self._cond.wait(timeout)

    def _in_callback(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _ended(self) -> bool:
        return self._finished or self._driver.proto.state is ConnectionState.CLOSED

    # ------------------------------------------------------------------ the IO thread

    def _wake_readers(self) -> None:
        with self._lock:
            self._cond.notify_all()

    def _call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop after the message in hand (if it still runs)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed: the IO thread has ended
                loop.call_soon_threadsafe(callback)
        self._io.interrupt = True  # after: the read loop yields once the callback is due

    def _close_on_loop(self) -> None:
        with self._lock:
            self._driver.close(self._io.clock())

    @staticmethod
    def _cancel_all() -> None:
        for task in asyncio.all_tasks():
            task.cancel()

    def _run_io(self, loop: asyncio.AbstractEventLoop, life: asyncio.Task[None]) -> None:
        try:
            loop.run_until_complete(life)
        except asyncio.CancelledError:
            log.debug("the shutdown was cancelled (close() ran out of time)")
        except BaseException:
            log.exception("the kraken-ws IO thread failed")
        finally:
            self._shut_down(loop)

    def _shut_down(self, loop: asyncio.AbstractEventLoop) -> None:
        """As ``asyncio.run`` ends: close the driver, cancel what is left, close the loop;
        then run the calls queued meanwhile (from now on callers run them)."""
        try:
            with self._lock:
                self._driver.close(self._io.clock())  # a no-op unless the IO failed
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            log.exception("closing the connection failed")
        finally:
            loop.close()
        with self._lock:
            self._finished = True
            self._cond.notify_all()
        self._run_commands()

    def _run_commands(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with self._lock:
                    result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
