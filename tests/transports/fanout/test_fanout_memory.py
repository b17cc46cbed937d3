"""Publisher and reader over the in-process engine: backpressure and drops, engine
failures, sequencing across runs, late and lagging readers, and argument checks."""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import pytest
from books import SYMBOL, Market, level
from engines import WAIT, until

from kraken_proto.config import DropPolicy
from kraken_proto.events import BookResync, BookUpdate, Trade
from kraken_transports.fanout import (
    EngineSettings,
    MemoryEngine,
    MemorySink,
    MemorySource,
    Publisher,
    Reader,
    StreamId,
    open_sink,
    open_source,
)
from kraken_transports.fanout.encoding import decode_record

TRADES = StreamId("trade", SYMBOL)
BOOK = StreamId("book", SYMBOL)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, WAIT))


def trade(trade_id: int) -> Trade:
    return Trade(SYMBOL, "buy", Decimal("63000.1"), Decimal("0.5"), "market", trade_id, "t")


def seqs(engine: MemoryEngine, stream: StreamId) -> list[int]:
    return [seq for seq, _ in engine.streams.get(stream, ())]


async def take(reader: Reader, count: int) -> list[Any]:
    got: list[Any] = []

    async def loop() -> None:
        async for event in reader:
            got.append(event)
            if len(got) >= count:
                return

    await asyncio.wait_for(loop(), WAIT)
    return got


@pytest.mark.parametrize(
    ("policy", "kept"), [(DropPolicy.OLDEST, [1, 8, 9, 10]), (DropPolicy.LATEST, [1, 2, 3, 4])]
)
def test_a_full_queue_drops_by_policy_and_leaves_holes(policy: DropPolicy, kept: list[int]) -> None:
    async def main() -> None:
        engine = MemoryEngine()
        publisher = Publisher(MemorySink(engine), max_queue=3, drop_policy=policy)
        await publisher.start()
        engine.down = True  # the engine is unreachable: records pile up, then drop
        publisher.publish(trade(1))
        await until(lambda: publisher.stats.engine_errors >= 1, "a failed write")
        for trade_id in range(2, 11):  # 1 is being retried; 3 fit in the queue
            publisher.publish(trade(trade_id))
        assert publisher.stats.dropped == 6 and publisher.stats.queued == 3
        engine.down = False
        assert await publisher.flush()
        publisher.publish(trade(11))
        assert await publisher.flush()
        await publisher.close()
        # The numbers show the loss: the kept records keep their own, the next is 11.
        assert seqs(engine, TRADES) == [*kept, 11]
        stored = [decode_record(data) for _, data in engine.streams[TRADES]]
        assert {record.origin for record in stored} == {publisher.origin}
        stats = publisher.stats
        assert (stats.received, stats.records, stats.written, stats.duplicates) == (11, 11, 5, 0)

    run(main())


def test_a_dropped_book_record_and_an_engine_failure_bring_a_fresh_snapshot() -> None:
    async def main() -> None:
        engine = MemoryEngine()
        market = Market()
        publisher = Publisher(MemorySink(engine), max_queue=2, snapshot_every=1000)
        await publisher.start()

        def kinds() -> list[str]:
            return [decode_record(data).kind for _, data in engine.streams[BOOK]]

        publisher.publish(market.snapshot([level(600_000, 5)], [level(600_100, 5)]))
        assert await publisher.flush() and kinds() == ["snapshot"]
        # The engine fails while an update is written: once it is back, every book is
        # snapshotted again at its next update (the engine may have lost its data).
        engine.down = True
        publisher.publish(market.update([level(600_001, 1)], []))
        await until(lambda: publisher.stats.engine_errors >= 1, "a failed write")
        engine.down = False
        assert await publisher.flush()
        publisher.publish(market.update([level(600_002, 1)], []))
        assert await publisher.flush()
        assert kinds() == ["snapshot", "update", "update", "snapshot"]
        # A book record dropped from the full queue: the next update brings a snapshot.
        engine.down = True
        publisher.publish(market.update([level(600_003, 1)], []))
        await until(lambda: publisher.stats.engine_errors >= 2, "another failed write")
        publisher.publish(market.update([level(600_004, 1)], []))  # queued
        publisher.publish(market.update([level(600_005, 1)], []))  # queued
        publisher.publish(market.update([level(600_006, 1)], []))  # drops 600_004's
        publisher.publish(market.update([level(600_007, 1)], []))  # + a snapshot
        assert publisher.stats.dropped >= 2
        engine.down = False
        assert await publisher.flush()
        assert kinds()[-1] == "snapshot"
        numbers = seqs(engine, BOOK)
        assert numbers != list(range(1, len(numbers) + 1))  # the holes of the drops
        await publisher.close()

    run(main())


