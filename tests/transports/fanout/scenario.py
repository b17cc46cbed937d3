"""A publisher fed by a client of the simulator, and what both sides saw: the building
block of the fan-out integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from engines import WAIT

from kraken_proto.events import BookLevel, BookResync, BookUpdate, Event, Ticker, Trade
from kraken_transports.aio import AsyncClient, connect
from kraken_transports.fanout import (
    EngineSettings,
    Publisher,
    Reader,
    StreamGap,
    open_sink,
    open_source,
)
from kraken_transports.simserver import SimServer, run_simulator

Levels = tuple[list[BookLevel], list[BookLevel]]


def key(event: Any) -> tuple[Any, ...]:
    """What identifies an event across the engine (its type, symbol and content)."""
    if type(event) is BookUpdate:
        return ("book", event.symbol, event.checksum, event.bids, event.asks, event.snapshot)
    if type(event) is Trade:
        return ("trade", event.symbol, event.trade_id)
    if type(event) is Ticker:
        return ("ticker", event.symbol, event.timestamp, event.last, event.bid, event.ask)
    return (type(event).__name__,)


@dataclass
class Seen:
    """What the publisher's client delivered: the events and, after each book event, its
    driver's book (as that event left it)."""

    events: list[Any] = field(default_factory=list)
    books: dict[tuple[str, int], list[Levels]] = field(default_factory=dict)

    def on_event(self, client: AsyncClient, event: Event) -> None:
        if type(event) in (BookUpdate, Ticker, Trade):
            self.events.append(event)
        if type(event) is BookUpdate:
            book = client.book(event.symbol)
            assert book is not None and book.is_live
            levels = (book.bids(), book.asks())
            self.books.setdefault((event.symbol, event.checksum), []).append(levels)


@asynccontextmanager
async def simulator(tick_rate: float = 200.0, seed: int = 3) -> AsyncIterator[SimServer]:
    """The simulator on loopback, fast."""
    async with run_simulator(seed=seed, tick_rate=tick_rate) as sim:
        yield sim


@asynccontextmanager
async def publishing(
    sim: SimServer,
    url: str,
    symbols: Sequence[str],
    channels: Sequence[str] = ("book", "trade"),
    *,
    settings: EngineSettings | None = None,
    seen: Seen | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Publisher, Seen, AsyncClient]]:
    """A client of ``sim`` publishing ``channels`` of ``symbols`` to ``url`` (what it
    delivered recorded in ``seen``, or a new :class:`Seen`)."""
    client = connect(sim.client_config(), buffer_events=False)
    publisher = Publisher(open_sink(url, settings), **options)
    seen = seen or Seen()
    await asyncio.wait_for(publisher.start(), WAIT)
    publisher.attach(client)
    client.on(None, lambda event: seen.on_event(client, event))
    try:
        async with client:
            for channel in channels:
                params = {"depth": 10} if channel == "book" else {}
                await asyncio.wait_for(client.subscribe(channel, list(symbols), **params), WAIT)
            yield publisher, seen, client
    finally:
        await publisher.close()


def reader(
    url: str,
    symbols: Sequence[str],
    channels: Sequence[str] = ("book", "trade"),
    settings: EngineSettings | None = None,
) -> Reader:
    """A reader of ``channels`` x ``symbols`` at ``url``."""
    streams = [(channel, symbol) for channel in channels for symbol in symbols]
    return Reader(open_source(url, settings), streams, read_timeout=0.1)


async def collect(
    reader_: Reader,
    count: int,
    *,
    check: Callable[[Any], object] | None = None,
    stop: Callable[[], bool] | None = None,
    timeout: float = WAIT,
) -> list[Any]:
    """The next ``count`` market events of ``reader_``, or fewer once ``stop()`` holds;
    ``check(event)`` is called on every event, market or not."""
    got: list[Any] = []

    async def loop() -> None:
        async for event in reader_:
            if check is not None:
                check(event)
            if type(event) in (BookUpdate, Ticker, Trade, StreamGap):
                got.append(event)
            if len(got) >= count or (stop is not None and stop()):
                return

    await asyncio.wait_for(loop(), timeout)
    return got


class Verified:
    """Checks every event a reader yields: each ``BookUpdate`` leaves the reader's book
    live with the event's checksum and, when ``seen`` is given, equal to the publisher's
    driver's book at that checksum; collects the ``BookResync`` events."""

    def __init__(self, reader_: Reader, seen: Seen | None = None) -> None:
        self.reader = reader_
        self.seen = seen
        self.resyncs: list[BookResync] = []
        self.books = 0

    def __call__(self, event: Any) -> None:
        if type(event) is BookResync:
            self.resyncs.append(event)
        if type(event) is not BookUpdate:
            return
        book = self.reader.book(event.symbol)
        assert book is not None and book.is_live, event
        assert book.checksum() == event.checksum
        if self.seen is not None:
            assert (book.bids(), book.asks()) in self.seen.books[(event.symbol, event.checksum)]
        self.books += 1
