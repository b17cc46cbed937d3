"""A driver on raw non-blocking sockets and wsproto, for callers that own their loop.

:class:`SocketClient` performs the actions of a :class:`~kraken_proto.KrakenProtocol` with
plain ``socket``/``ssl`` objects and `wsproto <https://python-hyper.org/projects/wsproto/>`_
framing. Nothing in it blocks beyond the timeout given to :meth:`SocketClient.step`: the TCP
connect, the TLS handshake and the WebSocket upgrade all run non-blocking (host names that
are not IP literals are resolved on a short-lived daemon thread, as ``getaddrinfo`` cannot
be made non-blocking).

Blocking use::

    from kraken_proto import BookUpdate, ClientConfig
    from kraken_transports.sockets import SocketClient

    with SocketClient(ClientConfig()) as client:            # starts connecting
        client.subscribe("book", ["BTC/USD"], depth=10)     # drives the loop until acked
        for event in client.events():
            if isinstance(event, BookUpdate):
                print(client.book("BTC/USD").best_bid())

Inside your own loop (``select``, ``selectors``, a GUI's socket notifier, ...)::

    client.subscribe("ticker", ["BTC/USD"], wait=False)   # sent once connected
    client.start()
    while client.state is not ConnectionState.CLOSED:
        fd = client.fileno()              # -1 while there is no socket (backoff)
        # (re-)register fd whenever client.socket_id changed: a new socket may reuse
        # the old one's number; wait for fd readable (and writable if
        # client.wants_write()), but no later than client.next_deadline()
        # (time.monotonic() clock)
        client.step()                     # non-blocking: IO, timers, writes
        while (event := client.poll()) is not None:
            handle(event)

``docs/own-driver.md`` has the whole loop on :mod:`selectors`.

Everything runs on the thread that calls :meth:`~SocketClient.step` (callbacks included); the
object is not thread-safe. For a background thread see :mod:`kraken_transports.threaded`
(which runs the asyncio driver's IO on an event loop of its own). One step handles at most
256 messages, so a
backlog cannot hold the loop; :meth:`~SocketClient.next_deadline` is then "now" until it is
worked off.

Private and level3 connections (``SocketClient(config, private=True)`` / ``level3=True``):
the token request (``FetchToken``) is a blocking HTTPS POST, so it runs on a short-lived
daemon thread (:func:`~kraken_transports.tokens.fetch_token_blocking`, h11), one at a time;
its answer is handed to the protocol by the next step (which drops it if the connection
that asked is gone). While a token request is in flight,
:meth:`~SocketClient.next_deadline` is at most 5 ms away, so a loop that honours it picks
the answer up promptly without watching another descriptor.

The blocking calls (``subscribe`` with ``wait=True``, ``wait_until``, ``submit``,
``add_order``, ...) drive the client's own loop until the answer comes; inside a callback
(which runs inside ``step()``) they raise :class:`~kraken_proto.LocalProtocolError`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState as WsState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.events import CloseConnection as WsClose
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from kraken_proto.actions import CloseConnection, FetchToken
from kraken_proto.config import ClientConfig
from kraken_proto.errors import (
    AuthenticationError,
    KrakenConnectionError,
    LocalProtocolError,
    NetworkError,
)
from kraken_proto.events import Event
from kraken_proto.http import HttpRequest
from kraken_proto.state import ConnectionState
from kraken_transports.base import Deadline
from kraken_transports.blocking import BlockingClient
from kraken_transports.client import ClientOptions
from kraken_transports.driver import Driver
from kraken_transports.tokens import fetch_token_blocking

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SocketClient", "SocketTransport", "Waker"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_CLOSE_LINGER = 1.0  # seconds a closing socket may wait for the server's close reply and EOF
_MAX_READS = 16  # reads per socket per step before yielding (fairness); more is served next step
_MAX_MESSAGES = 256  # messages handled per step; the rest waits in wsproto's buffer
_SEND_CHUNK = 256 * 1024
_RESOLVE_POLL = 0.005  # while a host name is being resolved on its helper thread
_TOKEN_POLL = 0.005  # while a token is being fetched on its helper thread
_MAX_CLOSE_REASON = 123  # bytes of UTF-8 a close frame's reason may hold
_NO_CLOSE_FRAME = 1006  # the close code of a connection that ended without a close frame
_EXCERPT = 200
_WAIT_SLICE = 0.25  # longest single wait of the blocking helpers (keeps them responsive)
_CONNECT_PENDING = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EAGAIN}
if hasattr(errno, "WSAEWOULDBLOCK"):  # pragma: no cover - Windows
    _CONNECT_PENDING.add(errno.WSAEWOULDBLOCK)

_Addr = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]
]


class _Resolver:
    """``getaddrinfo`` of one host name on a daemon thread (it has no non-blocking form)."""

    def __init__(self, host: str, port: int) -> None:
        self.done = threading.Event()
        self.addrs: list[_Addr] = []
        self.error: OSError | None = None
        self._host = host
        self._port = port
        thread = threading.Thread(target=self._run, name=f"kraken-dns {host}", daemon=True)
        thread.start()

    def _run(self) -> None:
        try:
            self.addrs = list(
                socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)  # type: ignore[arg-type]
            )
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()


class _TokenFetch:
    """One token request performed on a daemon thread; ``done`` is set when it ended."""

    def __init__(self, action: FetchToken, timeout: float, context: ssl.SSLContext | None) -> None:
        self.action = action
        self.done = threading.Event()
        self.answer: str | AuthenticationError = ""
        request = action.request.build(time.time())  # here: the nonce generator is not thread-safe
        thread = threading.Thread(
            target=self._run, args=(request, timeout, context), name="kraken-token", daemon=True
        )
        thread.start()

    def _run(self, request: HttpRequest, timeout: float, context: ssl.SSLContext | None) -> None:
        try:
            self.answer = fetch_token_blocking(request, timeout, context)
        except AuthenticationError as exc:
            self.answer = exc
        except Exception as exc:  # a driver bug: fail this attempt, retry with backoff
            log.exception("token request raised")
            self.answer = AuthenticationError(
                f"token request failed: {type(exc).__name__}", terminal=False
            )
        finally:
            self.done.set()


class _Conn:
    """One WebSocket connection attempt and its buffers."""

    # phases: "resolving" -> "tcp" -> ("tls") -> "upgrade" -> "open" -> "closing" -> "closed"
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.tls = parts.scheme == "wss"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        host_text = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.tls else 80
        self.host_header = host_text if self.port == default_port else f"{host_text}:{self.port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.phase = "resolving"
        self.sock: socket.socket | None = None
        self.sock_id = 0  # which of the transport's sockets ``sock`` is (0: none yet)
        self.resolver: _Resolver | None = None
        self.addrs: list[_Addr] = []
        self.last_error: OSError | None = None
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.out = bytearray()
        self.tls_wants_write = False
        self.more = False  # a step's budget ran out with data or messages possibly left
        self.parts: list[Any] = []  # fragments of the message being reassembled
        self.size = 0
        self.oversized = False
        self.excerpt = ""
        self.reject_status = 0
        self.reject_body = bytearray()
        self.linger_until = 0.0
        self.remote_closed = False

    def wants_write(self) -> bool:
        """Whether the socket must be watched for writability."""
        return self.phase == "tcp" or self.tls_wants_write or bool(self.out)

    def fd(self) -> int:
        """The socket's descriptor, or -1."""
        if self.sock is None:
            return -1
        try:
            return self.sock.fileno()
        except OSError:  # pragma: no cover - closed under us
            return -1


