"""What every client is built from: one constructor and the queries, on a shared driver.

:class:`ClientBase` takes the arguments every client takes (the same names, defaults and
checks in all three), builds the client's :class:`~kraken_transports.driver.Driver` and asks
the client to attach its IO (:meth:`ClientBase._attach_io`). It answers the queries
(``state``, ``subscriptions``, ``stats``, ``book``, ``on``, ...) from the driver, under the
client's lock (``_lock``: only the threaded client, whose IO runs on another thread, has a
real one). The calls are :class:`~kraken_transports.blocking.BlockingClient` (socket and
threaded clients) and :class:`~kraken_transports.awaitable.AwaitableClient` (asyncio).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from kraken_proto.analytics.latency import LatencyReport
from kraken_proto.book import OrderBook
from kraken_proto.config import ClientConfig
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import BookLevel
from kraken_proto.level3 import L3Book
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.ratecounter import RateCounterState
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionsView
from kraken_transports.driver import Driver, DriverSnapshot, FrameHook
from kraken_transports.router import ClientStats

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kraken_transports.metrics import ClientMetrics

__all__ = ["ClientBase", "ClientOptions"]

E = TypeVar("E")
_SNAPSHOT_TRIES = 3


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of every client (see :class:`ClientBase`)."""

    private: bool
    level3: bool
    buffer_events: bool
    ssl_context: ssl.SSLContext | None
    frame_hook: FrameHook | None


