"""One blocking interface over the three drivers, for tests that run the same body on each.

:func:`open_client` returns the client itself for ``"sockets"`` and ``"threaded"``, and for
``"aio"`` an :class:`AioProxy`: the ``AsyncClient`` runs on an event loop in a thread of its
own, and every attribute read or call is made there (coroutines awaited), so
``client.subscribe(...)`` blocks the test exactly as it does with the blocking drivers.
:func:`until` waits for a condition, driving the socket client's loop meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kraken_proto import ClientConfig, Event
from kraken_transports import AsyncClient, SocketClient, ThreadedClient

KINDS = ("aio", "sockets", "threaded")
CALL_TIMEOUT = 60.0  # a ceiling for one proxied call: every call under test has its own


class AioProxy:
    """An :class:`AsyncClient` on its own event loop thread, called as if it blocked."""

    def __init__(self, config: ClientConfig, **options: Any) -> None:
        self.client = AsyncClient(config, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aio-proxy")
        self._thread.daemon = True
        self._thread.start()

    def on_loop(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn()`` on the client's loop (awaiting what it returns if awaitable)."""

        async def call() -> Any:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(call(), self._loop)

    def run(self, fn: Callable[[], Any]) -> Any:
        """:meth:`on_loop` and wait for the result."""
        return self.on_loop(fn).result(CALL_TIMEOUT)

    def __getattr__(self, name: str) -> Any:
        value = self.run(lambda: getattr(self.client, name))
        if not callable(value):
            return value
        return lambda *args, **kwargs: self.run(lambda: value(*args, **kwargs))

    def events(self, idle_timeout: float | None = None) -> Iterator[Event]:
        """The client's events, ending as the blocking drivers' do (``idle_timeout``)."""
        events = self.run(lambda: self.client.events().__aiter__())
        while True:
            try:
                yield self.run(lambda: asyncio.wait_for(events.__anext__(), idle_timeout))
            except (StopAsyncIteration, asyncio.TimeoutError, TimeoutError):
                return

    def __enter__(self) -> AioProxy:
        self.run(self.client.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(self.client.close)

    def shutdown(self) -> None:
        """Close the client and stop its loop."""
        if self._loop.is_closed():
            return
        self.run(self.client.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


Client = Any  # SocketClient | ThreadedClient | AioProxy: the same calls, all blocking


_PROXIES: list[AioProxy] = []


def open_client(kind: str, config: ClientConfig, **options: Any) -> Client:
    """A client of ``kind`` (one of :data:`KINDS`), not started."""
    if kind == "aio":
        proxy = AioProxy(config, **options)
        _PROXIES.append(proxy)
        return proxy
    if kind == "sockets":
        return SocketClient(config, **options)
    return ThreadedClient(config, **options)


def dispose(client: Client) -> None:
    """Close ``client`` (and the aio proxy's loop)."""
    if isinstance(client, AioProxy):
        client.shutdown()
    else:
        client.close()


def unwrap(client: Client) -> Any:
    """The client itself (the ``AsyncClient`` behind a proxy): what a callback, which runs in
    the client's IO context, must use."""
    return client.client if isinstance(client, AioProxy) else client


def shut_down_proxies() -> None:
    """Stop the event loops of every proxy made so far (after each test)."""
    while _PROXIES:
        _PROXIES.pop().shutdown()


def until(client: Client, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` (stepping a socket client meanwhile); fail after ``timeout``."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met; state {client.state}")
        if isinstance(client, SocketClient):
            client.step(0.01)
        else:
            time.sleep(0.005)


def read_until(client: Client, predicate: Callable[[], bool], idle_timeout: float = 10.0) -> int:
    """Read ``client.events()`` (as a user iterates) until ``predicate()`` holds after an
    event; the number of events read. Fails if the stream is idle for ``idle_timeout``."""
    for read, _ in enumerate(client.events(idle_timeout=idle_timeout), start=1):
        if predicate():
            return read
    raise AssertionError(f"no event for {idle_timeout} s; state {client.state}")
