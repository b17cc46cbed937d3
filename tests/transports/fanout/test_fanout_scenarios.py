"""The fan-out's hard cases against real engines: a late consumer, a consumer lagging past
the stream bound, a publisher killed and restarted, the engine restarted, two shards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import WAIT, Server, nats_binary, redis_binary, until
from scenario import Seen, Verified, collect, publishing, reader, simulator

from kraken_proto.events import BookResync, BookUpdate
from kraken_transports.fanout import EngineSettings, Reader, shard_of
from kraken_transports.fanout.encoding import StreamGap
from kraken_transports.fanout.nats_sink import NatsSource

SYMBOL = "BTC/USD"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 4 * WAIT))


def settings_for(request: pytest.FixtureRequest, **limits: Any) -> EngineSettings:
    """Stream names of this test's own (the engines are shared by the session)."""
    name = "".join(c for c in request.node.name if c.isalnum())[-40:]
    return EngineSettings(prefix=f"t{name}", **limits)


def test_a_late_consumer_starts_from_the_latest_snapshot(
    engine: Server, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(request)

    async def main() -> None:
        async with (
            simulator() as sim,
            publishing(sim, engine.url, [SYMBOL], settings=settings, snapshot_every=25) as (
                publisher,
                seen,
                _client,
            ),
        ):
            await until(lambda: publisher.stats.snapshots >= 3, "three snapshots")
            late = reader(engine.url, [SYMBOL], settings=settings)
            await late.open()
            check = Verified(late, seen)
            got = await collect(late, 60, check=check)
            await late.close()
        first = got[0]
        assert type(first) is BookUpdate and first.snapshot  # the book at once
        assert check.books == sum(type(e) is BookUpdate for e in got) and not check.resyncs
        assert late.stats.resnapshots == 1 and late.stats.gaps == 0

    run(main())


def test_a_consumer_lagging_past_the_bound_recovers_from_a_snapshot(
    engine: Server, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(request, maxlen=10)

    async def main() -> None:
        async with (
            simulator() as sim,
            publishing(
                sim, engine.url, [SYMBOL], ["book"], settings=settings, snapshot_every=15
            ) as (publisher, seen, _client),
        ):
            source = (
                NatsSource(engine.url, settings, max_pending=4) if engine.kind == "nats" else None
            )
            lagging = (
                Reader(source, [("book", SYMBOL)], read_timeout=0.1)
                if source is not None
                else reader(engine.url, [SYMBOL], ["book"], settings=settings)
            )
            await lagging.open()
            check = Verified(lagging, seen)
            await collect(lagging, 3, check=check)
            written = publisher.stats.written
            # The reader reads nothing while the stream moves far past its bound.
            await until(lambda: publisher.stats.written > written + 80, "80 more records")
            got = await collect(lagging, 30, check=check)
            await lagging.close()
        assert check.resyncs and "lost" in check.resyncs[0].reason
        assert lagging.stats.gaps >= 1 and lagging.stats.mismatches == 0
        after = got.index(next(e for e in got if type(e) is BookUpdate and e.snapshot))
        assert len(got) - after >= 10  # verified updates after the snapshot

    run(main())


def test_a_publisher_killed_and_restarted_mid_stream(
    engine: Server, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(request)

    async def main() -> None:
        async with simulator() as sim:
            follow = reader(engine.url, [SYMBOL], settings=settings)
            await follow.open()
            check = Verified(follow)
            async with publishing(sim, engine.url, [SYMBOL], settings=settings) as (
                first,
                _seen,
                _client,
            ):
                await collect(follow, 30, check=check)
                await first.abort()  # killed: whatever is queued is lost
            async with publishing(sim, engine.url, [SYMBOL], settings=settings) as (
                second,
                _seen,
                _client,
            ):
                await until(lambda: second.stats.written > 20, "the restarted publisher")
                # No fixed number of events covers the restart: the reader may still hold
                # (or not yet have read) records of the first run, and it hands out a read's
                # records stream by stream, so one stream's new run may fill any window
                # before the other's shows. Read on until both streams reported it.
                events: list[Any] = []

                def each(event: Any) -> None:
                    check(event)
                    events.append(event)

                def both_restarted() -> bool:
                    book = book_restart(events)
                    return (
                        book is not None
                        and any(type(e) is BookUpdate for e in events[book:])
                        and any(type(e) is StreamGap and "restarted" in e.reason for e in events)
                    )

                with contextlib.suppress(asyncio.TimeoutError):  # the asserts tell what lacked
                    await collect(follow, 10_000, check=each, stop=both_restarted)
            await follow.close()
        # The new run continued each stream's numbers: nothing written twice.
        assert second.stats.duplicates == 0
        # The book's restart was reported, then the book rebuilt from the new run's snapshot:
        # the next book event is that snapshot (verified by ``check``), no update before it.
        book = book_restart(events)
        assert book is not None, "no BookResync reported the restart"
        after = [e for e in events[book:] if type(e) is BookUpdate]
        assert after and after[0].snapshot, "the restarted book was not rebuilt from a snapshot"
        assert follow.follower("book", SYMBOL).origin == second.origin
        # The trade stream reported the restart too, and goes on with the new run.
        assert any(type(e) is StreamGap and "restarted" in e.reason for e in events)
        assert follow.follower("trade", SYMBOL).origin == second.origin
        assert follow.stats.mismatches == 0

    run(main())


def book_restart(events: list[Any]) -> int | None:
    """The index just after the first ``BookResync`` reporting a publisher restart."""
    for index, event in enumerate(events):
        if type(event) is BookResync and "restarted" in event.reason:
            return index + 1
    return None


@pytest.fixture(params=["redis", "nats"])
def own_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """An engine of this test's own, free to restart."""
    binary = redis_binary() if request.param == "redis" else nats_binary()
    if binary is None:
        pytest.skip(f"no {request.param} server binary installed")
    server = Server(request.param, binary, tmp_path / request.param).start()
    yield server
    server.stop()


def test_the_engine_restarted(own_engine: Server) -> None:
    settings = EngineSettings(prefix="restart")
    redis = own_engine.kind == "redis"
    # Redis stays down until a small queue overflows; NATS restarts at once and loses nothing.
    queue = {"max_queue": 20} if redis else {}

    async def main() -> None:
        async with (
            simulator() as sim,
            publishing(sim, own_engine.url, [SYMBOL], ["book"], settings=settings, **queue) as (
                publisher,
                seen,
                _client,
            ),
        ):
            follow = reader(own_engine.url, [SYMBOL], ["book"], settings=settings)
            await follow.open()
            check = Verified(follow, seen)
            await collect(follow, 20, check=check)
            loop = asyncio.get_running_loop()
            if redis:
                # Down long enough that the publisher's small queue overflows: records are
                # lost for sure (a quick restart may lose none, and then nothing is wrong).
                await loop.run_in_executor(None, own_engine.stop)
                await until(lambda: publisher.stats.dropped > 0, "records dropped")
                await loop.run_in_executor(None, own_engine.start)
            else:
                await loop.run_in_executor(None, own_engine.restart)
            got = await collect(follow, 40, check=check)
            await follow.close()
        assert follow.stats.mismatches == 0 and check.books >= 40
        if redis:
            # Redis (no persistence) lost the streams and the publisher dropped records
            # meanwhile: the reader reports the gap and rebuilds from a fresh snapshot.
            assert publisher.stats.engine_errors >= 1
            assert check.resyncs
            assert any(type(e) is BookUpdate and e.snapshot for e in got)
        else:
            # JetStream kept its files and nats-py held the publishes while reconnecting:
            # nothing was lost, the stream simply goes on.
            assert publisher.stats.dropped == 0 and not check.resyncs

    run(main())


def test_two_shards_and_one_reader(engine: Server, request: pytest.FixtureRequest) -> None:
    settings = settings_for(request)
    symbols = ["BTC/USD", "ETH/USD", "ADA/USD", "XRP/USD"]
    shards = [[s for s in symbols if shard_of(s, 2) == shard] for shard in (0, 1)]
    assert all(shards)

    async def main() -> None:
        seen = Seen()
        async with (
            simulator() as sim,
            publishing(sim, engine.url, shards[0], settings=settings, seen=seen) as (zero, *_),
            publishing(sim, engine.url, shards[1], settings=settings, seen=seen) as (one, *_),
        ):
            follow = reader(engine.url, symbols, settings=settings)
            await follow.open()
            check = Verified(follow, seen)
            pending = set(symbols)

            def each(event: Any) -> None:
                check(event)
                if type(event) is BookUpdate and not event.snapshot:
                    pending.discard(event.symbol)

            await collect(follow, 10_000, check=each, stop=lambda: not pending)
            await follow.close()
        assert not check.resyncs and follow.stats.gaps == 0
        for symbol in symbols:
            publisher = zero if symbol in shards[0] else one
            assert follow.follower("book", symbol).origin == publisher.origin

    run(main())