class ClientBase:
    """The constructor and the queries every client answers the same way.

    ``config`` defaults to ``ClientConfig()`` (the public endpoint). ``private=True``
    connects to the auth host (executions, balances, trading), ``level3=True`` to the level3
    host; both need ``api_key``/``api_secret`` in ``config`` (else ``LocalProtocolError``).
    ``buffer_events=False`` makes a callback-only client (nothing is buffered for
    iteration). ``ssl_context`` replaces the default verifying TLS context (a private CA),
    for the WebSocket and the token request. ``frame_hook(direction, text, now)`` is called
    for every message received (``"in"``, before the protocol sees it) and sent (``"out"``),
    with the client's clock; the WebSocket token is shown as ``***`` and its exceptions are
    logged and ignored.
    """

    _lock: AbstractContextManager[Any] = nullcontext()

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        private: bool = False,
        level3: bool = False,
        buffer_events: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        frame_hook: FrameHook | None = None,
    ) -> None:
        self._driver = Driver(
            config,
            private=private,
            level3=level3,
            buffer_events=buffer_events,
            frame_hook=frame_hook,
            clock=self._now,
            wall_clock=time.time,
        )
        self._attach_io(ssl_context)

    def _attach_io(self, ssl_context: ssl.SSLContext | None) -> None:  # pragma: no cover
        """Create the client's IO (which sets ``self._driver.io``)."""
        raise NotImplementedError

    def _now(self) -> float:  # pragma: no cover - every client overrides it
        """The client's monotonic clock (the ``now`` its protocol calls get)."""
        raise NotImplementedError

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._driver.config

    @property
    def protocol(self) -> KrakenProtocol:
        """The sans-IO protocol object this client performs IO for."""
        return self._driver.proto

    @property
    def state(self) -> ConnectionState:
        """The connection state (see :class:`~kraken_proto.ConnectionState`)."""
        return self._driver.proto.state

    @property
    def subscriptions(self) -> SubscriptionsView:
        """Every subscription, grouped as active, pending, failed and unsubscribing."""
        with self._lock:
            return self._driver.proto.subscriptions

    @property
    def stats(self) -> ClientStats:
        """Counters: events received/delivered/dropped/coalesced/queued, frames, reconnects,
        callback errors. ``received == delivered + dropped + coalesced + queued`` holds for
        every value returned."""
        with self._lock:
            return self._driver.router.stats()

    @property
    def latency(self) -> LatencyReport:
        """Per-channel latencies so far, a frozen snapshot (``ClientConfig(latency=True)``).

        For each channel (``book``, ``ticker``, ``trade``, ...): ``exchange``, Kraken's
        timestamp to receipt, corrected by the clock offset estimated from ping round trips
        (``clock``; the machine's UTC clock until the first pong, ``ping_interval`` after
        connecting); and ``delivery``, receipt to delivery: when iteration returns the
        event (``async for``, ``events()``, ``get()``, ``poll()``), or when its callbacks
        are called in a client with ``buffer_events=False``. Percentiles in seconds; under
        load a weighted sample is measured (``latency_sample_rate``). Raises
        ``LocalProtocolError`` when latency tracking is off.
        """
        tracker = self._driver.latency
        if tracker is None:
            raise LocalProtocolError(
                "latency tracking is off: create the client with ClientConfig(latency=True)"
            )
        with self._lock:
            tracker = tracker.copy()
        return tracker.report()

    def metrics(
        self,
        registry: CollectorRegistry | None = None,
        *,
        symbol_labels: bool = False,
        max_symbols: int = 20,
    ) -> ClientMetrics:
        """Export this client's metrics to Prometheus through ``registry`` (default:
        ``prometheus_client.REGISTRY``); needs the extra: ``pip install
        "kraken-ws-sdk[metrics]"`` (``ImportError`` naming it otherwise).

        The metrics (``docs/metrics.md``) are read from the client's own counts at each
        scrape and agree with ``stats``; they carry the label ``endpoint`` (this client's
        URL), so several clients of different endpoints share a registry (``ValueError``
        for a second client of the same one). Registering turns on message counting
        (``ClientConfig(count_messages=True)``), and in a client with
        ``buffer_events=False`` the count of events handed to the callbacks, from now on:
        register before :meth:`start` to count from the first message.
        ``symbol_labels=True`` adds
        per-symbol counts of the market data entries for the first ``max_symbols`` symbols
        seen, and a count of the entries of the others. Returns the registration:
        ``unregister()`` it (or use it as a context manager) to remove the metrics.
        """
        from kraken_transports.metrics import register_client  # noqa: PLC0415 - the extra

        return register_client(self, registry, symbol_labels=symbol_labels, max_symbols=max_symbols)

    def _start_counting(self, max_symbols: int) -> None:
        """Turn on what is counted only for :meth:`metrics`: the protocol's messages, and
        without a buffer the events handed to the callbacks by type."""
        with self._lock:
            self._driver.proto.count_messages(max_symbols=max_symbols)
            self._driver.router.count_handed()

    def _snapshot(self) -> DriverSnapshot:
        """Every count at one moment (for :meth:`metrics`), under the lock. A client without
        one (asyncio, sockets) is read as it runs when asked from another thread: a
        container that changed size meanwhile is read again."""
        with self._lock:
            for attempt in range(_SNAPSHOT_TRIES):
                try:
                    return self._driver.snapshot()
                except RuntimeError:  # e.g. "dictionary changed size during iteration"
                    if attempt == _SNAPSHOT_TRIES - 1:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def pending_requests(self) -> int:
        """Trading requests submitted and not settled yet (private connections)."""
        with self._lock:
            return self._driver.proto.pending_requests

    def book(self, symbol: str) -> OrderBook | None:
        """The maintained, checksum-verified L2 book of ``symbol`` (``None`` if not subscribed).

        Its query methods raise :class:`~kraken_proto.BookNotLiveError` while the book is
        awaiting a snapshot, resyncing or failed; check ``is_live`` first. It is updated in
        place by the client's IO: in the threaded client read it inside callbacks (which run
        on the IO thread) or use :meth:`book_snapshot`.
        """
        return self._driver.proto.book(symbol)

    def book_snapshot(
        self, symbol: str, depth: int | None = None
    ) -> tuple[list[BookLevel], list[BookLevel]] | None:
        """``(bids, asks)`` of ``symbol``, best first, copied consistently (under the lock).

        ``None`` if the symbol is not subscribed; raises
        :class:`~kraken_proto.BookNotLiveError` while the book is not live (awaiting its
        snapshot, resyncing, failed). ``depth`` limits the levels per side.
        """
        with self._lock:
            book = self._driver.proto.book(symbol)
            if book is None:
                return None
            return book.bids(depth), book.asks(depth)

    def l3_book(self, symbol: str) -> L3Book | None:
        """The maintained, checksum-verified level3 book of ``symbol`` (``level3=True``
        clients; ``None`` if not subscribed). Check ``is_live`` before reading it."""
        return self._driver.proto.l3_book(symbol)

    def rate_counter(self, symbol: str) -> RateCounterState:
        """The trading rate counter of ``symbol`` as this client tracks it, now."""
        with self._lock:
            return self._driver.proto.rate_counter(symbol, self._now())

    def on(self, event_type: type[E] | None, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type`` (``None``: all events).

        Callbacks run in the client's IO context (the event loop, the thread calling
        ``step()``, the threaded client's IO thread) as events are produced, before
        backpressure applies, so they see every event and the book exactly as that event
        left it; several per type run in registration order. An exception in a callback is
        counted in ``stats.callback_errors``, never propagated; the first one of each
        callback is logged with its traceback, then only its 2nd, 4th, 8th, ... as a count
        (logger ``kraken_transports.callbacks``). Returns a function that removes the
        registration (safe from any thread).
        """
        return self._driver.router.on(event_type, callback)
