"""The asyncio IO of a :class:`~kraken_transports.driver.Driver`: :class:`AioTransport`.

Two clients run it: :class:`~kraken_transports.aio.AsyncClient` on the caller's event loop,
and :class:`~kraken_transports.threaded.ThreadedClient` on an event loop in its background
thread; each client is only its surface and its life cycle, the IO is this module's alone.
Actions are performed at once, in order, on the event loop thread, so callbacks see
``client.book(symbol)`` exactly as their event left it. One task per connection opens the
WebSocket and feeds every message to the driver (``CloseConnection`` cancels it; it closes
its socket with the code asked for); ``FetchToken`` is a task on the client's aiohttp
session (:func:`~kraken_transports.tokens.fetch_token_async`), cancelled with its socket.
One timer (``loop.call_at``) fires the protocol's timers, re-armed once per loop iteration
after any input. :meth:`AioTransport.run` holds the client's life: once the protocol is
``CLOSED`` it closes the sockets and the session within a bounded time.

The read loop feeds every message aiohttp already has to the driver before the loop runs
anything else (readers are woken once per batch, not per message), and yields to the loop
every 256 messages, or after the message in hand when ``interrupt`` is set, so a backlog
cannot hold off timers and calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from kraken_proto import __version__
from kraken_proto.actions import CloseConnection, FetchToken
from kraken_proto.errors import AuthenticationError
from kraken_proto.state import ConnectionState
from kraken_transports.driver import Driver
from kraken_transports.tokens import fetch_token_async

__all__ = ["AioTransport"]

# The aiohttp IO logs where it did when it lived in aio.py (the loggers of docs/drivers.md).
log = logging.getLogger("kraken_transports.aio")

_CLOSED = ConnectionState.CLOSED
_WS_CLOSE_TIMEOUT = 0.5  # how long a closing socket waits for the server's close frame
_CONNECTIONS_WAIT = 0.6  # shutdown: how long closing sockets may take before being cancelled
_SESSION_CLOSE_WAIT = 0.2  # shutdown: bound on closing the aiohttp session
_BATCH = 256  # messages the read loop handles before it lets the event loop run
_TEXT = (WSMsgType.TEXT, WSMsgType.BINARY)
_END = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


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


class AioTransport:
    """The asyncio IO of one :class:`~kraken_transports.driver.Driver` (its ``DriverIO``):
    the aiohttp session, one task per connection, the token task and the timer.

    ``lock``, if given, is held around every call into the driver, for a driver that other
    threads read under that lock (:class:`~kraken_transports.threaded.ThreadedClient`).
    Readers of the event buffer are woken once per sleep: a reader sets ``woken`` to False
    before it waits, and the next batch of actions (``performed``) calls ``wake_readers``
    (default: set ``readable``, an ``asyncio.Event``). Setting ``interrupt`` (from any
    thread) makes the read loop let the event loop run after the message in hand.
    """

    def __init__(
        self,
        driver: Driver,
        ssl_context: ssl.SSLContext | None,
        *,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        wake_readers: Callable[[], object] | None = None,
    ) -> None:
        self._driver = driver
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.lock = lock
        self._guard: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clock: Callable[[], float] = time.monotonic  # the loop's clock (loop.time)
        self.session: aiohttp.ClientSession | None = None
        self.conn: _Connection | None = None  # the current connection, if any
        self.tasks: set[asyncio.Task[None]] = set()  # connections, writes, token requests
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.pending = False  # _arm_timer is scheduled for this loop iteration
        self.readable = asyncio.Event()
        self.woken = False  # the readers were woken since one last went to sleep
        self._wake_readers = wake_readers
        self.interrupt = False
        self.closed: asyncio.Future[None] | None = None
        self.done = False  # closed and shut down: iteration ends once the buffer is empty
        driver.io = self

    def begin(self, loop: asyncio.AbstractEventLoop) -> None:
        """Prepare a run on ``loop``, which need not be running yet (the aiohttp session is
        opened by the first connection)."""
        if self.loop is not None and self.loop is not loop:
            self.readable = asyncio.Event()  # an asyncio.Event binds to its first loop
        self.loop = loop
        # loop.time() without a Python call per message where it is time.monotonic()
        base = type(loop).time is asyncio.BaseEventLoop.time
        self.clock = time.monotonic if base else loop.time
        self.done = False
        self.woken = False
        self.interrupt = False
        self.pending = False  # a callback of another (closed) loop never runs
        self.closed = loop.create_future()

    def _session(self) -> aiohttp.ClientSession:
        """The client's aiohttp session, opened on first use (on the running loop)."""
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._driver.config.timeout, sock_read=None
                ),
                headers={"User-Agent": f"kraken-ws-sdk/{__version__} (aiohttp)"},
            )
        return self.session

    async def run(self) -> None:
        """The client's life: wait for ``CLOSED``, then shut down."""
        assert self.closed is not None
        try:
            await self.closed
        finally:
            await self._shutdown()

    def finish(self) -> None:
        """The client is closed and shut down: let iterators end."""
        self.done = True
        self.woken = True
        self._wake()

    def _wake(self) -> None:
        if self._wake_readers is not None:
            self._wake_readers()
        else:
            self.readable.set()

    # ------------------------------------------------------------------ DriverIO

    def open(self, url: str, now: float) -> None:
        """Start a connection task for ``url``."""
        old = self.conn
        if old is not None and old.task is not None:  # defensive: never two current sockets
            old.task.cancel()
        self.conn = conn = _Connection(url)
        conn.task = self._spawn(self._connection(conn), "kraken-aio-conn")

    def send(self, text: str) -> bool:
        """Write ``text`` on the current socket (tasks start in order: so do the frames)."""
        conn = self.conn
        ws = conn.ws if conn is not None else None
        if ws is None or ws.closed:
            log.debug("not sent, the connection is gone")
            return False
        self._spawn(self._write(ws, text), "kraken-aio-send")
        return True

    def close(self, action: CloseConnection, now: float) -> None:
        """Cancel the current connection's task; its ``finally`` closes the socket."""
        conn, self.conn = self.conn, None
        if conn is not None and conn.task is not None:
            conn.close_code, conn.close_reason = action.code, action.reason
            conn.task.cancel()

    def fetch_token(self, action: FetchToken) -> None:
        """Start the token request of the current connection."""
        conn = self.conn
        if conn is not None:  # FetchToken only follows connection_made
            conn.token_task = self._spawn(self._token(action), "kraken-aio-token")

    def performed(self) -> None:
        """Wake the readers if one went to sleep; re-arm the timer before the loop next
        waits, once per loop iteration however many messages a read delivered (any input
        may move a deadline)."""
        if not self.woken:
            self.woken = True
            self._wake()
        if not self.pending:
            loop = self.loop
            if loop is not None and not loop.is_closed():  # else start() arms it
                self.pending = True
                loop.call_soon(self._arm_timer)

    # ------------------------------------------------------------------ tasks

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self.loop is not None
        task: asyncio.Task[None] = self.loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    @staticmethod
    async def _write(ws: aiohttp.ClientWebSocketResponse[bool], text: str) -> None:
        try:
            await ws.send_str(text)
        except Exception as exc:  # the reader sees the connection end and reports it
            log.debug("send failed: %s: %s", type(exc).__name__, exc)

    async def _token(self, action: FetchToken) -> None:
        """Fetch a token and hand the outcome to the driver (cancelled with its socket)."""
        answer: str | AuthenticationError
        try:
            request = action.request.build(time.time())
            session = self._session()
            answer = await fetch_token_async(session, request, self._driver.config.timeout)
        except AuthenticationError as exc:
            answer = exc
        except Exception as exc:  # a driver bug: fail this attempt, retry with backoff
            log.exception("token request raised")
            failure = f"token request failed: {type(exc).__name__}"
            answer = AuthenticationError(failure, terminal=False)
        with self._guard:
            self._driver.token_answered(action, answer, self.clock())

    async def _connection(self, conn: _Connection) -> None:
        """Open one WebSocket and feed everything it receives to the driver."""
        clock = self.clock
        driver = self._driver
        guard = self._guard
        try:
            ws = await self._session().ws_connect(
                conn.url,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_WS_CLOSE_TIMEOUT),
                heartbeat=None,
                autoping=True,
                max_msg_size=driver.config.max_message_size,
                ssl=self._ssl,
            )
            conn.ws = ws
            if self.conn is conn:  # else given up on while connecting: the finally closes it
                with guard:
                    driver.connected(clock())
                await self._read(conn, ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connect failed (or a driver bug): the connection is lost
            log.debug("connection to %s failed: %s: %s", conn.url, type(exc).__name__, exc)
            if self.conn is conn:
                self.conn = None
                with guard:
                    driver.lost(clock(), exc)
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
        """Feed every message of ``ws`` to the driver until it ends or ``conn`` is replaced.

        ``receive()`` returns at once while aiohttp holds parsed messages, so a whole read's
        worth is handled before the event loop runs anything else; every ``_BATCH``
        messages, or after the message in hand once ``interrupt`` is set, the loop runs.
        """
        clock, driver, lock = self.clock, self._driver, self.lock
        receive, received, text = ws.receive, driver.received, _TEXT
        budget = _BATCH
        while True:
            msg = await receive()
            if self.conn is not conn:
                break
            kind = msg.type
            if kind in text:
                if lock is None:
                    received(msg.data, clock())
                else:
                    with lock:
                        received(msg.data, clock())
            elif kind in _END:
                # Only an ERROR carries the cause; after a plain close
                # ``ws.exception()`` may hold a failure of aiohttp's own close reply.
                error = msg.data if isinstance(msg.data, BaseException) else None
                self.conn = None
                with self._guard:
                    driver.lost(clock(), error, ws.close_code)
                break
            budget -= 1
            if not budget or self.interrupt:
                budget = _BATCH
                self.interrupt = False
                await asyncio.sleep(0)

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        """Follow ``next_deadline()``, once per loop iteration after inputs (``performed``)."""
        self.pending = False
        proto = self._driver.proto
        closed = self.closed
        if closed is not None and not closed.done() and proto.state is _CLOSED:
            closed.set_result(None)  # the end of the client's life: run() shuts down
        deadline = proto.next_deadline()
        timer = self.timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self.timer = None
            return
        if timer is not None:
            if self.timer_at <= deadline:
                return  # fires no later than needed (early is harmless); re-armed then
            timer.cancel()
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        self.timer_at = deadline
        self.timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        with self._guard:
            self._driver.timer(self.clock())

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self) -> None:
        """Close everything within a bounded time; let iterators end."""
        with self._guard:
            self._driver.close(self.clock())  # a no-op unless cancelled from outside
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        conn, self.conn = self.conn, None
        if conn is not None and conn.task is not None:
            conn.task.cancel()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=_CONNECTIONS_WAIT)
            for task in pending:
                task.cancel()
        session, self.session = self.session, None
        if session is not None:
            try:
                await asyncio.wait_for(session.close(), _SESSION_CLOSE_WAIT)
            except Exception as exc:
                log.debug("closing the HTTP session: %s: %s", type(exc).__name__, exc)
        self.finish()
