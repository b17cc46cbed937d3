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

    with SocketClient(ClientConfig()) as client:            # connects
        client.subscribe("book", ["BTC/USD"], depth=10)     # drives the loop until acked
        for event in client.events():
            if isinstance(event, BookUpdate):
                print(client.book("BTC/USD").best_bid())

Inside your own loop (``select``, ``selectors``, a GUI's socket notifier, ...)::

    client.subscribe("ticker", ["BTC/USD"], wait=False)   # sent once connected
    client.connect()
    while client.state is not ConnectionState.CLOSED:
        fd = client.fileno()              # -1 while there is no socket (backoff)
        # wait for fd readable (and writable if client.wants_write()),
        # but no later than client.next_deadline() (time.monotonic() clock)
        client.step()                     # non-blocking: IO, timers, writes
        while (event := client.poll()) is not None:
            handle(event)

Everything runs on the thread that calls :meth:`~SocketClient.step` (callbacks included); the
object is not thread-safe. For a background thread see :mod:`kraken_transports.threaded`.
One :meth:`~SocketClient.step` handles at most 256 messages, so a backlog cannot hold the
loop; :meth:`~SocketClient.next_deadline` is then "now" until it is worked off.

Private and level3 connections (``SocketClient(config, private=True)`` / ``level3=True``):
the token request (``FetchToken``) is a blocking HTTPS POST, so it runs on a short-lived
daemon thread (:func:`~kraken_transports.tokens.fetch_token_blocking`, h11), one at a time;
its answer is handed to the protocol by the next :meth:`~SocketClient.step`, and only if the
connection that asked is still the current one and still authenticating. While a token
request is in flight, :meth:`~SocketClient.next_deadline` is at most 5 ms away, so a loop
that honours it picks the answer up promptly without watching another descriptor.

Trading is blocking: ``client.submit(request)`` (and ``add_order``, ``cancel_order``, ...)
drives the client's own loop until the answer comes. Never call it from a callback (it
raises :class:`~kraken_proto.LocalProtocolError` there): a callback runs inside ``step()``.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
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
from kraken_proto.errors import (
    AuthenticationError,
    KrakenConnectionError,
    LocalProtocolError,
    NetworkError,
)
from kraken_proto.events import (
    Event,
    ProtocolError,
    StateChanged,
    Subscribed,
    Unsubscribed,
)
from kraken_proto.http import HttpRequest
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.state import ConnectionState
from kraken_proto.trading import OrderResponse, TradingRequest
from kraken_transports.base import (
    DEFAULT_TIMEOUT,
    IN_FLIGHT,
    TRADABLE_STATES,
    ClientBase,
    Deadline,
    SyncTradingMixin,
    as_state,
    check_symbols,
    request_label,
)
from kraken_transports.router import AckWaiter
from kraken_transports.tokens import fetch_token_blocking

__all__ = ["SocketClient"]

log = logging.getLogger(__name__)

E = TypeVar("E")

