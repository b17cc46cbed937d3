"""The fan-out against real engines (redis-server, nats-server -js), fed by the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from engines import WAIT, Server, until
from scenario import collect, key, publishing, reader, simulator

from kraken_proto.events import BookResync, BookUpdate
from kraken_transports.fanout import EngineSettings, StreamId, open_source
from kraken_transports.fanout.encoding import decode_record
from kraken_transports.fanout.engine import START


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 4 * WAIT))


async def stored_seqs(url: str, stream: StreamId, settings: EngineSettings) -> list[int]:
    """Every sequence number the engine holds for ``stream``, in stored order."""
    source = open_source(url, settings)
    await source.open()
    try:
        await source.seek(stream, START)
        seqs: list[int] = []
        while batch := await source.read(0.3):
            seqs.extend(decode_record(data).seq for _, data in batch)
        return seqs
    finally:
        await source.close()


def per_stream(events: list[Any]) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """Each stream's events (snapshots left out), identified by :func:`key`."""
    streams: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for event in events:
        if not (type(event) is BookUpdate and event.snapshot):
            streams.setdefault(key(event)[:2], []).append(key(event))
    return streams


def assert_same_streams(published: list[Any], received: list[Any]) -> None:
    """Every stream read is a contiguous run of the same stream as published."""
    sent = per_stream(published)
    for name, got in per_stream(received).items():
        start = sent[name].index(got[0])
        assert got == sent[name][start : start + len(got)], name


def test_every_event_once_in_order_books_equal(
    engine: Server, request: pytest.FixtureRequest
) -> None:
    settings = EngineSettings(prefix=f"t{abs(hash(request.node.name)) % 10**8}")
    symbols = ["BTC/USD", "ETH/USD"]

    async def main() -> None:
        async with simulator() as sim:
            follow = reader(engine.url, symbols, settings=settings)
            await follow.open()
            async with publishing(
                sim, engine.url, symbols, settings=settings, snapshot_every=20
            ) as (publisher, seen, _client):
                books_checked = 0

                def check(event: Any) -> None:
                    nonlocal books_checked
                    assert type(event) is not BookResync, event
                    if type(event) is BookUpdate:
                        book = follow.book(event.symbol)
                        assert book is not None and book.is_live
                        assert book.checksum() == event.checksum
                        expected = seen.books[(event.symbol, event.checksum)]
                        assert (book.bids(), book.asks()) in expected
                        books_checked += 1

                got = await collect(follow, 200, check=check)
                await until(lambda: publisher.stats.queued == 0, "the queue to drain")
            await follow.close()
        # Stream by stream, the reader saw the publisher's events in order, once each (a
        # snapshot record shows as one more BookUpdate(snapshot=True), left out here).
        assert_same_streams(seen.events, got)
        assert books_checked > 60
        stats = publisher.stats
        assert stats.dropped == 0 and stats.duplicates == 0 and stats.mismatches == 0
        assert follow.stats.gaps == 0 and follow.stats.mismatches == 0
        for symbol in symbols:
            for channel in ("book", "trade"):
                seqs = await stored_seqs(engine.url, StreamId(channel, symbol), settings)
                assert seqs == list(range(1, len(seqs) + 1)), (channel, symbol)
                assert seqs

    run(main())
