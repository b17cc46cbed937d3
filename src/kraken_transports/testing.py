"""The drivers' surface in memory: test a strategy unchanged, on a fake clock.

:class:`MemoryClient` is a client like ``ThreadedClient`` and ``SocketClient`` (the same
:class:`~kraken_transports.driver.Driver` underneath, so the same methods, callbacks,
buffer, errors and default timeouts), whose IO is an in-memory network of
:mod:`kraken_proto.testing` and whose clock is that network's fake clock. A call that waits
(``subscribe``, ``add_order``, ``wait_until``, ``get``, ``events``) moves the fake clock
instead of sleeping: its timeout counts fake seconds, so a minute of market runs in a
fraction of a second and every run with the same seed is the same. No sockets, no threads,
no real time. :class:`MemoryAsyncClient` is its twin with ``AsyncClient``'s methods, for
code written for ``connect()``.

:class:`SimulatedKraken` and :class:`RecordedKraken` are the networks of
:mod:`kraken_proto.testing` with :meth:`~KitClients.client` and
:meth:`~KitClients.async_client`, which make such clients::

    kraken = SimulatedKraken(seed=7, symbols=["BTC/USD"])
    with kraken.client() as market, kraken.client(private=True) as trading:
        market.subscribe("book", "BTC/USD", depth=10)   # returns once acked (fake time)
        trading.add_order(order_type="market", side="buy", symbol="BTC/USD",
                          order_qty=Decimal("0.001"))
        kraken.advance(60.0)                            # a minute of market, callbacks run

The pytest plugin (the ``kraken_pytest`` package) hands these networks out as fixtures.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kraken_proto.actions import CloseConnection, FetchToken
from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.errors import AuthenticationError, WaitTimeoutError
from kraken_proto.events import Event
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.state import ConnectionState
from kraken_proto.testing import (
    DEFAULT_WAIT,
    FakeClock,
    InMemoryKraken,
    Peer,
    ProtocolClient,
    Socket,
    deterministic_config,
)
from kraken_proto.testing import RecordedKraken as _RecordedKraken
from kraken_proto.testing import SimulatedKraken as _SimulatedKraken
from kraken_transports.awaitable import AwaitableClient
from kraken_transports.base import Deadline
from kraken_transports.blocking import BlockingClient
from kraken_transports.client import ClientBase, ClientOptions
from kraken_transports.driver import Driver, Waiter

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_WAIT",
    "FakeClock",
    "KitClients",
    "MemoryAsyncClient",
    "MemoryClient",
    "ProtocolClient",
    "RecordedKraken",
    "SimulatedKraken",
    "deterministic_config",
]

T = TypeVar("T")

_SLICE = 60.0  # fake seconds a wait without a timeout moves the clock at most per step


class _DriverPeer(Peer):
    """A :class:`~kraken_transports.driver.Driver` on the network: its IO and its peer."""

    def __init__(self, network: InMemoryKraken, driver: Driver, client: _InMemory) -> None:
        super().__init__(network, driver.proto.host.value)
        self.driver = driver
        self.client = client

    # ------------------------------------------------------------------ DriverIO

    def open(self, url: str, now: float) -> None:
        """Open a socket in memory."""
        self.network.open(self)

    def send(self, text: str) -> bool:
        """Queue ``text`` on the socket; False without one."""
        socket: Socket | None = self.socket
        return socket is not None and socket.send(text)

    def close(self, action: CloseConnection, now: float) -> None:
        """Close the socket (the server forgets it)."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def fetch_token(self, action: FetchToken) -> None:
        """Ask the network for the token."""
        self.network.fetch_token(self, action)

    def performed(self) -> None:
        """Nothing to re-arm: the network reads every deadline before each step."""

    # ------------------------------------------------------------------ Peer

    def next_deadline(self) -> float | None:
        """The protocol's next deadline."""
        return self.driver.proto.next_deadline()

    def timer(self, now: float) -> None:
        """Fire the driver's timers."""
        self.driver.timer(now)

    def opened(self, now: float) -> None:
        """The socket opened."""
        self.driver.connected(now)

    def message(self, text: str, now: float) -> None:
        """One frame arrived."""
        self.driver.received(text, now)

    def lost(self, now: float, close_code: int) -> None:
        """The server closed or dropped the socket."""
        self.socket = None
        self.driver.lost(now, None, close_code)

    def token(self, action: FetchToken, answer: str | AuthenticationError, now: float) -> None:
        """The token request was answered."""
        self.driver.token_answered(action, answer, now)


