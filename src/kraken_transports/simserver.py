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

``serve()`` is the blocking entry behind ``kraken-ws serve``; it prints
:func:`connection_text`: the :class:`~kraken_proto.ClientConfig` fields of every host
(:func:`client_settings`), as shell ``export`` lines for ``ClientConfig.from_env()`` and
as a ``ClientConfig(...)`` to paste.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import shlex
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import WSMsgType, web

from kraken_proto.actions import CloseConnection, Send
from kraken_proto.auth import TOKEN_PATH
from kraken_proto.config import is_loopback_url
from kraken_proto.simulator import (
    SIM_API_KEY,
    SIM_API_SECRET,
    ExchangeConnection,
    FakeExchange,
    Fault,
    ServerAction,
)

__all__ = [
    "SimConnection",
    "ENVIRONMENT_VARIABLES",
    "SimServer",
    "client_settings",
    "connection_text",
    "run_simulator",
    "serve",
]

_CLOSE_TIMEOUT = 1.0  # seconds a close handshake may take before the socket is aborted
_SHUTDOWN_CLOSE_CODE = 1001


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SimConnection:
    """One live client socket and its :class:`~kraken_proto.simulator.ExchangeConnection`."""

    def __init__(
        self, protocol: ExchangeConnection, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.protocol = protocol
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
        if isinstance(action, Send):
            try:
                await self._ws.send_str(action.text)
            except (ConnectionError, RuntimeError):
                self._abort()
        elif isinstance(action, CloseConnection):
            self.closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._ws.close(code=action.code, message=action.reason.encode()),
                    _CLOSE_TIMEOUT,
                )
            self._abort()
        else:
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

    async def inject(self, fault: Fault, connection: SimConnection | None = None) -> None:
        """Apply ``fault`` now to ``connection``, or to every live connection."""
        targets = list(self.connections) if connection is None else [connection]
        for target in targets:
            await target.inject(fault)

    async def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` or more connections are live; ``TimeoutError`` after ``timeout``."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.connections) >= count), timeout
            )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = asyncio.get_running_loop().time()
        status, answer = self.exchange.handle_token_request(
            request.path, dict(request.headers), body, now
        )
        return web.Response(status=status, body=answer, content_type="application/json")

    async def _handle(self, request: web.Request, host: str = "public") -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        protocol = self.exchange.open_connection(loop.time(), host)
        connection = SimConnection(protocol, ws, request)
        self.connections.append(connection)
        await self._notify()
        try:
            await connection._serve()
        finally:
            self.connections.remove(connection)
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


def client_settings(sim: SimServer) -> dict[str, str]:
    """The :class:`~kraken_proto.ClientConfig` fields that point a client at ``sim``.

    ``endpoint``, ``auth_endpoint``, ``level3_endpoint``, ``rest_url`` (the base URL: the
    token request adds its path) and the simulator's test ``api_key`` and ``api_secret``.
    A server bound to every interface (``0.0.0.0``, ``::``) is given by its loopback address.
    """
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
    settings = client_settings(sim)
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


def serve(host: str, port: int, seed: int, *, allow_remote: bool = False) -> None:
    """Run the simulator until Ctrl-C (the ``kraken-ws serve`` command).

    Prints :func:`connection_text` once it listens.
    """

    async def main() -> None:
        async with run_simulator(host, port, seed=seed, allow_remote=allow_remote) as sim:
            print(connection_text(sim, seed), flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