_CLOSE_LINGER = 1.0  # seconds a closing socket may wait for the server's close reply and EOF
_MAX_READS = 16  # reads per socket per step before yielding (fairness); more is served next step
_MAX_MESSAGES = 256  # messages handled per step; the rest waits in wsproto's buffer
_SEND_CHUNK = 256 * 1024
_RESOLVE_POLL = 0.005  # while a host name is being resolved on its helper thread
_TOKEN_POLL = 0.005  # while a token is being fetched on its helper thread
_MAX_CLOSE_REASON = 123  # bytes of UTF-8 a close frame's reason may hold
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

    def __init__(
        self,
        conn: _Conn,
        request: HttpRequest,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.conn = conn
        self.done = threading.Event()
        self.token = ""
        self.error: AuthenticationError | None = None
        thread = threading.Thread(
            target=self._run, args=(request, timeout, ssl_context), name="kraken-token", daemon=True
        )
        thread.start()

    def _run(
        self, request: HttpRequest, timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        try:
            self.token = fetch_token_blocking(request, timeout, ssl_context)
        except AuthenticationError as exc:
            self.error = exc
        except Exception as exc:  # a driver bug: fail this attempt, retry with backoff
            log.exception("token request raised")
            self.error = AuthenticationError(
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


class SocketClient(SyncTradingMixin, ClientBase):
    """A Kraken v2 WebSocket client on non-blocking sockets, driven by the caller.

    ``config`` defaults to ``ClientConfig()`` (the public endpoint). ``buffer_events=False``
    delivers events to callbacks only (nothing is queued for :meth:`poll`/:meth:`events`).
    ``clock`` is the monotonic clock handed to the protocol; :meth:`next_deadline` is on it.
    ``ssl_context`` replaces ``ssl.create_default_context()`` for ``wss://`` (for a private CA)
    and for the ``https://`` token request.

    ``private=True`` connects to the auth host (executions, balances, trading with
    :meth:`submit`, :meth:`add_order`, ...); ``level3=True`` to the level3 host. Both need
    ``api_key``/``api_secret`` in ``config``, else :class:`LocalProtocolError` is raised.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        buffer_events: bool = True,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(config, private=private, level3=level3, buffer_events=buffer_events)
        self._clock = clock
        self._ssl_context = ssl_context
        self._conn: _Conn | None = None
        self._closing: list[_Conn] = []
        self._waiters: list[AckWaiter] = []
        self._selector: selectors.BaseSelector | None = None
        self._registered: dict[int, int] = {}
        self._stepping = False
        self._fetch: _TokenFetch | None = None  # the token request in flight
        self._fetch_next: tuple[_Conn, TokenRequest] | None = None  # waits for the one in flight
        self._order_callbacks: dict[int, Callable[[OrderResponse], None]] = {}
        # Held around everything that touches the protocol or the router (never while
        # waiting for IO); ThreadedClient swaps in its Condition so other threads can read.
        self._lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        # Asked after every message: true ends the step early (ThreadedClient: close() or a
        # command is waiting). Each step also stops after _MAX_MESSAGES messages.
        self._pause: Callable[[], bool] | None = None
        self._budget = _MAX_MESSAGES

    # ------------------------------------------------------------------ queries

    def _now(self) -> float:
        return self._clock()

    def wait_until(
        self, state: ConnectionState | str, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Drive the loop until the connection is in ``state`` (returns at once if it is).

        ``state`` is a :class:`~kraken_proto.ConnectionState` or its value
        (``"subscribed"``). Raises :class:`~kraken_proto.errors.WaitTimeoutError` (a
        ``TimeoutError`` naming the last connection failure) after ``timeout`` seconds
        (``None``: no limit), and :class:`~kraken_proto.KrakenConnectionError` if the
        client closes first.
        """
        wanted = as_state(state)
        what = f"the connection did not become {wanted.value!r}"
        deadline = Deadline(timeout, self._clock)
        while self._proto.state is not wanted:
            if self._proto.state is ConnectionState.DISCONNECTED:
                raise LocalProtocolError("wait_until() needs a connection: call connect() first")
            if self._proto.state is ConnectionState.CLOSED:
                raise self._closed_error(
                    f"the client is closed; it will not become {wanted.value!r}"
                )
            self.step(self._slice(deadline, what))

    def fileno(self) -> int:
        """The socket to watch in your own loop, or -1 when there is none (e.g. in backoff).

        It changes on every reconnect: look it up again before each wait.
        """
        conn = self._watched()
        return -1 if conn is None else conn.fd()

    def wants_write(self) -> bool:
        """True while the watched socket has unsent data or a connect in progress."""
        conn = self._watched()
        return conn is not None and conn.wants_write()

    def next_deadline(self) -> float | None:
        """When :meth:`step` must be called at the latest (``clock()`` time), or ``None``.

        The earliest of the protocol's timers and the driver's own (a lingering close, a
        host name being resolved or a token fetched on a helper thread: polled every 5 ms,
        data already read into TLS buffers or messages a step left for the next one).
        """
        deadline = self._proto.next_deadline()
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

    # ------------------------------------------------------------------ control

    def connect(self) -> None:
        """Start connecting (non-blocking): the socket opens during later :meth:`step` calls.

        Also restarts a client that was closed: it resubscribes what was subscribed when it
        closed (the protocol keeps subscriptions). Calling it while connected is an error.
        """
        with self._lock:
            now = self._clock()
            self._perform(self._proto.connect(now), now)
            self._flush_all(now)

    def close(self, timeout: float = 1.0) -> None:
        """Close: send a close frame, wait up to ``timeout`` s for the reply, then hard-close.

        Idempotent. Called from a callback (inside :meth:`step`) it does not wait: the
        running :meth:`step`/:meth:`run` loop finishes the close handshake.
        """
        with self._lock:
            now = self._clock()
            self._perform(self._proto.close(now), now)
            for conn in self._closing:
                conn.linger_until = min(conn.linger_until, now + timeout)
            self._flush_all(now)
        if self._stepping:
            return
        end = self._clock() + timeout
        while self._closing and self._clock() < end:
            self._step(min(_WAIT_SLICE, max(0.0, end - self._clock())), None)
        with self._lock:
            if self._conn is not None:
                self._drop_conn(self._conn)
            for conn in list(self._closing):
                self._drop_conn(conn)
            self._release_if_idle()

    def __enter__(self) -> SocketClient:
        """Connect (if not connected yet) and return the client."""
        if self._proto.state in (ConnectionState.DISCONNECTED, ConnectionState.CLOSED):
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    def subscribe(
        self,
        channel: str,
        symbols: Iterable[str] | str | None = None,
        *,
        wait: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **params: Any,
    ) -> list[Subscribed | Unsubscribed]:
        """Subscribe ``symbols`` (a str or an iterable of str) to ``channel``; remembered and
        replayed after reconnects.

        With ``wait=True`` (default; needs :meth:`connect` first) the loop is driven until
        every symbol is acknowledged and the ``Subscribed`` events are returned; a refusal
        raises :class:`~kraken_proto.SubscriptionError` with Kraken's text, ``timeout``
        seconds without all answers raise :class:`~kraken_proto.errors.WaitTimeoutError`
        (the subscription stays requested), and a connection closed for good raises
        :class:`~kraken_proto.KrakenConnectionError`. ``wait=False`` (the choice inside
        your own loop, and before :meth:`connect`) returns ``[]`` at once and the answers
        arrive as events. Bad arguments raise ``LocalProtocolError``.
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

    # ------------------------------------------------------------------ running

    def step(self, timeout: float = 0.0) -> None:
        """Wait up to ``timeout`` s for IO or a timer, then do all IO that is ready.

        Reads and feeds complete messages to the protocol (callbacks run here), fires due
        timers, and writes what can be written. Never blocks longer than ``timeout``.
        """
        self._step(timeout, None)

    def poll(self) -> Event | None:
        """The next queued event, or ``None`` (non-blocking; does no IO)."""
        return self._router.buffer.pop(self._clock())

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Drive the connection until it is closed or ``until()`` returns true.

        Connects first if needed. ``until`` is checked after every :meth:`step` (at least
        every 0.25 s). Pair it with callbacks and ``buffer_events=False``, or read the queue
        with :meth:`poll` from ``until``.
        """
        if self._proto.state is ConnectionState.DISCONNECTED:
            self.connect()
        while not self._finished():
            if until is not None and until():
                return
            self.step(_WAIT_SLICE)

    def events(self, idle_timeout: float | None = None) -> Iterator[Event]:
        """Drive the loop and yield events as they arrive (connects first if needed).

        Ends once the client is closed and every queued event was yielded, or after
        ``idle_timeout`` seconds without an event (``None``: never).
        """
        if not self._buffer_events:
            raise LocalProtocolError(
                "events() needs buffer_events=True; this client delivers to callbacks only"
            )
        if self._proto.state is ConnectionState.DISCONNECTED:
            self.connect()
        buffer = self._router.buffer
        idle_since = self._clock()
        while True:
            event = self.poll()
            if event is not None:
                yield event
                idle_since = self._clock()
                continue
            now = self._clock()
            ready = buffer.next_ready(now)
            if ready is None and self._finished():
                return
            wait = _WAIT_SLICE
            if idle_timeout is not None:
                remaining = idle_since + idle_timeout - now
                if remaining <= 0:
                    return
                wait = min(wait, remaining)
            if ready is not None:
                wait = min(wait, max(0.0, ready - now))
            self.step(wait)

    def __iter__(self) -> Iterator[Event]:
        """``for event in client:`` is ``client.events()``."""
        return self.events()

    # ------------------------------------------------------------------ trading

    def submit(
        self, request: TradingRequest, timeout: float | None = DEFAULT_TIMEOUT
    ) -> OrderResponse:
        """Send a trading request (``AddOrder``, ``CancelOrder``, ...) and return its settled
        :class:`~kraken_proto.trading.OrderResponse` once Kraken accepted it.

        Blocking: drives this client's loop (:meth:`step`) until the answer comes, so it
        must not be called from inside a callback (that raises ``LocalProtocolError``).
        Needs a ``private=True`` client after :meth:`connect`; while the connection is not
        open and authenticated yet it first drives the loop until it is (requests are never
        queued across connections). The ``OrderResponse`` also reaches callbacks and
        :meth:`poll` like every event.

        Raises :class:`~kraken_proto.OrderError` (refused),
        :class:`~kraken_proto.UnknownOutcomeError` (no answer: reconcile through
        ``executions``), :class:`~kraken_proto.KrakenConnectionError` (not sent, or closed),
        :class:`~kraken_proto.errors.WaitTimeoutError` after ``timeout`` seconds (a sent
        request stays in flight; its ``OrderResponse`` arrives as an event later), and at once
        :class:`~kraken_proto.InvalidRequestError`, ``TradingRateLimitError`` or
        ``LocalProtocolError`` for local misuse.
        """
        _check_trading(self._proto)
        if self._stepping:
            raise LocalProtocolError(
                f"{request.method} cannot run inside a callback (it drives the loop); "
                "call it after step() returns"
            )
        proto = self._proto
        method = request.method
        deadline = Deadline(timeout, self._clock)
        while proto.state not in TRADABLE_STATES:
            if proto.state is ConnectionState.DISCONNECTED:
                raise LocalProtocolError(f"{method} needs a connection: call connect() first")
            if proto.state is ConnectionState.CLOSED:
                raise self._closed_error(f"{method} not sent: the client is closed")
            self.step(
                self._slice(
                    deadline, f"{method} not sent: the connection did not become 'subscribed'"
                )
            )
        answers: list[OrderResponse] = []
        req_id = self._begin_submit(request, answers.append)
        try:
            while not answers:
                if proto.state is ConnectionState.CLOSED:  # pragma: no cover - close settles it
                    raise self._closed_error(
                        f"the client closed before request {req_id} was settled"
                    )
                what = f"no answer to {method} (req_id {req_id})"
                self.step(self._slice(deadline, what, IN_FLIGHT))
        finally:
            self._end_submit(req_id)
        response = answers[0]
        response.raise_for_outcome()
        return response

    def arm_dead_man_switch(self, timeout: int, interval: float | None = None) -> None:
        """Keep Kraken's dead man's switch armed: every open order is cancelled if this
        client stops refreshing it for ``timeout`` seconds (sent now if connected, then
        every ``interval`` s, default ``timeout / 3``, and after reconnects). :meth:`close`
        disarms it. Its answers arrive as ``OrderResponse`` events."""
        with self._lock:
            now = self._clock()
            self._perform(self._proto.arm_dead_man_switch(timeout, now, interval=interval), now)
            self._flush_all(now)

    def disarm_dead_man_switch(self) -> None:
        """Stop refreshing the dead man's switch and disarm it on Kraken (timeout 0)."""
        with self._lock:
            now = self._clock()
            self._perform(self._proto.disarm_dead_man_switch(now), now)
            self._flush_all(now)

    def _slice(self, deadline: Deadline, what: str, note: str = "") -> float:
        """How long the next step may wait; past ``deadline`` raises the timeout of ``what``."""
        remaining = deadline.remaining()
        if remaining is None:
            return _WAIT_SLICE
        if remaining <= 0:
            raise self._timed_out(what, deadline.timeout, note)
        return min(_WAIT_SLICE, remaining)

    def _begin_submit(
        self, request: TradingRequest, callback: Callable[[OrderResponse], None]
    ) -> int:
        """Hand ``request`` to the protocol; ``callback`` gets its ``OrderResponse``."""
        with self._lock:
            now = self._clock()
            req_id, actions = self._proto.submit(request, now)
            self._order_callbacks[req_id] = callback
            self._perform(actions, now)
            self._flush_all(now)
        return req_id

    def _end_submit(self, req_id: int) -> None:
        with self._lock:
            self._order_callbacks.pop(req_id, None)

    # ------------------------------------------------------------------ requests

    def _request(
        self,
        method: str,
        channel: str,
        symbols: Iterable[str] | str | None,
        params: dict[str, Any],
        wait: bool,
        timeout: float | None,
    ) -> list[Subscribed | Unsubscribed]:
        names, checked = check_symbols(channel, symbols, self._proto.host)
        if wait:
            if self._stepping:
                raise LocalProtocolError(
                    f"{method}(wait=True) cannot run inside a callback; pass wait=False"
                )
            if method == "subscribe" and self._proto.state in (
                ConnectionState.DISCONNECTED,
                ConnectionState.CLOSED,
            ):
                raise LocalProtocolError(
                    f"{method}(wait=True) needs a connection: call connect() first, "
                    "or pass wait=False to queue the request until connect()"
                )
        waiter = self._begin_request(method, channel, names, checked, params)
        try:
            if not wait:
                return []
            deadline = Deadline(timeout, self._clock)
            label = request_label(method, channel, waiter.symbols)
            while not waiter.done:
                if self._proto.state is ConnectionState.CLOSED:
                    raise self._closed_error(f"the client closed before Kraken answered {label}")
                self.step(self._slice(deadline, f"no answer to {label}"))
            return waiter.result()
        finally:
            self._end_request(waiter)

    def _begin_request(
        self,
        method: str,
        channel: str,
        names: Sequence[str] | str | None,
        checked: tuple[str | None, ...],
        params: dict[str, Any],
    ) -> AckWaiter:
        """Send a subscribe/unsubscribe and register the waiter that collects its answers
        (``names`` and ``checked`` as :func:`~kraken_transports.base.check_symbols` gives)."""
        waiter = AckWaiter(method, channel, checked)
        with self._lock:
            self._waiters.append(waiter)
            try:
                now = self._clock()
                call = self._proto.subscribe if method == "subscribe" else self._proto.unsubscribe
                self._perform(call(channel, names, now, **params)[1], now)
                self._flush_all(now)
            except BaseException:
                self._waiters.remove(waiter)
                raise
        return waiter

    def _end_request(self, waiter: AckWaiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ------------------------------------------------------------------ the loop

    def _finished(self) -> bool:
        return self._proto.state is ConnectionState.CLOSED and not self._closing

    def _watched(self) -> _Conn | None:
        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        return self._closing[0] if self._closing else None

    def _step(self, timeout: float, wake: socket.socket | None) -> bool:
        """One loop iteration; returns True if ``wake`` was readable (and drained)."""
        if self._stepping:
            raise LocalProtocolError(
                "step() is not re-entrant: do not drive the loop from a callback"
            )
        self._stepping = True
        try:
            return self._step_inner(timeout, wake)
        finally:
            self._stepping = False

    def _step_inner(self, timeout: float, wake: socket.socket | None) -> bool:
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
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while wake.recv(4096):
                    pass
        with self._lock:
            now = self._clock()
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
            and self._proto.state is ConnectionState.CLOSED
            and self._conn is None
            and not self._closing
        ):
            self._selector.close()
            self._selector = None
            self._registered.clear()

    def _sync_selector(self, wake: socket.socket | None) -> selectors.BaseSelector:
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
        deadline = self._proto.next_deadline()
        if deadline is not None and now >= deadline:
            self._perform(self._proto.handle_timer(now), now)
        for conn in list(self._closing):
            if now >= conn.linger_until:
                self._drop_conn(conn)

    # ------------------------------------------------------------------ actions

    def _perform(self, actions: list[Action], now: float) -> None:
        """Perform ``actions`` in order. A driver fault is logged, never raised into the loop."""
        for action in actions:
            try:
                if isinstance(action, Emit):
                    self._emit(action.event, now)
                elif isinstance(action, Send):
                    self._send(action.text)
                elif isinstance(action, OpenConnection):
                    self._open(action.url, now)
                elif isinstance(action, CloseConnection):
                    self._close_current(action.code, action.reason, now)
                elif isinstance(action, FetchToken):
                    self._fetch_token(action.request)
            except Exception:
                log.exception("driver error while performing %s", type(action).__name__)

    def _emit(self, event: Event, now: float) -> None:
        if type(event) is StateChanged:
            self._state_changed(event)
        self._router.dispatch(event, now)
        for waiter in self._waiters:
            if not waiter.done:
                waiter.feed(event)
        if type(event) is OrderResponse and self._order_callbacks:
            callback = self._order_callbacks.pop(event.req_id, None)
            if callback is not None:
                callback(event)

    def _fetch_token(self, request: TokenRequest) -> None:
        """Start the token request for the current connection (after the one in flight)."""
        conn = self._conn
        if conn is None:  # pragma: no cover - FetchToken only follows connection_made
            return
        if self._fetch is not None:
            self._fetch_next = (conn, request)
            return
        self._start_fetch(conn, request)

    def _start_fetch(self, conn: _Conn, request: TokenRequest) -> None:
        http = request.build(time.time())  # here: the nonce generator is not thread-safe
        self._fetch = _TokenFetch(conn, http, self._config.timeout, self._ssl_context)

    def _service_token(self, now: float) -> None:
        """Hand a finished token request to the protocol if its connection still waits."""
        fetch = self._fetch
        if fetch is not None and fetch.done.is_set():
            self._fetch = None
            if fetch.conn is self._conn and self._proto.state is ConnectionState.AUTHENTICATING:
                if fetch.error is not None:
                    log.debug("token request failed: %s", fetch.error.error)
                    actions = self._proto.token_failed(
                        fetch.error.error, now, terminal=fetch.error.terminal
                    )
                else:
                    actions = self._proto.token_received(fetch.token, now)
                self._perform(actions, now)
            else:
                log.debug("token result dropped: the connection that asked for it is gone")
        if self._fetch is None and self._fetch_next is not None:
            conn, request = self._fetch_next
            self._fetch_next = None
            if conn is self._conn and self._proto.state is ConnectionState.AUTHENTICATING:
                self._start_fetch(conn, request)

    def _send(self, text: str) -> None:
        conn = self._conn
        if conn is None or conn.phase != "open" or conn.ws.state is not WsState.OPEN:
            log.debug("dropping a message sent while no connection is open")
            return
        conn.out += conn.ws.send(TextMessage(data=text))
        self._router.frames_out += 1

    def _open(self, url: str, now: float) -> None:
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

    def _close_current(self, code: int, reason: str, now: float) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if conn.phase != "open" or conn.ws.state is not WsState.OPEN:
            self._drop_conn(conn)
            return
        conn.out += conn.ws.send(WsClose(code=code, reason=_close_reason(reason)))
        self._linger(conn, now)

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
                    self._failed(conn, now, exc)
                    return
                if not data:
                    self._eof(conn, now)
                    return
                conn.ws.receive_data(data)
            except (WsLocalProtocolError, WsRemoteProtocolError) as exc:
                self._failed(conn, now, NetworkError(f"WebSocket protocol error: {exc}"))
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
                self._perform(self._proto.connection_made(now), now)
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
            self._router.frames_in += 1
            if oversized:
                error = f"message of {size} bytes exceeds max_message_size ({limit}); discarded"
                self._emit(ProtocolError(error, conn.excerpt, now), now)
                return
            payload = "".join(parts) if isinstance(data, str) else b"".join(parts)
            self._receive(payload, now)
            return
        self._router.frames_in += 1
        self._receive(payload, now)

    def _receive(self, payload: str | bytes, now: float) -> None:
        try:
            actions = self._proto.receive_data(payload, now)
        except Exception as exc:  # a core bug: report it, keep the connection
            log.exception("receive_data raised")
            excerpt = payload[:_EXCERPT]
            text = excerpt if isinstance(excerpt, str) else excerpt.decode("utf-8", "replace")
            problem = f"frame not handled: {type(exc).__name__}: {exc}"
            actions = [Emit(ProtocolError(problem, text, now))]
        self._perform(actions, now)

    def _on_close_frame(self, conn: _Conn, event: WsClose, now: float) -> None:
        self._conn = None
        if conn.ws.state is WsState.REMOTE_CLOSING:
            conn.out += conn.ws.send(event.response())
            conn.remote_closed = True
            self._linger(conn, now)
            self._connection_lost(now, None, event.code)
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
        self._connection_lost(now, error)

    def _rejected(self, conn: _Conn, now: float) -> None:
        body = bytes(conn.reject_body).decode("utf-8", "replace").strip()
        detail = f": {body}" if body else ""
        error = NetworkError(
            f"WebSocket upgrade to {conn.url} rejected with HTTP {conn.reject_status}{detail}"
        )
        self._failed(conn, now, error)

    def _eof(self, conn: _Conn, now: float) -> None:
        if conn.phase == "upgrade" and conn.reject_status:
            self._rejected(conn, now)
            return
        where = (
            "during the WebSocket upgrade" if conn.phase == "upgrade" else "without a close frame"
        )
        self._failed(conn, now, ConnectionResetError(f"the server closed the connection {where}"))

    def _failed(self, conn: _Conn, now: float, exc: BaseException) -> None:
        """The current connection broke: hard-close it and tell the protocol."""
        self._lost(conn, now, exc)

    def _lost(self, conn: _Conn, now: float, exc: BaseException) -> None:
        current = conn is self._conn
        self._drop_conn(conn)
        if current:
            log.debug("connection lost: %s: %s", type(exc).__name__, exc)
            self._connection_lost(now, exc)

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
                    self._failed(conn, now, exc)
                else:
                    self._drop_conn(conn)
                return
            del out[:sent]
            conn.tls_wants_write = False
        if conn.phase == "closing" and conn.ws.state is WsState.CLOSED and not conn.remote_closed:
            # Our close frame was answered and everything is sent; the server closes TCP
            # first by the book, but nothing is left to wait for.
            self._drop_conn(conn)


def _pending(sock: socket.socket | None) -> bool:
    """Whether a TLS socket holds decrypted bytes that ``select`` cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _strerror(err: int) -> str:
    return f"{errno.errorcode.get(err, 'error')} {os.strerror(err)}"


def _check_trading(proto: KrakenProtocol) -> None:
    """Refuse trading on a client that is not private (before anything else happens)."""
    if proto.host != "auth":
        raise LocalProtocolError(
            "trading needs a private client: SocketClient(config, private=True)"
        )
