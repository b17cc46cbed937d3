"""Serve the fake Kraken exchange on a loopback WebSocket (aiohttp).

``run_simulator()`` starts an aiohttp server backed by a
:class:`~kraken_proto.simulator.FakeExchange`, with one WebSocket path per Kraken host:
``/v2`` and ``/`` the public host (ws.kraken.com), ``/auth/v2`` the auth host
(ws-auth.kraken.com: executions, balances, trading) and ``/l3/v2`` the level3 host
(ws-l3.kraken.com); ``POST /0/private/GetWebSocketsToken`` is the REST token endpoint
(:meth:`~kraken_proto.simulator.FakeExchange.handle_token_request`; sign it with
``SIM_API_KEY``/``SIM_API_SECRET`` from ``kraken_proto.simulator``). Each accepted socket gets an
:class:`~kraken_proto.simulator.ExchangeConnection`, a reader task feeding it the client's
messages and a timer task calling ``handle_timer`` at ``next_deadline()`` on the event
loop's clock. Actions are performed in order: ``Send`` -> ``send_str``,
``CloseConnection`` -> a close frame with that code, ``Drop`` -> the TCP connection is
aborted without a close frame.

::

    async with run_simulator(seed=1) as sim:
        async with session.ws_connect(sim.url) as ws:
            ...
            await sim.inject(Drop())        # every live connection

``sim.client_config(**overrides)`` is a :class:`~kraken_proto.ClientConfig` pointed at
every host of the simulator, with its test credentials.

Blocking code (``SocketClient``, ``ThreadedClient``, tests without an event loop) runs it on
a thread of its own with :class:`SimulatorThread`::

    with SimulatorThread(seed=1) as sim:
        with SocketClient(sim.client_config()) as client:
            ...
            sim.inject(Drop())              # thread-safe

``sim.counters`` is what the server counted (connections, messages, closes, injected faults:
:class:`SimulatorCounters`), which ``kraken_transports.metrics`` exports.

``serve()`` is the blocking entry behind ``kraken-ws serve``; it prints
:func:`connection_text`: the :class:`~kraken_proto.ClientConfig` fields of every host
(:func:`client_settings`), as shell ``export`` lines for ``ClientConfig.from_env()`` and
as a ``ClientConfig(...)`` to paste.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import ipaddress
import json
import shlex
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar, cast, overload
from urllib.parse import urlsplit, urlunsplit

import msgspec
from aiohttp import WSMsgType, web

from kraken_proto.actions import CloseConnection, Send
from kraken_proto.auth import TOKEN_PATH
from kraken_proto.config import ClientConfig, is_loopback_url
from kraken_proto.simulator import (
    SIM_API_KEY,
    SIM_API_SECRET,
    ExchangeConnection,
    FakeExchange,
    Fault,
    ServerAction,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ABNORMAL_CLOSE",
    "SimConnection",
    "ENVIRONMENT_VARIABLES",
    "ClientSettings",
    "SimServer",
    "SimulatorCounters",
    "SimulatorThread",
    "client_settings",
    "connection_text",
    "run_simulator",
    "serve",
]

_CLOSE_TIMEOUT = 1.0  # seconds a close handshake may take before the socket is aborted
_SHUTDOWN_CLOSE_CODE = 1001

_T = TypeVar("_T")
_P = ParamSpec("_P")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ABNORMAL_CLOSE = "1006"
"""The close ``code`` label of a connection dropped without a close frame (a ``Drop``)."""


class SimulatorCounters(msgspec.Struct, frozen=True):
    """What a :class:`SimServer` counted since it started, at one moment.

    By host (``public``, ``auth``, ``level3``): ``connections`` accepted and ``live`` now,
    messages ``sent`` and ``received``. ``closes``: connections the server ended, by close
    code (``"1006"``: dropped without a close frame, :data:`ABNORMAL_CLOSE`); ``faults``:
    faults injected through :meth:`SimServer.inject`, by class name (scheduled ones act
    inside the exchange: their closes and drops are counted); ``token_requests``: answers
    of the REST token endpoint, by HTTP status.
    """

    connections: dict[str, int]
    live: dict[str, int]
    sent: dict[str, int]
    received: dict[str, int]
    closes: dict[str, int]
    faults: dict[str, int]
    token_requests: dict[str, int]


class _SimTally:
    """The mutable counts behind :class:`SimulatorCounters` (one per server, on its loop)."""

    def __init__(self) -> None:
        self.connections: dict[str, int] = {}
        self.live: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.closes: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.token_requests: dict[str, int] = {}

    @staticmethod
    def add(counts: dict[str, int], key: str, amount: int = 1) -> None:
        """Add ``amount`` to ``counts[key]``."""
        counts[key] = counts.get(key, 0) + amount

    def snapshot(self) -> SimulatorCounters:
        """The counts now, copied."""
        return SimulatorCounters(
            connections=dict(self.connections),
            live=dict(self.live),
            sent=dict(self.sent),
            received=dict(self.received),
            closes=dict(self.closes),
            faults=dict(self.faults),
            token_requests=dict(self.token_requests),
        )


class SimConnection:
    """One live client socket and its :class:`~kraken_proto.simulator.ExchangeConnection`."""

    def __init__(
        self,
        protocol: ExchangeConnection,
        ws: web.WebSocketResponse,
        request: web.Request,
        host: str = "public",
        tally: _SimTally | None = None,
    ) -> None:
        self.protocol = protocol
        self._host = host
        self._tally = tally if tally is not None else _SimTally()
        """The sans-IO session (its ``connection_id``, ``closed``, ...)."""
        self._ws = ws
        self._request = request
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.closed = False
        """Whether the socket has been closed, dropped or lost."""

    async def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to this connection now."""
        if not self.closed:
            self._tally.add(self._tally.faults, type(fault).__name__)
        await self._run(lambda now: self.protocol.inject(fault, now))

    async def _run(self, step: Callable[[float], list[ServerAction]]) -> None:
        """Call the protocol with the loop's time and perform its actions, one at a time."""
        async with self._lock:
            if self.closed:
                return
            for action in step(self._loop.time()):
                await self._perform(action)
        self._wake.set()

    async def _perform(self, action: ServerAction) -> None:
        if self.closed:
            return
        tally = self._tally
        if isinstance(action, Send):
            try:
                await self._ws.send_str(action.text)
            except (ConnectionError, RuntimeError):
                self._abort()
            else:
                tally.add(tally.sent, self._host)
        elif isinstance(action, CloseConnection):
            tally.add(tally.closes, str(action.code))
            self.closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._ws.close(code=action.code, message=action.reason.encode()),
                    _CLOSE_TIMEOUT,
                )
            self._abort()
        else:
            tally.add(tally.closes, ABNORMAL_CLOSE)
            self._abort()

    def _abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed = True
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def _timers(self) -> None:
        """Call ``handle_timer`` whenever the protocol's deadline comes."""
        while not self.closed:
            self._wake.clear()
            deadline = self.protocol.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            await self._run(self.protocol.handle_timer)

    async def _serve(self) -> None:
        """Feed the client's messages to the protocol until the socket ends."""
        timers = asyncio.create_task(self._timers())
        try:
            await self._run(self.protocol.connection_made)
            async for message in self._ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._run(functools.partial(self._receive, message.data))
        finally:
            self.closed = True
            # Let an action in progress (a close handshake) finish before stopping timers.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lock.acquire(), _CLOSE_TIMEOUT + 0.5)
                self._lock.release()
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers
            self.protocol.connection_lost(self._loop.time())

    def _receive(self, data: str | bytes, now: float) -> list[ServerAction]:
        self._tally.add(self._tally.received, self._host)
        return self.protocol.receive_data(data, now)

    async def shutdown(self) -> None:
        """Close the socket with 1001 (going away), waiting at most a second."""
        await self._run(lambda now: [CloseConnection(_SHUTDOWN_CLOSE_CODE, "Server shutdown")])


