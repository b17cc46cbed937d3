"""EventRouter: callbacks, the buffer and the counters every driver shares."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from kraken_proto import (
    BackpressureConfig,
    DropPolicy,
    Pong,
    Trade,
)
from kraken_transports.router import ClientStats, EventRouter


def trade(n: int) -> Trade:
    return Trade("BTC/USD", "buy", Decimal(n), Decimal(1), "limit", n, "t")


def test_callbacks_per_type_in_order_and_catch_all_then_buffer() -> None:
    router = EventRouter(BackpressureConfig())
    seen: list[str] = []
    router.on(Trade, lambda e: seen.append(f"a{e.trade_id}"))
    router.on(Trade, lambda e: seen.append(f"b{e.trade_id}"))
    router.on(None, lambda e: seen.append(type(e).__name__))
    router.on(Pong, lambda e: seen.append("pong"))
    router.dispatch(trade(1), 0.0)
    assert seen == ["a1", "b1", "Trade"]
    assert router.buffer.pop(0.0) == trade(1)


def test_removed_callback_is_not_called_and_removal_is_idempotent() -> None:
    router = EventRouter(BackpressureConfig())
    seen: list[int] = []
    remove = router.on(Trade, lambda e: seen.append(e.trade_id))
    router.dispatch(trade(1), 0.0)
    remove()
    remove()
    router.dispatch(trade(2), 0.0)
    assert seen == [1]


def test_a_raising_callback_is_counted_logged_and_does_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = EventRouter(BackpressureConfig())
    seen: list[int] = []

    def broken(event: Trade) -> None:
        raise RuntimeError("boom")

    router.on(Trade, broken)
    router.on(Trade, lambda e: seen.append(e.trade_id))
    with caplog.at_level(logging.ERROR, logger="kraken_transports"):
        router.dispatch(trade(7), 0.0)
    assert seen == [7]
    assert router.stats().callback_errors == 1
    assert "boom" in caplog.text


def test_a_callback_raising_on_every_event_logs_one_traceback_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 9, item 9: 27 events used to log 27 tracebacks.
    router = EventRouter(BackpressureConfig())

    def broken(event: Trade) -> None:
        raise RuntimeError(f"boom {event.trade_id}")

    remove = router.on(Trade, broken)
    with caplog.at_level(logging.ERROR, logger="kraken_transports"):
        for n in range(1, 28):
            router.dispatch(trade(n), 0.0)
    assert router.stats().callback_errors == 27
    records = [r for r in caplog.records if r.name == "kraken_transports.callbacks"]
    assert [r.exc_info is not None for r in records] == [True, False, False, False, False]
    assert "boom 1" in caplog.text and records[0].getMessage().endswith("raised on Trade")
    assert [r.getMessage().split(" has raised ")[-1][:9] for r in records[1:]] == [
        "2 times (",
        "4 times (",
        "8 times (",
        "16 times ",
    ]
    assert "latest on Trade: RuntimeError: boom 16" in records[-1].getMessage()
    remove()  # registered again later, it starts a fresh count
    router.on(Trade, broken)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kraken_transports"):
        router.dispatch(trade(28), 0.0)
    assert [r.exc_info is not None for r in caplog.records] == [True]
    assert router.stats().callback_errors == 28


def test_bad_registrations_are_refused() -> None:
    router = EventRouter(BackpressureConfig())
    with pytest.raises(TypeError, match="event class"):
        router.on("Trade", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        router.on(Trade, 3)  # type: ignore[arg-type]

    async def coroutine(event: Trade) -> None:
        pass

    with pytest.raises(TypeError, match="never be awaited"):
        router.on(Trade, coroutine)


def test_without_buffering_events_reach_callbacks_only() -> None:
    router = EventRouter(BackpressureConfig(), buffer_events=False)
    seen: list[int] = []
    router.on(Trade, lambda e: seen.append(e.trade_id))
    router.dispatch(trade(3), 0.0)
    assert seen == [3]
    assert router.buffer.pop(0.0) is None


def test_stats_combine_buffer_and_driver_counters() -> None:
    router = EventRouter(BackpressureConfig(max_queue_depth=1, drop_policy=DropPolicy.OLDEST))
    router.dispatch(trade(1), 0.0)
    router.dispatch(trade(2), 0.0)
    router.frames_in, router.frames_out, router.reconnects = 10, 3, 1
    assert router.stats() == ClientStats(
        received=2,
        delivered=0,
        dropped=1,
        coalesced=0,
        queued=1,
        frames_in=10,
        frames_out=3,
        reconnects=1,
        callback_errors=0,
    )


class RecordingLock:
    """Stands for the threaded client's lock: records when the router lets it go."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def release(self) -> None:
        self.log.append("release")

    def acquire(self) -> None:
        self.log.append("acquire")


def test_release_and_reacquire_surround_the_callbacks_of_each_event_even_when_one_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    router = EventRouter(BackpressureConfig())
    lock = RecordingLock(log)
    router.release, router.reacquire = lock.release, lock.acquire

    def broken(event: Trade) -> None:
        log.append(f"broken {event.trade_id}")
        raise RuntimeError("boom")

    router.on(Trade, broken)
    router.on(None, lambda e: log.append(f"all {type(e).__name__}"))
    with caplog.at_level(logging.ERROR, logger="kraken_transports"):
        router.dispatch(trade(1), 0.0)
        router.dispatch(Pong(None), 0.0)
    assert log == [
        "release",
        "broken 1",
        "all Trade",
        "acquire",
        "release",
        "all Pong",
        "acquire",
    ]
    assert router.stats().callback_errors == 1
    assert router.buffer.pop(0.0) == trade(1)  # queued after its callbacks, the lock held
    quiet = EventRouter(BackpressureConfig())
    quiet.release, quiet.reacquire = lock.release, lock.acquire
    log.clear()
    quiet.dispatch(trade(2), 0.0)  # no callbacks: the lock is never let go
    assert log == [] and quiet.buffer.pop(0.0) == trade(2)
