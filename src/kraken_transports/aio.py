"""The asyncio driver: :class:`KrakenProtocol` over an aiohttp WebSocket.

Usage: ``async with connect(ClientConfig()) as client:``, then ``await
client.subscribe("book", ["BTC/USD"], depth=10)`` and ``async for event in client: ...``.

The shared :class:`~kraken_transports.driver.Driver` does everything between the protocol
and the user (callbacks, the buffer, waits, errors); the awaitable calls are
:class:`~kraken_transports.awaitable.AwaitableClient`'s, and the aiohttp IO is
:class:`~kraken_transports.aiohttp_io.AioTransport` (re-exported here), which
:class:`~kraken_transports.threaded.ThreadedClient` runs too. What is left here is the
asyncio client's own: its life, a task on the caller's event loop running
:meth:`AioTransport.run` (once the protocol is ``CLOSED``, the sockets and the session close
within a bounded time), and iteration, which ends once the buffer is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from kraken_proto.config import ClientConfig
from kraken_proto.events import Event
from kraken_proto.state import ConnectionState
from kraken_transports.aiohttp_io import AioTransport
from kraken_transports.awaitable import AwaitableClient
from kraken_transports.client import ClientOptions
from kraken_transports.driver import FrameHook

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AioTransport", "AsyncClient", "FrameHook", "connect"]

log = logging.getLogger(__name__)


def connect(config: ClientConfig | None = None, **options: Unpack[ClientOptions]) -> AsyncClient:
    """Create an :class:`AsyncClient` (the same arguments); use it as ``async with
    connect(config) as client:``. Entering starts connecting, leaving closes the client."""
    return AsyncClient(config, **options)


class AsyncClient(AwaitableClient):
    """An asyncio client of Kraken's v2 WebSocket API: one connection to one of its hosts.

    Create it with :func:`connect` (arguments: see
    :class:`~kraken_transports.client.ClientBase`). Events are consumed by iteration
    (``async for event in client``) and by callbacks (:meth:`on`), both at once;
    subscriptions are remembered and replayed after every reconnect, books are
    checksum-verified and resynced per symbol. Every call answers as in the other drivers
    (``docs/drivers.md``); a ``private=True`` client also trades (:meth:`submit`, ...).
    """

    def _attach_io(self, ssl_context: ssl.SSLContext | None) -> None:
        self._io = AioTransport(self._driver, ssl_context)
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return self._io.clock()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the client has closed and shut down."""
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start connecting in the background (a no-op if running); returns at once. A
        closed client starts again and resubscribes what was subscribed when it closed."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._io.begin(loop)
        # Connecting now, not in the task: a call right after start() sees the connection
        # coming up, never the CLOSED state of a previous run.
        self._driver.connect(self._io.clock())
        self._task = loop.create_task(self._io.run(), name="kraken-aio-client")

    async def close(self, timeout: float = 1.0) -> None:
        """Close the connection and stop the client within about ``timeout`` s; idempotent.
        Pending waits fail with ``KrakenConnectionError``; iteration drains the buffer."""
        self._driver.close(self._now())
        task = self._task
        if task is None or task.done():
            self._io.finish()
            return
        if task is asyncio.current_task():
            return  # called from inside the client's own task: it is ending already
        done, _ = await asyncio.wait({task}, timeout=timeout * 0.9)
        if not done:
            log.warning("client did not shut down within %.1f s; cancelling it", timeout)
            task.cancel()
            await asyncio.wait({task}, timeout=timeout * 0.1)

    async def __aenter__(self) -> AsyncClient:
        """Start the client (see :meth:`start`)."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client (see :meth:`close`)."""
        await self.close()

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> AsyncIterator[Event]:
        """Iterate over the events (see :meth:`events`)."""
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """The buffered events in order, ``Dropped`` summaries included. Ends after the
        client has closed and every buffered event was consumed; several iterators share
        one stream (each event goes to one of them). Needs a started client."""
        driver = self._driver
        driver.check_buffered()
        if driver.proto.state is ConnectionState.DISCONNECTED:
            raise driver.not_started("events()")
        io = self._io
        clock = io.clock
        buffer = driver.router.buffer
        take = buffer.take
        while True:
            event = take()  # the common case: no clock needed
            if event is not None:
                yield event
                continue
            event = buffer.pop(clock())
            if event is not None:
                yield event
                continue
            if io.done:
                return
            io.woken = False  # the next batch of actions wakes us
            readable = io.readable
            readable.clear()
            ready = buffer.next_ready(clock())
            if ready is None:
                await readable.wait()
            else:  # the delivery rate cap: try again when it allows
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(readable.wait(), max(0.0, ready - clock()))