def test_a_new_run_numbers_on_and_a_retried_write_is_stored_once() -> None:
    async def main() -> None:
        engine = MemoryEngine()
        first = Publisher(MemorySink(engine))
        await first.start()
        for trade_id in range(1, 4):
            first.publish(trade(trade_id))
        await first.close()
        second = Publisher(MemorySink(engine))
        async with second:
            second.publish(trade(4))
            assert await second.flush()
            # A write repeated after a failure: the engine refuses what it holds.
            duplicates = await second.sink.write([])
            assert duplicates == 0
        assert seqs(engine, TRADES) == [1, 2, 3, 4]
        assert first.origin != second.origin
        sink = MemorySink(engine)
        record = engine.streams[TRADES][-1]
        from kraken_transports.fanout.engine import Stamped  # noqa: PLC0415

        again = Stamped(TRADES, record[0], "update", record[1])
        assert await sink.write([again]) == 1 and seqs(engine, TRADES) == [1, 2, 3, 4]

    run(main())


def test_abort_drops_what_is_queued_and_close_flushes() -> None:
    async def main() -> None:
        engine = MemoryEngine()
        publisher = Publisher(MemorySink(engine))
        await publisher.start()
        await publisher.start()  # started already: nothing happens
        engine.down = True
        publisher.publish(trade(1))
        await until(lambda: publisher.stats.engine_errors >= 1, "a failed write")
        await publisher.abort()
        assert publisher.stats.dropped == 0 or publisher.stats.queued == 0
        assert seqs(engine, TRADES) == []
        idle = Publisher(MemorySink(engine))
        assert await idle.flush()  # never started, nothing queued
        await idle.close()

    run(main())


def test_readers_follow_live_late_and_lagging() -> None:
    async def main() -> None:
        engine = MemoryEngine(maxlen=5)
        market = Market()
        publisher = Publisher(MemorySink(engine), snapshot_every=3)
        await publisher.start()
        live = Reader(MemorySource(engine), [("book", SYMBOL), ("trade", SYMBOL)])
        await live.open()
        assert live.streams == [BOOK, TRADES] and live.book(SYMBOL) is None
        assert live.book("ETH/USD") is None
        publisher.publish(market.snapshot([level(600_000, 5)], [level(600_100, 5)]))
        publisher.publish(trade(1))
        got = await take(live, 2)
        assert {type(e) for e in got} == {BookUpdate, Trade}
        # A reader that falls behind by more than the bound sees the gap, then the
        # latest snapshot.
        for qty in range(1, 20):
            publisher.publish(market.update([level(600_001, qty)], []))
        assert await publisher.flush()
        got = await take(live, 2)
        assert type(got[0]) is BookResync and "lost" in got[0].reason
        assert type(got[1]) is BookUpdate and got[1].snapshot
        book = live.book(SYMBOL)
        while book is None or book.checksum() != market.book.checksum():
            await take(live, 1)  # the updates after that snapshot
        assert (book.bids(), book.asks()) == market.levels()
        # A late reader starts from the latest snapshot.
        late = Reader(open_source("memory://late-test"), [("book", SYMBOL)])
        late_engine = late.source.engine  # type: ignore[attr-defined]
        late_engine.streams.update(engine.streams)
        late_engine.snapshots.update(engine.snapshots)
        first = await take(late, 1)
        assert type(first[0]) is BookUpdate and first[0].snapshot
        assert late.stats.resnapshots == 1
        await late.close()
        await live.close()
        assert [e async for e in live] == []  # closed: iteration ends
        await publisher.close()

    run(main())


def test_a_reader_skips_entries_that_are_no_records_and_retries_a_down_engine() -> None:
    async def main() -> None:
        engine = MemoryEngine()
        engine.streams[BOOK] = deque([(1, b"garbage")])
        reader = Reader(MemorySource(engine), [("book", SYMBOL)], read_timeout=0.05)
        await reader.open()
        engine.down = True
        task = asyncio.get_running_loop().create_task(take(reader, 1))
        await until(lambda: reader.stats.engine_errors >= 1, "a failed read")
        engine.down = False
        await until(lambda: reader.stats.bad_records == 1, "the garbage entry")
        market = Market()
        publisher = Publisher(MemorySink(engine))
        async with publisher:
            publisher.publish(market.snapshot([level(600_000, 5)], [level(600_100, 5)]))
        got = await task
        assert type(got[0]) is BookUpdate and got[0].snapshot
        await reader.close()

    run(main())


