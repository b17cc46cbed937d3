"""kraken_transports: drivers that perform the IO for :mod:`kraken_proto`.

- :func:`connect` / :class:`AsyncClient`: asyncio over aiohttp.
- :class:`SocketClient`: a non-blocking socket with wsproto framing, for your own loop
  (``fileno()``, ``step()``) or a blocking ``run()``.
- :class:`ThreadedClient`: a background thread running the asyncio IO, for blocking scripts.
- :func:`run_simulator`: the fake Kraken exchange on a loopback port, for tests and demos;
  :class:`SimulatorThread` serves it from a thread of its own, for blocking code.

The three take the same arguments and answer every call the same way, with the same
errors: what happens between the protocol and the user (callbacks, the bounded buffer,
statistics, waits, errors) is one IO-free layer, :class:`kraken_transports.driver.Driver`,
and each driver only does its IO. Reconnects, resubscribes, staleness, backoff, pacing and
book resyncs all come from the core. Every wait (subscribe, trading calls, ``wait_until``)
gives up after :data:`DEFAULT_TIMEOUT` seconds unless given ``timeout=``, with a
:class:`~kraken_proto.errors.WaitTimeoutError` that names the last connection failure;
connection failures are logged at WARNING on ``kraken_transports.connection``. The shared
surface, call by call: ``docs/drivers.md``.

Each takes ``private=True`` (the auth host: executions, balances and trading through
``submit``, ``add_order``, ``cancel_order``, ...) or ``level3=True`` (the level3 host), with
``api_key``/``api_secret`` in the configuration (``ClientConfig.from_env()``); the WebSocket
token is fetched by the driver (:mod:`kraken_transports.tokens`) on every connection.
"""

from kraken_transports.aio import AsyncClient, FrameHook, connect
from kraken_transports.base import DEFAULT_TIMEOUT
from kraken_transports.router import ClientStats
from kraken_transports.simserver import (
    SimConnection,
    SimServer,
    SimulatorThread,
    run_simulator,
    serve,
)
from kraken_transports.sockets import SocketClient
from kraken_transports.threaded import ThreadedClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "ClientStats",
    "FrameHook",
    "SimConnection",
    "SimServer",
    "SimulatorThread",
    "SocketClient",
    "ThreadedClient",
    "connect",
    "run_simulator",
    "serve",
]