def _close_reason(reason: str) -> str:
    data = reason.encode("utf-8")
    if len(data) <= _MAX_CLOSE_REASON:
        return reason
    return data[:_MAX_CLOSE_REASON].decode("utf-8", "ignore")


class Waker:
    """A socket pair: a byte written from any thread (:meth:`wake`) ends a
    :meth:`SocketTransport.step` waiting on it at once."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def fileno(self) -> int:
        """The descriptor a step watches."""
        return self._read.fileno()

    def wake(self) -> None:
        """End the step waiting on this (or the next one) now; safe from any thread."""
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
            self._write.send(b"\0")

    def drain(self) -> None:
        """Forget the wake-ups received so far."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._read.recv(4096):
                pass

    def close(self) -> None:
        """Close both sockets."""
        self._read.close()
        self._write.close()


class SocketTransport:
    """TCP, TLS, DNS and WebSocket framing for one :class:`~kraken_transports.driver.Driver`:
    the IO of :class:`SocketClient`.

    It attaches itself as the driver's :class:`~kraken_transports.driver.DriverIO`, and
    :meth:`step` does all IO that is ready: reads (feeding complete messages to the driver,
    at most 256 per step), the protocol's timers, writes, lingering closes and the token
    request. For stepping it on a thread of your own: ``lock`` is held around everything
    that touches the driver (never while waiting for IO), so other threads may read the
    driver under it; ``pause()``, asked after every message, ends a step early when true
    (say, another thread is waiting); a :class:`Waker` ends a waiting step from any thread.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        pause: Callable[[], bool] | None = None,
    ) -> None:
        self._driver = driver
        self._config: ClientConfig = driver.config
        self._clock = clock
        self._ssl_context = ssl_context
        self._lock: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self._pause = pause
        self._conn: _Conn | None = None
        self._closing: list[_Conn] = []
        self._selector: selectors.BaseSelector | None = None
        self._registered: dict[int, int] = {}
        self._stepping = False
        self._budget = _MAX_MESSAGES
        self._fetch: _TokenFetch | None = None  # the token request in flight
        self._fetch_next: FetchToken | None = None  # asked for while one was in flight
        self._sockets = 0  # sockets opened so far: the last one's socket_id
        driver.io = self

    # ------------------------------------------------------------------ the owner's view

    @property
    def stepping(self) -> bool:
        """True while :meth:`step` runs (callbacks run inside it)."""
        return self._stepping

    @property
    def idle(self) -> bool:
        """True when no socket is open or closing."""
        return self._conn is None and not self._closing

    def fileno(self) -> int:
        """The socket to watch, or -1 when there is none (it changes on every reconnect,
        possibly to the same number: see :attr:`socket_id`)."""
        conn = self._watched()
        return -1 if conn is None else conn.fd()

    @property
    def socket_id(self) -> int:
        """Which socket :meth:`fileno` names: 0 when none, else a number given to no other
        socket of this transport (each new socket gets the next one). A new socket may
        reuse a closed one's descriptor number, never its ``socket_id``."""
        conn = self._watched()
        return 0 if conn is None or conn.sock is None else conn.sock_id

    def wants_write(self) -> bool:
        """True while the watched socket has unsent data or a connect in progress."""
        conn = self._watched()
        return conn is not None and conn.wants_write()

    def next_deadline(self) -> float | None:
        """The earliest of the protocol's timers and this transport's own (a lingering close,
        a host name or a token on a helper thread: polled every 5 ms; data already read into
        TLS buffers or messages a step left for the next one: now)."""
        deadline = self._driver.proto.next_deadline()
        candidates = [] if deadline is None else [deadline]
        if self._fetch is not None or self._fetch_next is not None:
            candidates.append(self._clock() + _TOKEN_POLL)
        conn = self._conn
        if conn is not None:
            if conn.phase == "resolving":
                candidates.append(self._clock() + _RESOLVE_POLL)
            elif conn.more or _pending(conn.sock):
                candidates.append(self._clock())
        candidates.extend(c.linger_until for c in self._closing)
        return min(candidates) if candidates else None

    def step(self, timeout: float = 0.0, wake: Waker | None = None) -> bool:
        """Wait up to ``timeout`` s for IO, a timer or ``wake``, then do all IO that is
        ready. Returns True if ``wake`` was woken (it is drained). Not re-entrant: a
        callback may not drive the loop."""
        if self._stepping:
            raise LocalProtocolError(
                "step() is not re-entrant: do not drive the loop from a callback"
            )
        self._stepping = True
        try:
            return self._step(timeout, wake)
        finally:
            self._stepping = False

    def flush(self) -> None:
        """Write what can be written now (after a call made outside :meth:`step`)."""
        with self._lock:
            self._flush_all(self._clock())

    def finish(self, until: float, *, wait: bool = True) -> None:
        """After the driver closed: give closing sockets until ``until`` (clock time) for
        the close handshake, stepping meanwhile unless ``wait`` is false (inside a step,
        which finishes it), then close every socket hard."""
        with self._lock:
            for conn in self._closing:
                conn.linger_until = min(conn.linger_until, until)
            self._flush_all(self._clock())
        if not wait:
            return
        while self._closing and self._clock() < until:
            self.step(min(_WAIT_SLICE, max(0.0, until - self._clock())))
        with self._lock:
            if self._conn is not None:
                self._drop_conn(self._conn)
            for conn in list(self._closing):
                self._drop_conn(conn)
            self._release_if_idle()

    # ------------------------------------------------------------------ DriverIO

    def open(self, url: str, now: float) -> None:
        """Start connecting to ``url`` (resolving a host name on a helper thread)."""
        if self._conn is not None:
            self._drop_conn(self._conn)
        conn = self._conn = _Conn(url)
        host = conn.host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            conn.resolver = _Resolver(host, conn.port)
            return
        try:
            info = socket.getaddrinfo(
                host, conn.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except OSError as exc:
            self._lost(conn, now, exc)
            return
        conn.addrs = list(info)  # type: ignore[arg-type]
        self._connect_next(conn, now)

    def send(self, text: str) -> bool:
        """Queue ``text`` as one message on the open socket (written by the step)."""
        conn = self._conn
        if conn is None or conn.phase != "open" or conn.ws.state is not WsState.OPEN:
            log.debug("dropping a message sent while no connection is open")
            return False
        conn.out += conn.ws.send(TextMessage(data=text))
        return True

    def close(self, action: CloseConnection, now: float) -> None:
        """Send a close frame (or drop a socket not open yet) and let it linger."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if conn.phase != "open" or conn.ws.state is not WsState.OPEN:
            self._drop_conn(conn)
            return
        conn.out += conn.ws.send(WsClose(code=action.code, reason=_close_reason(action.reason)))
        self._linger(conn, now)

    def fetch_token(self, action: FetchToken) -> None:
        """Start the token request on a helper thread (after the one in flight)."""
        if self._fetch is not None:
            self._fetch_next = action
            return
        self._fetch = _TokenFetch(action, self._config.timeout, self._ssl_context)

    def performed(self) -> None:
        """Nothing to do: every step reads ``next_deadline()`` afresh."""

    # ------------------------------------------------------------------ the loop

    def _watched(self) -> _Conn | None:
        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        return self._closing[0] if self._closing else None

    def _step(self, timeout: float, wake: Waker | None) -> bool:
        self._budget = _MAX_MESSAGES
        now = self._clock()
        wait = max(0.0, timeout)
        deadline = self.next_deadline()
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - now))
        ready: dict[int, int] = {}
        woken = False
        selector = self._sync_selector(wake)
        if self._registered:
            for key, mask in selector.select(wait):
                ready[key.fd] = mask
        elif wait > 0:
            time.sleep(wait)
        if wake is not None and wake.fileno() in ready:
            woken = True
            wake.drain()
        with self._lock:
            now = self._clock()
            self._flush_all(now)  # what calls made since the last step queued goes out first
            conn = self._conn
            if conn is not None:
                self._service(conn, ready.get(conn.fd(), 0), now)
            for closing in list(self._closing):
                self._service_closing(closing, ready.get(closing.fd(), 0), now)
            if self._fetch is not None or self._fetch_next is not None:
                self._service_token(now)
            self._fire_timers(now)
            self._flush_all(now)
            self._release_if_idle()
        return woken

    def _release_if_idle(self) -> None:
        """Once closed with no socket left, give the selector's descriptor back."""
        if (
            self._selector is not None
            and self._driver.proto.state is ConnectionState.CLOSED
            and self.idle
        ):
            self._selector.close()
            self._selector = None
            self._registered.clear()

    def _sync_selector(self, wake: Waker | None) -> selectors.BaseSelector:
        selector = self._selector
        if selector is None:
            selector = self._selector = selectors.DefaultSelector()
        wanted: dict[int, int] = {}
        if wake is not None:
            wanted[wake.fileno()] = selectors.EVENT_READ
        conns = list(self._closing)
        if self._conn is not None:
            conns.append(self._conn)
        for conn in conns:
            fd = conn.fd()
            if fd >= 0:
                mask = selectors.EVENT_READ
                if conn.wants_write():
                    mask |= selectors.EVENT_WRITE
                wanted[fd] = mask
        registered = self._registered
        for fd in [fd for fd in registered if fd not in wanted]:
            selector.unregister(fd)
            del registered[fd]
        for fd, mask in wanted.items():
            old = registered.get(fd)
            if old is None:
                selector.register(fd, mask)
            elif old != mask:
                selector.modify(fd, mask)
            registered[fd] = mask
        return selector

    def _fire_timers(self, now: float) -> None:
        deadline = self._driver.proto.next_deadline()
        if deadline is not None and now >= deadline:
            self._driver.timer(now)
        for conn in list(self._closing):
            if now >= conn.linger_until:
                self._drop_conn(conn)

    def _service_token(self, now: float) -> None:
        """Hand a finished token request to the driver; start the next one if still wanted."""
        fetch = self._fetch
        if fetch is not None and fetch.done.is_set():
            self._fetch = None
            self._driver.token_answered(fetch.action, fetch.answer, now)
        following = self._fetch_next
        if self._fetch is None and following is not None:
            self._fetch_next = None
            if self._driver.proto.state is ConnectionState.AUTHENTICATING:
                self._fetch = _TokenFetch(following, self._config.timeout, self._ssl_context)

    def _linger(self, conn: _Conn, now: float) -> None:
        conn.phase = "closing"
        conn.linger_until = now + _CLOSE_LINGER
        self._closing.append(conn)

    # ------------------------------------------------------------------ connection set-up

    def _connect_next(self, conn: _Conn, now: float) -> None:
        """Start a non-blocking connect to the next address, or report the failure."""
        while conn.addrs:
            family, kind, proto, _, address = conn.addrs.pop(0)
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(address)
            if err == 0 or err in _CONNECT_PENDING:
                conn.sock = sock
                self._sockets += 1
                conn.sock_id = self._sockets
                conn.phase = "tcp"
                if err == 0:
                    self._tcp_connected(conn, now)
                return
            sock.close()
            conn.last_error = OSError(
                err, f"connect to {address[0]}:{address[1]}: {_strerror(err)}"
            )
        error = conn.last_error or OSError(f"{conn.host} has no address")
        self._lost(conn, now, error)

    def _service(self, conn: _Conn, mask: int, now: float) -> None:
        phase = conn.phase
        if phase == "resolving":
            resolver = conn.resolver
            if resolver is not None and resolver.done.is_set():
                conn.resolver = None
                if resolver.error is not None:
                    self._lost(conn, now, resolver.error)
                    return
                conn.addrs = resolver.addrs
                self._connect_next(conn, now)
            return
        if phase == "tcp":
            if mask:
                self._tcp_check(conn, now)
            return
        if phase == "tls":
            if mask:
                self._tls_handshake(conn, now)
            return
        if (
            mask & selectors.EVENT_READ
            or conn.more
            or _pending(conn.sock)
            or (conn.tls_wants_write and mask & selectors.EVENT_WRITE)
        ):
            conn.tls_wants_write = False
            self._read(conn, now)
        if conn is self._conn and mask & selectors.EVENT_WRITE:
            self._flush(conn, now)

    def _tcp_check(self, conn: _Conn, now: float) -> None:
        assert conn.sock is not None
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in _CONNECT_PENDING:
            return
        if err:
            peer = f"{conn.host}:{conn.port}"
            conn.last_error = OSError(err, f"connect to {peer}: {_strerror(err)}")
            self._close_sock(conn)
            self._connect_next(conn, now)
            return
        self._tcp_connected(conn, now)

    def _tcp_connected(self, conn: _Conn, now: float) -> None:
        assert conn.sock is not None
        if not conn.tls:
            self._start_upgrade(conn)
            return
        context = self._ssl_context or ssl.create_default_context()
        fd = conn.fd()
        try:
            conn.sock = context.wrap_socket(
                conn.sock, server_hostname=conn.host, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            self._forget_fd(fd)
            self._lost(conn, now, exc)
            return
        conn.phase = "tls"
        self._tls_handshake(conn, now)

    def _tls_handshake(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        conn.tls_wants_write = False
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            conn.tls_wants_write = True
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError (certificate!) is an OSError
            self._lost(conn, now, exc)
            return
        self._start_upgrade(conn)

    def _start_upgrade(self, conn: _Conn) -> None:
        conn.phase = "upgrade"
        conn.out += conn.ws.send(Request(host=conn.host_header, target=conn.target))

    # ------------------------------------------------------------------ reading

    def _read(self, conn: _Conn, now: float) -> None:
        """Handle what wsproto holds, then read and handle more, within the step's budgets.

        Nothing is read while messages already received wait (a slow consumer leaves the
        backlog in the kernel, where TCP flow control bounds it).
        """
        sock = conn.sock
        assert sock is not None
        size = self._config.buffer_size
        conn.more = True  # until a read finds nothing more
        for reads in range(_MAX_READS + 1):
            try:
                if not self._handle_ws_events(conn, now):
                    return  # the message budget ran out or a pause was asked for
                if conn.sock is None or conn.phase in ("closing", "closed") or reads == _MAX_READS:
                    return
                try:
                    data = sock.recv(size)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    conn.more = False
                    return
                except ssl.SSLWantWriteError:
                    conn.more = False
                    conn.tls_wants_write = True
                    return
                except OSError as exc:
                    self._broken(conn, now, exc)
                    return
                if not data:
                    self._eof(conn, now)
                    return
                conn.ws.receive_data(data)
            except (WsLocalProtocolError, WsRemoteProtocolError) as exc:
                self._lost(conn, now, NetworkError(f"WebSocket protocol error: {exc}"))
                return

    def _handle_ws_events(self, conn: _Conn, now: float) -> bool:
        """Handle the events wsproto has parsed; False if the step's budget or a pause
        stopped it first (the rest stays in wsproto's buffer for the next step)."""
        pause = self._pause
        for event in conn.ws.events():
            if conn is not self._conn:
                return True  # closed while handling an earlier event of this read
            if isinstance(event, (TextMessage, BytesMessage)):
                self._on_message(conn, event.data, event.message_finished, now)
                if event.message_finished:
                    self._budget -= 1
                    if self._budget <= 0 or (pause is not None and pause()):
                        return False
            elif isinstance(event, Ping):
                conn.out += conn.ws.send(event.response())
            elif isinstance(event, WsClose):
                self._on_close_frame(conn, event, now)
                return True
            elif isinstance(event, AcceptConnection):
                conn.phase = "open"
                self._driver.connected(now)
            elif isinstance(event, RejectConnection):
                conn.reject_status = event.status_code
                if not event.has_body:
                    self._rejected(conn, now)
                    return True
            elif isinstance(event, RejectData):
                room = _EXCERPT - len(conn.reject_body)
                if room > 0:
                    conn.reject_body += event.data[:room]
                if event.body_finished:
                    self._rejected(conn, now)
                    return True
        return True

    def _on_message(
        self, conn: _Conn, data: str | bytes | bytearray, finished: bool, now: float
    ) -> None:
        limit = self._config.max_message_size
        if finished and not conn.parts and not conn.oversized:
            payload: str | bytes = data if isinstance(data, str) else bytes(data)
        else:
            conn.size += len(data)
            if conn.oversized:
                pass
            elif conn.size > limit:
                conn.oversized = True
                head = conn.parts[0] if conn.parts else data
                conn.excerpt = (
                    head[:_EXCERPT]
                    if isinstance(head, str)
                    else bytes(head[:_EXCERPT]).decode("utf-8", "replace")
                )
                conn.parts.clear()  # bounded: nothing more of this message is kept
            else:
                conn.parts.append(data)
            if not finished:
                return
            size, oversized = conn.size, conn.oversized
            parts = conn.parts
            conn.parts, conn.size, conn.oversized = [], 0, False
            if oversized:
                error = f"message of {size} bytes exceeds max_message_size ({limit}); discarded"
                self._driver.discarded(error, conn.excerpt, now)
                return
            payload = "".join(parts) if isinstance(data, str) else b"".join(parts)
        self._driver.received(payload, now)

    def _on_close_frame(self, conn: _Conn, event: WsClose, now: float) -> None:
        self._conn = None
        if conn.ws.state is WsState.REMOTE_CLOSING:
            conn.out += conn.ws.send(event.response())
            conn.remote_closed = True
            self._linger(conn, now)
            self._driver.lost(now, None, event.code)
            return
        # wsproto could not parse the stream (it reports that as a close event of its own).
        error = KrakenConnectionError(
            f"invalid WebSocket data from the server: {event.reason or event.code}", code=event.code
        )
        with contextlib.suppress(WsLocalProtocolError):
            conn.out += conn.ws.send(
                WsClose(code=event.code, reason=_close_reason(event.reason or ""))
            )
        self._linger(conn, now)
        self._driver.lost(now, error)

    def _rejected(self, conn: _Conn, now: float) -> None:
        body = bytes(conn.reject_body).decode("utf-8", "replace").strip()
        detail = f": {body}" if body else ""
        error = NetworkError(
            f"WebSocket upgrade to {conn.url} rejected with HTTP {conn.reject_status}{detail}"
        )
        self._lost(conn, now, error)

    def _eof(self, conn: _Conn, now: float) -> None:
        if conn.phase == "upgrade" and conn.reject_status:
            self._rejected(conn, now)
            return
        if conn.phase == "open":  # the server went away without a close frame
            self._lost(conn, now, None, _NO_CLOSE_FRAME)
            return
        error = ConnectionResetError(
            "the server closed the connection during the WebSocket upgrade"
        )
        self._lost(conn, now, error)

    def _broken(self, conn: _Conn, now: float, exc: OSError) -> None:
        """An error on the socket. A reset of an open WebSocket is the same drop as an EOF
        (code 1006, as every driver reports it); other errors are passed on."""
        if conn.phase == "open" and isinstance(exc, ConnectionError):
            log.debug("connection reset: %s: %s", type(exc).__name__, exc)
            self._lost(conn, now, None, _NO_CLOSE_FRAME)
        else:
            self._lost(conn, now, exc)

    def _lost(
        self, conn: _Conn, now: float, exc: BaseException | None, close_code: int | None = None
    ) -> None:
        """The connection broke or could not be opened: hard-close it; if it is the current
        one, tell the driver (which words the reason from ``exc`` and ``close_code``)."""
        current = conn is self._conn
        self._drop_conn(conn)
        if current:
            log.debug("connection lost: %r (close code %s)", exc, close_code)
            self._driver.lost(now, exc, close_code)

    # ------------------------------------------------------------------ closing connections

    def _service_closing(self, conn: _Conn, mask: int, now: float) -> None:
        sock = conn.sock
        if sock is None:
            self._drop_conn(conn)
            return
        if mask & selectors.EVENT_READ or _pending(sock):
            for _ in range(_MAX_READS):
                try:
                    data = sock.recv(self._config.buffer_size)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    break
                except (ssl.SSLWantWriteError, OSError):
                    self._drop_conn(conn)
                    return
                if not data:
                    self._drop_conn(conn)  # the server closed the TCP connection: done
                    return
                if conn.ws.state is not WsState.CLOSED:
                    try:
                        conn.ws.receive_data(data)
                        for _event in conn.ws.events():
                            pass  # only the close reply matters; wsproto tracks it
                    except (WsLocalProtocolError, WsRemoteProtocolError):
                        self._drop_conn(conn)
                        return
        self._flush(conn, now)

    def _drop_conn(self, conn: _Conn) -> None:
        """Close the socket at once and forget the connection."""
        self._close_sock(conn)
        conn.phase = "closed"
        conn.parts.clear()
        if conn in self._closing:
            self._closing.remove(conn)
        if conn is self._conn:
            self._conn = None

    def _close_sock(self, conn: _Conn) -> None:
        sock = conn.sock
        if sock is None:
            return
        self._forget_fd(conn.fd())
        conn.sock = None
        conn.out.clear()
        with contextlib.suppress(OSError):
            sock.close()

    def _forget_fd(self, fd: int) -> None:
        if fd >= 0 and fd in self._registered and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)
            del self._registered[fd]

    # ------------------------------------------------------------------ writing

    def _flush_all(self, now: float) -> None:
        if self._conn is not None:
            self._flush(self._conn, now)
        for conn in list(self._closing):
            self._flush(conn, now)

    def _flush(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        if sock is None or conn.phase in ("resolving", "tcp"):
            return
        if conn.phase == "tls":
            if conn.tls_wants_write:
                self._tls_handshake(conn, now)
            return
        out = conn.out
        while out:
            try:
                sent = sock.send(out[:_SEND_CHUNK])
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                conn.tls_wants_write = True
                return
            except OSError as exc:
                if conn is self._conn:
                    self._broken(conn, now, exc)
                else:
                    self._drop_conn(conn)
                return
            del out[:sent]
            conn.tls_wants_write = False
        if conn.phase == "closing" and conn.ws.state is WsState.CLOSED and not conn.remote_closed:
            # Our close frame was answered and everything is sent; the server closes TCP
            # first by the book, but nothing is left to wait for.
            self._drop_conn(conn)


class SocketClient(BlockingClient):
    """A Kraken v2 WebSocket client on non-blocking sockets, driven by the caller.

    The arguments of every client (see :class:`~kraken_transports.client.ClientBase`), and
    ``clock``: the monotonic clock handed to the protocol (:meth:`next_deadline` is on it).
    Every call answers as in the other drivers (``docs/drivers.md``); a ``private=True``
    client also trades (:meth:`submit`, :meth:`add_order`, ...).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._clock = clock
        super().__init__(config, **options)

    def _attach_io(self, ssl_context: ssl.SSLContext | None) -> None:
        self._io = SocketTransport(self._driver, clock=self._clock, ssl_context=ssl_context)

    def _now(self) -> float:
        return self._clock()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the client is closed and its sockets are gone."""
        state = self._driver.proto.state
        return state is not ConnectionState.DISCONNECTED and not self._ended()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start connecting (non-blocking: the socket opens during later :meth:`step` calls);
        a no-op if started. A closed client starts again and resubscribes what was
        subscribed when it closed (the protocol keeps subscriptions)."""
        if self._driver.proto.state not in (ConnectionState.DISCONNECTED, ConnectionState.CLOSED):
            return
        now = self._clock()
        self._driver.connect(now)
        self._io.flush()

    def connect(self) -> None:
        """The same as :meth:`start` (this client's original name for it)."""
        self.start()

    def close(self, timeout: float = 1.0) -> None:
        """Close: send a close frame, wait up to ``timeout`` s for the reply, then hard-close.

        Idempotent. Pending waits fail with :class:`~kraken_proto.KrakenConnectionError`;
        queued events stay readable. Called from a callback (inside :meth:`step`) it does not
        wait: the running :meth:`step`/:meth:`run` loop finishes the close handshake.
        """
        now = self._clock()
        self._driver.close(now)
        self._io.finish(now + timeout, wait=not self._io.stepping)

    def __enter__(self) -> SocketClient:
        """Start the client (see :meth:`start`) and return it."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    # ------------------------------------------------------------------ your own loop

    def fileno(self) -> int:
        """The socket to watch in your own loop, or -1 when there is none (e.g. in backoff).

        It changes on every reconnect, but the new socket may get the old one's number, so
        the number alone cannot tell that the socket changed: :attr:`socket_id` does. Look
        both up before each wait.
        """
        return self._io.fileno()

    @property
    def socket_id(self) -> int:
        """Which socket :meth:`fileno` names: 0 while there is none, and a new number for
        every socket the client opens (never reused, unlike descriptor numbers).

        A loop that registers :meth:`fileno` with a selector (``epoll``, ``kqueue``, a GUI's
        notifier) must re-register whenever ``socket_id`` changes, even if the number did
        not: the registration belonged to the closed socket (``docs/own-driver.md``).
        """
        return self._io.socket_id

    def wants_write(self) -> bool:
        """True while the watched socket has unsent data or a connect in progress."""
        return self._io.wants_write()

    def next_deadline(self) -> float | None:
        """When :meth:`step` must be called at the latest (``clock()`` time), or ``None``."""
        return self._io.next_deadline()

    def step(self, timeout: float = 0.0) -> None:
        """Wait up to ``timeout`` s for IO or a timer, then do all IO that is ready.

        Reads and feeds complete messages to the protocol (callbacks run here), fires due
        timers, and writes what can be written. Never blocks longer than ``timeout``.
        """
        self._io.step(timeout)

    def poll(self) -> Event | None:
        """The next queued event, or ``None`` (non-blocking; does no IO)."""
        return self._driver.router.buffer.pop(self._clock())

    # ------------------------------------------------------------------ blocking use

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Drive the connection until it is closed or ``until()`` returns true.

        Starts the client first if it never was. ``until`` is checked after every
        :meth:`step` (at least every 0.25 s). Pair it with callbacks and
        ``buffer_events=False``, or read the queue with :meth:`poll` from ``until``.
        """
        if self._driver.proto.state is ConnectionState.DISCONNECTED:
            self.start()
        while not self._ended():
            if until is not None and until():
                return
            self.step(_WAIT_SLICE)

    # ------------------------------------------------------------------ BlockingClient

    def _run(self, fn: Callable[[], T], what: str, deadline: Deadline) -> T:
        result = fn()
        self._io.flush()
        return result

    def _pause(self, timeout: float | None) -> None:
        self.step(_WAIT_SLICE if timeout is None else min(_WAIT_SLICE, timeout))

    def _in_callback(self) -> bool:
        return self._io.stepping

    def _ended(self) -> bool:
        return self._driver.proto.state is ConnectionState.CLOSED and self._io.idle


def _pending(sock: socket.socket | None) -> bool:
    """Whether a TLS socket holds decrypted bytes that ``select`` cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _strerror(err: int) -> str:
    return f"{errno.errorcode.get(err, 'error')} {os.strerror(err)}"