class SeekFailsOnce(MemorySource):
    """A source whose next ``seek`` of ``stream`` fails once when ``armed``."""

    def __init__(self, engine: MemoryEngine, stream: StreamId) -> None:
        super().__init__(engine)
        self.stream = stream
        self.armed = True

    async def seek(self, stream: StreamId, position: Any) -> None:
        if self.armed and stream == self.stream:
            self.armed = False
            raise ConnectionError("engine gone during a seek")
        await super().seek(stream, position)


@pytest.mark.parametrize("failing", [BOOK, TRADES])
def test_a_failed_seek_loses_no_snapshot(failing: StreamId) -> None:
    """The start (the book placed at its latest snapshot, then the trades at their end) is
    retried after a failed seek from where it failed: the snapshot is still yielded."""

    async def main() -> None:
        engine = MemoryEngine()
        market = Market()
        async with Publisher(MemorySink(engine), max_queue=2) as publisher:
            publisher.publish(market.snapshot([level(600_000, 5)], [level(600_100, 5)]))
            publisher.publish(trade(1))
        source = SeekFailsOnce(engine, failing)
        reader = Reader(source, [("book", SYMBOL), ("trade", SYMBOL)], read_timeout=0.05)
        await reader.open()
        got = await take(reader, 1)
        assert type(got[0]) is BookUpdate and got[0].snapshot
        assert not source.armed and reader.stats.engine_errors == 1
        assert reader.book(SYMBOL) is not None
        assert reader.book(SYMBOL).bids() == [level(600_000, 5)]
        assert reader.stats.duplicates == 0  # the retried start did not rewind the book
        # The trades were placed at their end: the next one published is the next read.
        async with Publisher(MemorySink(engine)) as publisher:
            publisher.publish(trade(2))
        (got_trade,) = await take(reader, 1)
        assert type(got_trade) is Trade and got_trade.trade_id == 2
        await reader.close()

    run(main())


def test_arguments_are_checked() -> None:
    sink = MemorySink(MemoryEngine())
    for name, value in (("max_queue", 0), ("batch_size", True)):
        with pytest.raises(ValueError, match=name):
            Publisher(sink, **{name: value})
    with pytest.raises(ValueError, match="drop_policy"):
        Publisher(sink, drop_policy="oldest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="write_timeout"):
        Publisher(sink, write_timeout=0)
    with pytest.raises(ValueError, match="streams must name"):
        Reader(MemorySource(MemoryEngine()), [])
    with pytest.raises(ValueError, match="read_timeout"):
        Reader(MemorySource(MemoryEngine()), [("trade", SYMBOL)], read_timeout=0)
    with pytest.raises(ValueError, match="channel must be one of"):
        Reader(MemorySource(MemoryEngine()), [("level3", SYMBOL)])
    for bad in (EngineSettings(prefix="a.b"), EngineSettings(prefix="")):
        with pytest.raises(ValueError, match="prefix"):
            bad.checked()
    with pytest.raises(ValueError, match="maxlen"):
        EngineSettings(maxlen=0).checked()
    with pytest.raises(ValueError, match="max_age"):
        EngineSettings(max_age=0).checked()
    for url in ("kafka://x", "localhost:6379", 5):
        with pytest.raises(ValueError, match="url must"):
            open_sink(url)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="url must"):
            open_source(url)  # type: ignore[arg-type]
    assert isinstance(open_sink("memory://x"), MemorySink)


@pytest.mark.parametrize(
    ("url", "extra"), [("redis://127.0.0.1:1/0", "redis"), ("nats://127.0.0.1:1", "nats")]
)
def test_a_missing_engine_package_names_its_extra(
    url: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"kraken_transports.fanout.{extra}_sink"
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, "redis.asyncio" if extra == "redis" else "nats", None)
    for opener in (open_sink, open_source):
        with pytest.raises(ImportError, match=rf'pip install "kraken-ws-sdk\[{extra}\]"'):
            opener(url)