def _join(
    network: InMemoryKraken, driver: Driver, config: ClientConfig, client: _InMemory
) -> _DriverPeer:
    """Put ``driver`` on ``network`` (in replay mode on a capture); its peer."""
    if isinstance(network, _RecordedKraken):
        host = driver.proto.host.value
        driver.proto = KrakenProtocol(
            config, private=host == "auth", level3=host == "level3", replay=True
        )
    peer = _DriverPeer(network, driver, client)
    driver.io = peer
    if driver.latency is not None:
        driver._wall_clock = network.wall_time  # the fake clock's wall time, not time.time
    driver.router.on(None, peer.events.append)
    network.add(peer)
    return peer


class _InMemory(ClientBase):
    """What both in-memory clients share: their network, its fake clock, and what the
    client's peer recorded."""

    def __init__(
        self,
        network: InMemoryKraken,
        config: ClientConfig | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._network = network
        config = deterministic_config() if config is None else config
        super().__init__(config, **options)
        self._peer = _join(network, self._driver, config, self)

    def _attach_io(self, ssl_context: ssl.SSLContext | None) -> None:
        """The IO is attached once the driver exists (in ``__init__``)."""

    def _now(self) -> float:
        return self._network.clock.now

    @property
    def network(self) -> InMemoryKraken:
        """The network this client is on."""
        return self._network

    @property
    def history(self) -> list[Event]:
        """Every event this client produced, in order (read or not)."""
        return self._peer.events

    @property
    def peer(self) -> Peer:
        """This client on the network: its frames (:meth:`Peer.capture`,
        :meth:`Peer.requests`) and :meth:`Peer.book_at`."""
        return self._peer

    def of(self, kind: type[T]) -> list[T]:
        """The events of one type in :attr:`history`, in order."""
        return self._peer.of(kind)

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """The requests this client sent, decoded (those of ``method`` only, if given)."""
        return self._peer.requests(method)

    def book_at(self, symbol: str, t: float) -> OrderBook | None:
        """``symbol``'s book as this client held it at fake time ``t`` (see
        :meth:`~kraken_proto.testing.Peer.book_at`)."""
        return self._peer.book_at(symbol, t)

    @property
    def running(self) -> bool:
        """True from ``start()`` until the client is closed."""
        state = self._driver.proto.state
        return state not in (ConnectionState.DISCONNECTED, ConnectionState.CLOSED)

    def _starting(self) -> bool:
        """Start connecting unless started (a closed client starts again); whether it did."""
        if self._driver.proto.state in (ConnectionState.DISCONNECTED, ConnectionState.CLOSED):
            self._driver.connect(self._now())
            return True
        return False

    def _step(self, timeout: float | None) -> None:
        """Run the network one step, up to ``timeout`` fake seconds (``None``: a slice)."""
        network = self._network
        if network.next_deadline() is None:
            raise WaitTimeoutError(
                "nothing is scheduled on the in-memory network: this wait would never end",
                state=self._driver.proto.state.value,
            )
        network.step(network.clock.now + (_SLICE if timeout is None else timeout))


class MemoryClient(_InMemory, BlockingClient):
    """A client of an in-memory network (see the module docstring); make it with
    ``network.client(...)`` or pass the network here.

    The arguments of every client (:class:`~kraken_transports.client.ClientBase`; the
    config defaults to :func:`~kraken_proto.testing.deterministic_config`, and
    ``ssl_context`` is ignored: there is no TLS in memory). Every call answers as in the
    other blocking drivers (``docs/drivers.md``), with waits counted in fake seconds. On a
    :class:`RecordedKraken` the protocol runs in replay mode. Everything the client
    received is also in :attr:`history` (all events, in order, whatever was read).
    """

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start connecting (in memory: done as the clock moves); a no-op if started. A
        closed client starts again and resubscribes what was subscribed."""
        if self._starting():
            self._settle()

    def close(self, timeout: float = 1.0) -> None:
        """Close now; idempotent. Pending waits fail with ``KrakenConnectionError``; queued
        events stay readable. (``timeout`` is accepted for the drivers' signature.)"""
        self._driver.close(self._now())
        self._settle()

    def __enter__(self) -> MemoryClient:
        """Start the client and return it."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    def poll(self) -> Event | None:
        """The next queued event, or ``None`` (non-blocking; the clock does not move)."""
        return self._driver.router.buffer.pop(self._now())

    def _settle(self) -> None:
        if not self._network.busy:
            self._network.settle()

    # ------------------------------------------------------------------ BlockingClient

    def _run(self, fn: Callable[[], T], what: str, deadline: Deadline) -> T:
        result = fn()
        self._settle()
        return result

    def _pause(self, timeout: float | None) -> None:
        self._step(timeout)

    def _in_callback(self) -> bool:
        return self._network.busy > 0

    def _ended(self) -> bool:
        return self._driver.proto.state is ConnectionState.CLOSED


class MemoryAsyncClient(_InMemory, AwaitableClient):
    """The asyncio twin of :class:`MemoryClient`: the methods of ``AsyncClient``
    (``await client.subscribe(...)``, ``async for event in client``, ``async with``), for
    code written for ``connect()``. Make it with ``network.async_client(...)``.

    A wait runs the network one step at a time, yielding to the event loop between steps
    (your other tasks run), with its timeout in fake seconds; iteration runs the network
    until an event is buffered and ends once the client is closed and drained.
    """

    async def start(self) -> None:
        """Start connecting; a no-op if started (a closed client starts again)."""
        if self._starting():
            self._network.settle()

    async def close(self, timeout: float = 1.0) -> None:
        """Close now; idempotent (``timeout`` is accepted for ``AsyncClient``'s signature)."""
        self._driver.close(self._now())
        self._network.settle()

    async def __aenter__(self) -> MemoryAsyncClient:
        """Start the client and return it."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client."""
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        """Iterate over the events (see :meth:`events`)."""
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """The buffered events in order; ends once the client is closed and drained. Runs
        the network while the buffer is empty. Needs a started client."""
        driver = self._driver
        driver.check_buffered()
        if driver.proto.state is ConnectionState.DISCONNECTED:
            raise driver.not_started("events()")
        buffer = driver.router.buffer
        while True:
            event = buffer.pop(self._now())
            if event is not None:
                yield event
                continue
            if driver.proto.state is ConnectionState.CLOSED:
                return
            self._step(None)
            await asyncio.sleep(0)

    async def _wait(self, waiter: Waiter[T], timeout: float | None) -> T:
        """Run the network until ``waiter`` is settled, yielding to the event loop after
        each step; past ``timeout`` fake seconds raise its timeout error."""
        self._network.settle()
        deadline = Deadline(timeout, self._now)
        while not waiter.done:
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise self._driver.expired(waiter, timeout)
            self._step(remaining)
            await asyncio.sleep(0)
        return waiter.result()


class KitClients:
    """What the networks of this module add to those of :mod:`kraken_proto.testing`."""

    def async_client(
        self, config: ClientConfig | None = None, **options: Unpack[ClientOptions]
    ) -> MemoryAsyncClient:
        """A :class:`MemoryAsyncClient` on this network, not started (``async with``
        starts it, as with ``connect()``)."""
        return MemoryAsyncClient(self, config, **options)  # type: ignore[arg-type]

    def client(
        self,
        config: ClientConfig | None = None,
        *,
        start: bool = True,
        **options: Unpack[ClientOptions],
    ) -> MemoryClient:
        """A :class:`MemoryClient` on this network (started unless ``start=False``)."""
        client = MemoryClient(self, config, **options)  # type: ignore[arg-type]
        if start:
            client.start()
        return client


class SimulatedKraken(KitClients, _SimulatedKraken):
    """:class:`kraken_proto.testing.SimulatedKraken` with :meth:`~KitClients.client`."""


class RecordedKraken(KitClients, _RecordedKraken):
    """:class:`kraken_proto.testing.RecordedKraken` with :meth:`~KitClients.client`."""