class SimServer:
    """A running simulator: its :attr:`url`, its :attr:`exchange` and the live connections."""

    def __init__(self, exchange: FakeExchange, host: str) -> None:
        self.exchange = exchange
        """The :class:`~kraken_proto.simulator.FakeExchange` behind the socket."""
        self.host = host
        """The bound host."""
        self.port = 0
        """The bound port (chosen by the OS when 0 was asked for)."""
        self.connections: list[SimConnection] = []
        """The live connections, oldest first."""
        self._changed = asyncio.Condition()
        self._tally = _SimTally()

    @property
    def counters(self) -> SimulatorCounters:
        """What the server counted so far (see :class:`SimulatorCounters`); safe to read
        from any thread (figures may then be a message apart)."""
        return self._tally.snapshot()

    def _base(self, scheme: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The public host's WebSocket URL, e.g. ``ws://127.0.0.1:54321/v2``."""
        return f"{self._base('ws')}/v2"

    @property
    def auth_url(self) -> str:
        """The auth host's WebSocket URL (private channels, trading): ``ws://.../auth/v2``."""
        return f"{self._base('ws')}/auth/v2"

    @property
    def level3_url(self) -> str:
        """The level3 host's WebSocket URL: ``ws://.../l3/v2``."""
        return f"{self._base('ws')}/l3/v2"

    @property
    def rest_url(self) -> str:
        """The REST base URL for the token request, e.g. ``http://127.0.0.1:54321``."""
        return self._base("http")

    def client_config(self, **overrides: Any) -> ClientConfig:
        """A :class:`~kraken_proto.ClientConfig` for this simulator: its hosts and test
        credentials (:func:`client_settings`); keyword ``overrides`` are any other fields
        (``reconnect=...``, ``gap_policy=...``) and win."""
        values: dict[str, Any] = {**client_settings(self), **overrides}
        return ClientConfig(**values)

    async def inject(self, fault: Fault, connection: SimConnection | None = None) -> None:
        """Apply ``fault`` now to ``connection``, or to every live connection."""
        targets = list(self.connections) if connection is None else [connection]
        for target in targets:
            await target.inject(fault)

    async def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` or more connections are live; ``TimeoutError`` after ``timeout``."""
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.connections) >= count), timeout
                )
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError(
                f"{len(self.connections)} of {count} connections after {timeout} s"
            ) from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = asyncio.get_running_loop().time()
        status, answer = self.exchange.handle_token_request(
            request.path, dict(request.headers), body, now
        )
        self._tally.add(self._tally.token_requests, str(status))
        return web.Response(status=status, body=answer, content_type="application/json")

    async def _handle(self, request: web.Request, host: str = "public") -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        protocol = self.exchange.open_connection(loop.time(), host)
        tally = self._tally
        connection = SimConnection(protocol, ws, request, host, tally)
        self.connections.append(connection)
        tally.add(tally.connections, host)
        tally.add(tally.live, host)
        await self._notify()
        try:
            await connection._serve()
        finally:
            self.connections.remove(connection)
            tally.add(tally.live, host, -1)
            await self._notify()
        return ws


@contextlib.asynccontextmanager
async def run_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 0,
    exchange: FakeExchange | None = None,
    allow_remote: bool = False,
    **kwargs: Any,
) -> AsyncIterator[SimServer]:
    """Serve a fake exchange on ``ws://host:port/v2`` for the duration of the block.

    Also ``/auth/v2`` (auth host), ``/l3/v2`` (level3 host) and the REST token endpoint;
    see :class:`SimServer` for their URLs.

    ``exchange`` is used as given, or built as ``FakeExchange(seed=seed, **kwargs)``. Its
    timestamps follow the current UTC time (``epoch`` is ``time.time()`` now and ``origin``
    the event loop's clock now) unless ``kwargs`` fix an ``epoch`` (a deterministic
    start, e.g. for tests). ``port=0`` lets the OS choose (read it from ``sim.url``). Only
    loopback hosts are accepted unless ``allow_remote=True``. On exit every socket is
    closed with 1001 and the server stops; this takes at most a couple of seconds even with
    stuck clients.
    """
    if not (allow_remote or _is_loopback(host)):
        raise ValueError(
            f"refusing to serve the simulator on non-loopback host {host!r}; "
            "pass allow_remote=True to do it anyway"
        )
    if exchange is None:
        if "epoch" not in kwargs:
            kwargs["epoch"] = time.time()
            kwargs["origin"] = asyncio.get_running_loop().time()
        exchange = FakeExchange(seed=seed, **kwargs)
    server = SimServer(exchange, host)
    app = web.Application()
    app.router.add_get("/v2", server._handle)
    app.router.add_get("/", server._handle)
    app.router.add_get("/auth/v2", functools.partial(server._handle, host="auth"))
    app.router.add_get("/l3/v2", functools.partial(server._handle, host="level3"))
    app.router.add_post(TOKEN_PATH, server._token)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server.port = runner.addresses[0][1]
        yield server
    finally:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(
                    *(c.shutdown() for c in list(server.connections)), return_exceptions=True
                ),
                _CLOSE_TIMEOUT + 0.5,
            )
        for connection in list(server.connections):
            connection._abort()
        await runner.cleanup()


class ClientSettings(TypedDict):
    """The :class:`~kraken_proto.ClientConfig` fields that point a client at a simulator,
    as :func:`client_settings` gives them (``ClientConfig(**settings)`` type-checks)."""

    endpoint: str
    auth_endpoint: str
    level3_endpoint: str
    rest_url: str
    api_key: str
    api_secret: str


def client_settings(sim: SimServer) -> ClientSettings:
    """The :class:`~kraken_proto.ClientConfig` fields that point a client at ``sim``.

    ``endpoint``, ``auth_endpoint``, ``level3_endpoint``, ``rest_url`` (the base URL: the
    token request adds its path) and the simulator's test ``api_key`` and ``api_secret``.
    A server bound to every interface (``0.0.0.0``, ``::``) is given by its loopback address.
    :meth:`SimServer.client_config` builds the configuration itself.
    """
    return cast(ClientSettings, _settings(sim))


def _settings(sim: SimServer) -> dict[str, str]:
    """:func:`client_settings` as a plain mapping, in the order it is printed."""
    urls = {
        "endpoint": sim.url,
        "auth_endpoint": sim.auth_url,
        "level3_endpoint": sim.level3_url,
        "rest_url": sim.rest_url,
    }
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(sim.host)
        if address.is_unspecified:
            loopback = "[::1]" if address.version == 6 else "127.0.0.1"
            urls = {
                name: urlunsplit(urlsplit(url)._replace(netloc=f"{loopback}:{sim.port}"))
                for name, url in urls.items()
            }
    return {**urls, "api_key": SIM_API_KEY, "api_secret": SIM_API_SECRET}


class SimulatorThread:
    """The simulator served from a thread of its own, for blocking code and tests.

    :func:`run_simulator` needs a running asyncio event loop; this runs it on a daemon
    thread with an event loop of its own, so that a ``SocketClient``, a ``ThreadedClient``
    or a test without an event loop can use it::

        with SimulatorThread(seed=1) as sim:              # listening once this returns
            with ThreadedClient(sim.client_config()) as client:
                client.subscribe("book", ["BTC/USD"], depth=10)
                sim.inject(Drop())                         # from any thread

    The arguments are :func:`run_simulator`'s (by default on 127.0.0.1, on a port the OS
    picks), and ``timeout``: the longest any method waits for the simulator's thread.
    No method waits longer: one that ran out raises ``TimeoutError``. The URLs
    (:attr:`url`, ``server.auth_url``, ...) and :meth:`client_config` may be read from any
    thread; everything else on :attr:`server` (its exchange, its connections) belongs to
    the simulator's loop: reach it through :meth:`call`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        exchange: FakeExchange | None = None,
        allow_remote: bool = False,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "seed": seed,
            "exchange": exchange,
            "allow_remote": allow_remote,
            **kwargs,
        }
        self.timeout = timeout
        """The longest any method waits for the simulator's thread, in seconds."""
        self._server: SimServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # Not "kraken-...": that prefix names the clients' own threads.
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Self:
        """Start serving; returns once the simulator listens (its URLs are known).

        ``TimeoutError`` if it does not within :attr:`timeout`; ``RuntimeError`` if it
        failed to start (the cause chained: a port in use, a non-loopback host, ...) or
        was started before.
        """
        if self._thread.ident is not None:
            raise RuntimeError("this SimulatorThread was started before; make a new one")
        self._thread.start()
        if not self._ready.wait(self.timeout):
            self._request_stop()
            raise TimeoutError(f"the simulator did not start within {self.timeout:g} s")
        if self._server is None:
            raise RuntimeError("the simulator failed to start") from self._error
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop: every socket is closed with 1001, the server stops and its thread ends.

        Waits at most ``timeout`` s (default :attr:`timeout`); ``TimeoutError`` if the
        thread is still running then (a daemon thread: it does not keep the process
        alive), ``RuntimeError`` (the cause chained) if the server failed while serving.
        Idempotent; a no-op if never started.
        """
        self._request_stop()
        if self._thread.ident is None or threading.current_thread() is self._thread:
            return
        wait = self.timeout if timeout is None else timeout
        self._thread.join(wait)
        if self._thread.is_alive():
            raise TimeoutError(f"the simulator did not stop within {wait:g} s")
        error, self._error = self._error, None
        if error is not None and self._server is not None:
            raise RuntimeError("the simulator failed while serving") from error

    def __enter__(self) -> Self:
        """Start (see :meth:`start`) and return the simulator."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop (see :meth:`close`)."""
        self.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() (or lost after a clean start)
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stopping:  # closed before the loop was up
            return
        async with run_simulator(**self._options) as server:
            self._server = server
            self._ready.set()
            await self._stop.wait()

    def _request_stop(self) -> None:
        self._stopping = True  # before reading _stop: _serve sets it before reading this
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: stopped already
                loop.call_soon_threadsafe(stop.set)

    # ------------------------------------------------------------------ the server

    @property
    def server(self) -> SimServer:
        """The running :class:`SimServer` (``RuntimeError`` before :meth:`start`). Its
        URLs are safe to read from any thread; the rest only through :meth:`call`."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server

    @property
    def url(self) -> str:
        """The public host's WebSocket URL, e.g. ``ws://127.0.0.1:54321/v2`` (the other
        hosts': ``server.auth_url``, ``server.level3_url``, ``server.rest_url``)."""
        return self.server.url

    def client_settings(self) -> ClientSettings:
        """The :class:`~kraken_proto.ClientConfig` fields for this simulator
        (:func:`client_settings`)."""
        return client_settings(self.server)

    def client_config(self, **overrides: Any) -> ClientConfig:
        """A :class:`~kraken_proto.ClientConfig` for this simulator; keyword ``overrides``
        are any other fields (see :meth:`SimServer.client_config`)."""
        return self.server.client_config(**overrides)

    # ------------------------------------------------------------------ from any thread

    @overload
    def call(
        self,
        fn: Callable[_P, Coroutine[Any, Any, _T]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T: ...

    @overload
    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T: ...

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the simulator's loop (awaiting it if it returns
        an awaitable) and return its result, e.g.
        ``sim.call(lambda: sim.server.exchange.markets["BTC/USD"].book(1))``.

        Waits at most :attr:`timeout` (``TimeoutError``); ``RuntimeError`` when the
        simulator is not running or when called on the simulator's own thread.
        """
        return self._call(fn, args, kwargs, self.timeout)

    def inject(self, fault: Fault, connection: SimConnection | None = None) -> None:
        """Apply ``fault`` now to ``connection``, or to every live connection (see
        :meth:`SimServer.inject`); returns once it was applied. Thread-safe."""
        self._call(self.server.inject, (fault, connection), {}, self.timeout)

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` or more connections are live; ``TimeoutError`` after
        ``timeout``. Thread-safe."""
        self._call(self.server.wait_for_connections, (count, timeout), {}, timeout + 1.0)

    def _call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], wait: float
    ) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "SimulatorThread methods block: on the simulator's own loop, await the "
                "server's coroutines instead"
            )
        loop = self._loop
        if loop is None or self._server is None or self._stopping or not self._thread.is_alive():
            raise RuntimeError("the simulator is not running")

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:  # not the builtin one on Python 3.10
            future.cancel()
            raise TimeoutError(f"the simulator did not answer within {wait:g} s") from None


_NOTES = {
    "endpoint": "public host (ws.kraken.com)",
    "auth_endpoint": "private host (ws-auth.kraken.com): executions, balances, trading",
    "level3_endpoint": "level3 host (ws-l3.kraken.com)",
    "rest_url": f"base URL only: the token request adds {TOKEN_PATH}",
}


ENVIRONMENT_VARIABLES = {
    "endpoint": "KRAKEN_WS_ENDPOINT",
    "auth_endpoint": "KRAKEN_WS_AUTH_ENDPOINT",
    "level3_endpoint": "KRAKEN_WS_LEVEL3_ENDPOINT",
    "rest_url": "KRAKEN_REST_URL",
    "api_key": "KRAKEN_API_KEY",
    "api_secret": "KRAKEN_API_SECRET",
}
"""The variable :meth:`ClientConfig.from_env <kraken_proto.ClientConfig.from_env>` reads
for each field that :func:`client_settings` gives."""


def connection_text(sim: SimServer, seed: int) -> str:
    """What ``kraken-ws serve`` prints: each setting a client needs, three ways to paste.

    The :class:`~kraken_proto.ClientConfig` fields one per line, each value exactly as it
    is to be pasted; ``export`` lines for a POSIX shell, for ``ClientConfig.from_env()``;
    and, from the ``# paste into Python:`` line on, Python that builds the configuration.
    """
    settings = _settings(sim)
    remote = not all(is_loopback_url(settings[name]) for name in _NOTES)
    name_w = max(len(name) for name in settings)
    url_w = max(len(settings[name]) for name in _NOTES)
    host = f"[{sim.host}]" if ":" in sim.host else sim.host
    lines = [
        f"Kraken simulator (seed {seed}) listening on {host}:{sim.port}; Ctrl-C to stop.",
        "",
        "ClientConfig fields for it, exactly as they are to be pasted:",
    ]
    for name, value in settings.items():
        note = f"  {_NOTES[name]}" if name in _NOTES else ""
        lines.append(f"  {name:<{name_w}}  {value:<{url_w}}{note}".rstrip())
    lines.append(
        "api_key and api_secret are the simulator's test values (SIM_API_KEY, SIM_API_SECRET\n"
        "in kraken_proto.simulator), not secrets; its token endpoint accepts no other."
    )
    lines += ["", "# paste into your shell, for ClientConfig.from_env():"]
    lines += [
        f"export {ENVIRONMENT_VARIABLES[name]}={shlex.quote(value)}"
        for name, value in settings.items()
    ]
    if remote:
        lines.append("# and pass allow_insecure=True: ws:// and http:// to a host not loopback")
    lines += ["", "# paste into Python:", "from kraken_proto import ClientConfig", ""]
    lines.append("config = ClientConfig(")
    lines += [f"    {name}={json.dumps(value)}," for name, value in settings.items()]
    if remote:
        lines.append("    allow_insecure=True,  # ws:// and http:// to a host other than loopback")
    lines.append(")")
    return "\n".join(lines)


def serve(
    host: str,
    port: int,
    seed: int,
    *,
    allow_remote: bool = False,
    on_start: Callable[[SimServer], object] | None = None,
) -> None:
    """Run the simulator until Ctrl-C (the ``kraken-ws serve`` command).

    Prints :func:`connection_text` once it listens, then calls ``on_start(server)`` if
    given (on the simulator's event loop: e.g. to export its metrics).
    """

    async def main() -> None:
        async with run_simulator(host, port, seed=seed, allow_remote=allow_remote) as sim:
            print(connection_text(sim, seed), flush=True)
            if on_start is not None:
                on_start(sim)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
