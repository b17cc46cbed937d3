"""Latency tracking: the log-linear histogram, the sampler, the tracker and its clock offset.

The histogram is checked against sorted samples (nearest rank, within its relative error)
and against itself (merging equals recording both). The tracker is fed events built by
hand and pongs scripted on a fake clock, and once through a real ``KrakenProtocol``
pinging on a fake clock; the driver layer's use of it is covered here too (the clients
themselves are tested on all three drivers in ``tests/transports/test_surface.py``).
"""

from __future__ import annotations

import json
import math
import time
from decimal import Decimal
from typing import Any

import pytest
from budget import sized
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto import (
    OHLC,
    Balance,
    BookUpdate,
    ClientConfig,
    ConfigurationError,
    Emit,
    Instrument,
    KrakenProtocol,
    LocalProtocolError,
    Pong,
    Send,
    StateChanged,
    SystemStatus,
    Ticker,
    Trade,
)
from kraken_proto.analytics import (
    DIRECTIONS,
    LATENCY_CHANNELS,
    ChannelLatency,
    ClockOffset,
    LatencyHistogram,
    LatencyPercentiles,
    LatencyReport,
    LatencySampler,
    LatencyTracker,
    pong_times,
)
from kraken_proto.events import Execution, L3Update
from kraken_transports.driver import Driver

MINUTE = "2026-08-01T02:53"
MINUTE_UNIX = 1_785_552_780  # 2026-08-01T02:53:00Z


def stamp(seconds: float, minute: str = MINUTE) -> str:
    """Kraken's RFC3339 text for ``seconds`` into ``minute`` (microseconds)."""
    return f"{minute}:{seconds:09.6f}Z"


def trade(at: float, timestamp: str | None = None) -> Trade:
    return Trade(
        "BTC/USD",
        "buy",
        Decimal("100"),
        Decimal("1"),
        "limit",
        1,
        timestamp if timestamp is not None else stamp(0.0),
        received_at=at,
    )


def book(at: float, timestamp: str | None = None, snapshot: bool = False) -> BookUpdate:
    return BookUpdate("BTC/USD", (), (), 0, timestamp, snapshot=snapshot, received_at=at)


def pong_frame(time_in: str, time_out: str | None = None, req_id: int = 1) -> str:
    body: dict[str, Any] = {"method": "pong", "req_id": req_id, "time_in": time_in}
    if time_out is not None:
        body["time_out"] = time_out
    return json.dumps(body)


# --------------------------------------------------------------------------- histogram


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) / 100 - 1e-9))
    return ordered[rank - 1]


def test_the_default_layout_covers_a_microsecond_to_a_hundred_seconds() -> None:
    histogram = LatencyHistogram()
    assert histogram.layout == (-20, 7, 64)
    assert histogram.lowest <= 1e-6 and histogram.highest >= 100.0
    assert histogram.relative_error == 1 / 128 < 0.01
    assert LatencyHistogram(0.5, 64.0, 2).layout == (-1, 6, 2)  # exact powers of two stay


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lowest": "1"}, "lowest must be a finite number of seconds > 0"),
        ({"highest": True}, "highest must be a finite number of seconds > 0"),
        ({"lowest": 0.0}, "lowest must be a finite number of seconds > 0"),
        ({"highest": math.inf}, "highest must be a finite number of seconds > 0"),
        ({"lowest": 2.0, "highest": 1.0}, "lowest must be below highest"),
        ({"sub_buckets": 48}, "sub_buckets must be a power of two"),
        ({"sub_buckets": 1}, "sub_buckets must be a power of two"),
        ({"sub_buckets": 2048}, "sub_buckets must be a power of two"),
        ({"sub_buckets": True}, "sub_buckets must be a power of two"),
        ({"sub_buckets": 64.0}, "sub_buckets must be a power of two"),
    ],
)
def test_a_bad_layout_is_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        LatencyHistogram(**arguments)


def test_an_empty_histogram_has_no_figures() -> None:
    histogram = LatencyHistogram()
    assert (histogram.count, histogram.samples, histogram.min, histogram.max) == (0, 0, None, None)
    assert histogram.percentile(50) is None
    assert histogram.summary() == LatencyPercentiles(
        count=0,
        samples=0,
        p50=None,
        p90=None,
        p99=None,
        p999=None,
        min=None,
        max=None,
        negative=0,
        below=0,
        above=0,
    )


@pytest.mark.parametrize("q", [-1, 100.5, True, "50", None])
def test_a_percentile_is_between_0_and_100(q: Any) -> None:
    histogram = LatencyHistogram()
    with pytest.raises(LocalProtocolError, match="q must be a percentile from 0 to 100"):
        histogram.percentile(q)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(value: float) -> None:
    histogram = LatencyHistogram()
    with pytest.raises(LocalProtocolError, match="finite number of seconds"):
        histogram.record(value)
    assert histogram.count == 0


@pytest.mark.parametrize("value", ["0.1", True, Decimal("0.1"), None])
def test_a_latency_is_a_number_of_seconds(value: Any) -> None:
    with pytest.raises(LocalProtocolError, match="value must be a finite number of seconds"):
        LatencyHistogram().record(value)


@pytest.mark.parametrize("count", [0, -1, True, 1.0])
def test_a_count_is_an_int_of_at_least_one(count: Any) -> None:
    with pytest.raises(LocalProtocolError, match="count must be an int >= 1"):
        LatencyHistogram().record(0.001, count)


def test_values_out_of_range_are_counted_never_hidden() -> None:
    histogram = LatencyHistogram()
    for value in (0.0, 2e-7, -3e-7, -0.002, -0.004, 500.0, -200.0, 0.001):
        histogram.record(value)
    assert histogram.count == histogram.samples == 8
    assert histogram.negative == 4  # -3e-7, -0.002, -0.004, -200
    assert histogram.below == 3  # 0, 2e-7, -3e-7
    assert histogram.above == 2  # 500, -200
    assert (histogram.min, histogram.max) == (-200.0, 500.0)
    # In rank order: -200 (a bound: min), -0.004, -0.002, three below range (0), 0.001, 500
    assert histogram.percentile(0) == -200.0
    assert histogram.percentile(12.5) == -200.0
    assert histogram.percentile(25) == pytest.approx(-0.004, rel=1 / 128)
    assert histogram.percentile(37.5) == pytest.approx(-0.002, rel=1 / 128)
    assert histogram.percentile(50) == 0.0
    assert histogram.percentile(75) == 0.0
    assert histogram.percentile(87.5) == pytest.approx(0.001, rel=1 / 128)
    assert histogram.percentile(100) == 500.0
    summary = histogram.summary()
    assert (summary.negative, summary.below, summary.above) == (4, 3, 2)
    assert summary.max == 500.0 and summary.p999 == 500.0


def test_a_weighted_value_stands_for_several() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.001, 99)
    histogram.record(1.0)
    assert (histogram.count, histogram.samples) == (100, 2)
    assert histogram.percentile(99) == pytest.approx(0.001, rel=1 / 128)
    assert histogram.percentile(99.9) == 1.0
    histogram.record(-0.5, 3)
    histogram.record(-1e-9, 2)
    histogram.record(1000.0, 4)
    assert (histogram.negative, histogram.below, histogram.above) == (5, 2, 4)


finite = st.floats(min_value=1.5e-6, max_value=99.0)
signed = st.one_of(finite, finite.map(lambda value: -value))


@given(st.lists(signed, min_size=1, max_size=300), st.sampled_from([0, 1, 25, 50, 90, 99, 99.9]))
def test_percentiles_match_sorted_samples_within_the_error(values: list[float], q: float) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    exact = nearest_rank(values, q)
    reported = histogram.percentile(q)
    assert reported is not None
    assert abs(reported - exact) <= histogram.relative_error * abs(exact) * (1 + 1e-12)
    summary = histogram.summary()
    assert summary.max == max(values) and summary.min == min(values)
    assert summary.p50 == histogram.percentile(50)
    assert summary.negative == sum(1 for value in values if value < 0)


def test_the_99_9th_percentile_is_taken_as_written() -> None:
    histogram = LatencyHistogram()
    for index in range(1, 1001):
        histogram.record(index / 1000)
    # rank 999 of 1000 (99.9 * 1000 / 100 in binary floats is a hair above 999)
    assert histogram.percentile(99.9) == pytest.approx(0.999, rel=1 / 128)
    assert histogram.percentile(99.9) != histogram.max


@given(st.lists(signed, max_size=60), st.lists(signed, max_size=60))
def test_merging_equals_recording_both(first: list[float], second: list[float]) -> None:
    one, two, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in first:
        one.record(value)
        both.record(value)
    for value in second:
        two.record(value)
        both.record(value)
    one.merge(two)
    assert one.summary() == both.summary()
    assert [one.percentile(q) for q in (0, 10, 33.3, 80)] == [
        both.percentile(q) for q in (0, 10, 33.3, 80)
    ]


def test_merge_needs_the_same_layout() -> None:
    histogram = LatencyHistogram()
    with pytest.raises(LocalProtocolError, match=r"same layout \(-20, 7, 64\), got \(-20, 7, 32\)"):
        histogram.merge(LatencyHistogram(sub_buckets=32))
    with pytest.raises(LocalProtocolError, match="got LatencyPercentiles"):
        histogram.merge(histogram.summary())  # type: ignore[arg-type]


def test_merge_into_a_histogram_with_negatives_of_its_own() -> None:
    one, two = LatencyHistogram(), LatencyHistogram()
    one.record(-0.001)
    two.record(-0.003)
    one.merge(two)
    one.merge(LatencyHistogram())  # nothing negative to add
    assert (one.count, one.negative, one.min, one.max) == (2, 2, -0.003, -0.001)


def test_a_copy_is_independent() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.001)
    plain = histogram.copy()
    histogram.record(-0.001)
    signed_copy = histogram.copy()
    histogram.record(-0.002)
    histogram.record(0.003)
    assert (plain.count, plain.negative, plain.max) == (1, 0, 0.001)
    assert (signed_copy.count, signed_copy.negative, signed_copy.min) == (2, 1, -0.001)
    assert signed_copy.percentile(0) == pytest.approx(-0.001, rel=1 / 128)
    assert histogram.count == 4


def test_buckets_walk_everything_recorded_in_increasing_value() -> None:
    histogram = LatencyHistogram()
    assert list(histogram.buckets()) == []
    for value, count in ((0.001, 3), (-500.0, 1), (2.0, 1), (1e-9, 2), (-0.01, 1), (200.0, 1)):
        histogram.record(value, count)
    runs = list(histogram.buckets())
    assert [count for count, _ in runs] == [1, 1, 2, 3, 1, 1]
    values = [value for _, value in runs]
    error = histogram.relative_error
    assert values[0] == -500.0 and values[-1] == 200.0  # beyond the range: the exact min, max
    assert values[1] == pytest.approx(-0.01, rel=error)
    assert values[2] == 0.0  # below the range
    assert values[3] == pytest.approx(0.001, rel=error)
    assert values[4] == pytest.approx(2.0, rel=error)


below_range = st.floats(min_value=-9e-7, max_value=9e-7)  # |value| < lowest (2**-20)
beyond_range = st.floats(min_value=128.0, max_value=1e4)  # |value| >= highest (2**7)
any_latency = st.one_of(signed, below_range, beyond_range, beyond_range.map(lambda v: -v))


@sized(60, 600)
@given(st.lists(st.tuples(any_latency, st.integers(1, 3)), max_size=80))
def test_buckets_stand_for_the_sorted_values(recorded: list[tuple[float, int]]) -> None:
    """Spelled out by their counts, the buckets are the recorded values in increasing order,
    each as the histogram reports it."""
    histogram = LatencyHistogram()
    for value, count in recorded:
        histogram.record(value, count)
    runs = list(histogram.buckets())
    assert all(count > 0 for count, _ in runs)
    assert [value for _, value in runs] == sorted({value for _, value in runs})
    spelled = [value for count, value in runs for _ in range(count)]
    values = sorted(value for value, count in recorded for _ in range(count))
    assert len(spelled) == len(values) == histogram.count
    for reported, value in zip(spelled, values, strict=True):
        if abs(value) < histogram.lowest:
            assert reported == 0.0
        elif value >= histogram.highest:
            assert reported == histogram.max
        elif value <= -histogram.highest:
            assert reported == histogram.min
        else:
            assert abs(reported - value) <= histogram.relative_error * abs(value) * (1 + 1e-12)


# --------------------------------------------------------------------------- sampler


def feed(sampler: LatencySampler, count: int, start: float, step: float) -> list[int]:
    """``count`` events ``step`` s apart through the documented hot path; the weights."""
    weights = []
    for index in range(count):
        now = start + index * step
        left = sampler.left
        if left > 1:
            sampler.left = left - 1
        else:
            weights.append(sampler.sample(now))
    return weights


def test_below_the_rate_every_event_is_measured() -> None:
    sampler = LatencySampler(rate=1000.0)
    assert feed(sampler, 500, 0.0, 0.002) == [1] * 500  # 500 events/s
    assert sampler.every == 1


def test_above_the_rate_a_weighted_sample_is_measured() -> None:
    sampler = LatencySampler(rate=100.0)
    weights = feed(sampler, 20_000, 0.0, 1e-4)  # 10,000 events/s for 2 s
    assert sampler.every == 100
    waiting = sampler.every - sampler.left  # skipped since the last measurement
    assert sum(weights) + waiting == 20_000  # every event is stood for, or waits
    assert len(weights) < 400


def test_a_burst_within_one_instant_doubles_the_interval_up_to_its_cap() -> None:
    sampler = LatencySampler(rate=100.0)
    weights = feed(sampler, 100_000, 5.0, 0.0)
    assert sampler.every == 256
    assert sum(weights) + sampler.every - sampler.left == 100_000


def test_a_stream_that_slows_down_is_measured_again() -> None:
    sampler = LatencySampler(rate=100.0)
    feed(sampler, 10_000, 0.0, 1e-5)  # 100,000 events/s
    assert sampler.every > 1
    weights = feed(sampler, 400, 1.0, 0.5)  # then 2 a second
    assert sampler.every == 1 and weights[-5:] == [1] * 5


def test_without_a_rate_every_event_is_measured() -> None:
    sampler = LatencySampler(rate=None)
    assert feed(sampler, 1000, 0.0, 0.0) == [1] * 1000


@pytest.mark.parametrize("rate", [0, -1.0, math.inf, True, "100"])
def test_a_bad_rate_is_refused(rate: Any) -> None:
    with pytest.raises(LocalProtocolError, match=r"rate must be None or a finite number .* > 0"):
        LatencySampler(rate)


def test_an_unused_measurement_passes_its_weight_on() -> None:
    sampler = LatencySampler(rate=100.0)
    feed(sampler, 5000, 0.0, 1e-5)
    every = sampler.every
    sampler.left = 1
    weight = sampler.sample(0.05)
    assert weight == every
    sampler.unused(weight)
    assert sampler.left == 1
    assert sampler.sample(0.05) == weight  # the next one stands for them
    assert sampler.left == sampler.every
    fresh = LatencySampler(rate=100.0)  # nothing measured in its window yet
    fresh.unused(3)
    assert fresh.sample(0.0) == 3


# --------------------------------------------------------------------------- pongs


def test_pong_times_reads_the_frame() -> None:
    assert pong_times(pong_frame(stamp(1.5), stamp(1.6))) == (stamp(1.5), stamp(1.6))
    assert pong_times(pong_frame(stamp(1.5)).encode()) == (stamp(1.5), stamp(1.5))
    assert pong_times('{"method":"pong","req_id":3}') is None
    assert pong_times('{"method":"subscribe","time_in":"x"}') is None
    assert pong_times(b"\xff not json") is None
    assert pong_times('{"method":7}') is None


def test_the_offset_comes_from_the_tightest_round_trip() -> None:
    tracker = LatencyTracker(window=3)
    assert tracker.clock is None
    truth = MINUTE_UNIX - 1000.0  # exchange time = driver time + truth
    # (sent, received, when Kraken saw it, how long it kept it): driver clock seconds
    pings = [(1000.0, 1000.040, 1000.010, 0.002), (1001.0, 1001.004, 1001.001, 0.001)]
    pings += [(1002.0, 1002.030, 1002.020, 0.0005)]
    for sent, received, seen, held in pings:
        event = Pong(1, received - sent, received)
        frame = pong_frame(stamp(seen - 1000.0), stamp(seen - 1000.0 + held))
        assert tracker.pong(event, frame)
    clock = tracker.clock
    assert clock is not None and clock.source == "pong" and clock.samples == 3
    assert clock.rtt == pytest.approx(0.004)
    assert clock.bound == pytest.approx((0.004 - 0.001) / 2)
    assert abs(clock.offset - truth) <= clock.bound + 1e-6
    assert clock.offset == pytest.approx(truth + (1001.0015 - 1001.002), abs=1e-6)
    # The tight sample leaves the window after three more: the best of those is used.
    for index in range(3):
        sent = 1010.0 + index
        event = Pong(2, 0.020 - index * 0.002, sent + 0.020 - index * 0.002)
        assert tracker.pong(event, pong_frame(stamp(sent - 1000.0 + 0.005)))
    clock = tracker.clock
    assert clock is not None and clock.rtt == pytest.approx(0.016)


def test_a_pong_without_what_is_needed_gives_no_sample() -> None:
    tracker = LatencyTracker()
    assert not tracker.pong(Pong(1, None, 5.0), pong_frame(stamp(1.0)))  # never sent
    assert not tracker.pong(Pong(1, 0.01, 5.0), '{"method":"pong"}')
    assert not tracker.pong(Pong(1, 0.01, 5.0), pong_frame("yesterday"))
    assert not tracker.clock_sample(5.0, 4.0, stamp(1.0), stamp(1.0))  # back in time
    assert tracker.clock is None


def test_offsets_from_a_protocol_pinging_on_a_fake_clock() -> None:
    """A real protocol pings every second; the fake exchange's clock runs 2.5 s ahead of
    the driver's plus the Unix time of MINUTE, and answers after a one-way delay."""
    proto = KrakenProtocol(ClientConfig(ping_interval=1.0))
    proto.connect(0.0)
    proto.connection_made(0.0)
    tracker = LatencyTracker()
    ahead = 2.5
    for index, delay in enumerate((0.030, 0.004, 0.050)):
        now = proto.next_deadline()
        assert now is not None
        actions = proto.handle_timer(now)
        ping = next(json.loads(a.text) for a in actions if isinstance(a, Send))
        kraken = now + delay + ahead  # when Kraken sees it, seconds into MINUTE
        frame = pong_frame(stamp(kraken), stamp(kraken + 0.0001), ping["req_id"])
        received = now + 2 * delay + 0.0001
        pong = next(a.event for a in proto.receive_data(frame, received) if isinstance(a, Emit))
        assert isinstance(pong, Pong) and tracker.pong(pong, frame), index
    clock = tracker.clock
    assert clock is not None and clock.rtt == pytest.approx(0.0081)
    assert clock.bound == pytest.approx(0.004)
    assert abs(clock.offset - (MINUTE_UNIX + ahead)) <= clock.bound
    assert clock.offset == pytest.approx(MINUTE_UNIX + ahead, abs=1e-6)  # symmetric delays


# --------------------------------------------------------------------------- tracker


def test_nothing_is_recorded_for_events_that_are_no_channel_data() -> None:
    tracker = LatencyTracker()
    state = StateChanged("connecting", "subscribing", "", 0, None, 1.0)
    assert not tracker.record(state, 2.0)
    assert not tracker.record_delivery(state, 2.0)
    assert not tracker.record_exchange(Pong(1, 0.1, 1.0))
    assert tracker.percentiles() == {}


def test_without_a_clock_offset_exchange_latency_is_unmeasured() -> None:
    tracker = LatencyTracker()
    assert tracker.record(trade(10.0), 10.25)
    (name, latency), *_ = tracker.percentiles().items()
    assert name == "trade" and latency.unmeasured == 1
    assert latency.exchange.count == 0
    assert latency.delivery.count == 1
    assert latency.delivery.p50 == pytest.approx(0.25, rel=1 / 128)


def test_the_wall_clock_maps_exchange_times_until_a_pong_does() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX + 10.0, 100.0)  # driver time 100 = 02:53:10 UTC
    clock = tracker.clock
    assert clock == ClockOffset(offset=MINUTE_UNIX + 10.0 - 100.0, source="wall")
    tracker.record(trade(100.5, stamp(10.25)), 100.6)  # sent 0.25 s before receipt
    # a pong says the exchange clock is 0.1 s behind the wall clock
    tracker.clock_sample(101.0, 101.002, stamp(10.901), stamp(10.901))
    tracker.wall_clock(MINUTE_UNIX + 20.0, 110.0)  # a later reading: the pong still wins
    tracker.record(trade(102.0, stamp(11.8)), 102.0)  # sent 0.1 s before receipt
    clock = tracker.clock
    assert clock is not None and clock.source == "pong"
    assert clock.offset == pytest.approx(MINUTE_UNIX + 10.0 - 100.0 - 0.1, abs=1e-6)
    report = tracker.report()
    assert report.wall_samples == 1
    exchange = report.channels["trade"].exchange
    assert exchange.count == 2
    assert exchange.min == pytest.approx(0.1, abs=1e-6)
    assert exchange.max == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize(("wall", "now", "name"), [(math.nan, 1.0, "wall"), (1.0, math.inf, "now")])
def test_a_wall_clock_reading_is_finite(wall: float, now: float, name: str) -> None:
    with pytest.raises(LocalProtocolError, match=f"{name} must be a finite number of seconds"):
        LatencyTracker().wall_clock(wall, now)


def test_negative_latencies_are_counted_never_clamped() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)
    tracker.record(trade(5.0, stamp(5.003)), 5.001)  # "sent" 3 ms after it arrived
    exchange = tracker.report().channels["trade"].exchange
    assert exchange.negative == 1
    assert exchange.p50 == pytest.approx(-0.003, abs=1e-6)


def test_which_events_have_an_exchange_time() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)
    ticker = Ticker.of("BTC/USD", *(["1"] * 11), timestamp=stamp(1.0), received_at=1.01)
    untimed_ticker = Ticker.of("BTC/USD", *(["1"] * 11), received_at=1.0)
    candle = OHLC(
        "BTC/USD",
        *(Decimal(1),) * 4,
        1,
        Decimal(1),
        Decimal(1),
        stamp(0.0),
        1,
        timestamp=stamp(1.0),
        received_at=1.0,
    )
    level3 = L3Update(symbol="BTC/USD", checksum=0, timestamp=stamp(1.0), received_at=1.02)
    snapshot_l3 = L3Update(symbol="BTC/USD", checksum=0, snapshot=True, received_at=1.0)
    events = [
        ticker,
        untimed_ticker,
        book(1.03, stamp(1.0)),
        book(1.0, stamp(0.5), snapshot=True),
        book(1.0),  # an old snapshot without a timestamp
        candle,
        level3,
        snapshot_l3,
        Execution("new", timestamp=stamp(1.0), received_at=1.04),
        Execution("trade", timestamp=stamp(0.0), snapshot=True, received_at=1.0),
        Balance("BTC", timestamp=stamp(1.0), received_at=1.05),
        Balance("BTC", balance=Decimal(1), snapshot=True, received_at=1.0),
        Instrument((), (), received_at=1.0),
        SystemStatus("online", received_at=1.0),
    ]
    for event in events:
        assert tracker.record(event, 2.0)
    report = tracker.report().channels
    assert list(report) == sorted(set(LATENCY_CHANNELS.values()) - {"trade"})
    measured = {name: (c.exchange.count, c.unmeasured) for name, c in report.items()}
    assert measured == {
        "balances": (1, 1),
        "book": (1, 2),
        "executions": (1, 1),
        "instrument": (0, 1),
        "level3": (1, 1),
        "ohlc": (0, 1),
        "status": (0, 1),
        "ticker": (1, 1),
    }
    assert report["executions"].exchange.p50 == pytest.approx(0.04, rel=1 / 128)
    assert all(latency.delivery.count for latency in report.values())


def test_channels_are_kept_apart() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)
    for index in range(100):
        at = 1.0 + index * 0.01
        tracker.record(trade(at, stamp(at - 0.002)), at + 0.0001)
        tracker.record(book(at, stamp(at - 0.020)), at + 0.0005, weight=2)
    channels = tracker.percentiles()
    assert set(channels) == {"book", "trade"}
    assert channels["trade"].exchange.p50 == pytest.approx(0.002, rel=1 / 100)
    assert channels["book"].exchange.p50 == pytest.approx(0.020, rel=1 / 100)
    assert channels["trade"].delivery.p50 == pytest.approx(0.0001, rel=1 / 100)
    assert channels["book"].delivery.p50 == pytest.approx(0.0005, rel=1 / 100)
    assert (channels["book"].delivery.count, channels["book"].delivery.samples) == (200, 100)
    assert channels["trade"].exchange.count == 100


@pytest.mark.parametrize("weight", [0, True, 1.5])
def test_a_weight_is_an_int_of_at_least_one(weight: Any) -> None:
    tracker = LatencyTracker()
    with pytest.raises(LocalProtocolError, match="weight must be an int >= 1"):
        tracker.record_delivery(trade(1.0), 2.0, weight)
    with pytest.raises(LocalProtocolError, match="weight must be an int >= 1"):
        tracker.record_exchange(trade(1.0), weight)


@pytest.mark.parametrize("window", [0, True, 2.0])
def test_the_pong_window_is_an_int_of_at_least_one(window: Any) -> None:
    with pytest.raises(LocalProtocolError, match="window must be an int >= 1"):
        LatencyTracker(window=window)


@pytest.mark.parametrize(
    ("timestamp", "sent"),
    [
        (stamp(1.5), 1.5),
        (f"{MINUTE}:01.500000000Z", 1.5),  # nanoseconds (level3, ohlc)
        (f"{MINUTE}:01Z", 1.0),
        ("2026-08-01T02:54:00.5Z", 60.5),  # the next minute
        ("2026-08-01T03:53:01.5+01:00", 1.5),  # an offset: parsed in full
        (f"{MINUTE}:01.5", 1.5),  # no zone at all: UTC
        (f"{MINUTE}:xx.5Z", None),
        (f"{MINUTE}:61.5Z", None),
        ("2026-13-01T02:53:01.5Z", None),
        ("2026-08-01 02:53:01.5Z", 1.5),  # a space for the T: parsed in full
        ("late", None),
        ("", None),
    ],
)
def test_exchange_timestamps(timestamp: str, sent: float | None) -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)  # driver time = seconds into MINUTE
    tracker.record(trade(2.0, timestamp), 2.0)
    latency = tracker.percentiles()["trade"]
    if sent is None:
        assert latency.unmeasured == 1 and latency.exchange.count == 0
    else:
        assert latency.exchange.p50 == pytest.approx(2.0 - sent, rel=1 / 128)


def test_the_minute_cache_stays_small() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)
    for minute in range(40):
        text = f"2026-08-01T03:{minute:02d}:00.000000Z"
        at = (7 + minute) * 60.0 + 0.01
        tracker.record(trade(at, text), at)
        tracker.record(trade(at, text), at)  # from the cache
    exchange = tracker.percentiles()["trade"].exchange
    assert exchange.count == 80
    assert exchange.max == pytest.approx(0.01, abs=1e-6)
    assert exchange.min == pytest.approx(0.01, abs=1e-6)


def test_a_report_is_a_frozen_snapshot() -> None:
    tracker = LatencyTracker()
    tracker.record(trade(1.0), 1.5)
    report = tracker.report()
    assert report == LatencyReport(channels=report.channels, clock=None, wall_samples=0)
    assert isinstance(report.channels["trade"], ChannelLatency)
    tracker.record(trade(1.0), 1.5)
    assert report.channels["trade"].delivery.count == 1
    with pytest.raises(AttributeError):
        report.clock = None  # type: ignore[misc]


def test_histograms_and_copies_are_independent() -> None:
    tracker = LatencyTracker()
    tracker.wall_clock(MINUTE_UNIX, 0.0)
    tracker.clock_sample(0.0, 0.002, stamp(0.001), stamp(0.001))
    tracker.record(trade(1.0, stamp(0.999)), 1.5)
    copy = tracker.copy()
    tracker.record(trade(2.0, stamp(1.0)), 2.5)
    tracker.clock_sample(0.0, 0.001, stamp(0.0005), stamp(0.0005))
    assert copy.percentiles()["trade"].delivery.count == 1
    assert copy.clock is not None and copy.clock.samples == 1
    assert tracker.percentiles()["trade"].delivery.count == 2
    delivery = tracker.histogram("trade", "delivery")
    exchange = tracker.histogram("trade", "exchange")
    assert delivery is not None and exchange is not None
    assert (delivery.count, exchange.count) == (2, 2)
    delivery.record(9.0)
    assert tracker.percentiles()["trade"].delivery.count == 2
    assert tracker.histogram("book", "delivery") is None
    assert DIRECTIONS == ("exchange", "delivery")
    with pytest.raises(LocalProtocolError, match="direction must be one of"):
        tracker.histogram("trade", "inbound")


# --------------------------------------------------------------------------- configuration


def test_latency_is_off_by_default_and_checked() -> None:
    config = ClientConfig()
    assert config.latency is False and config.latency_sample_rate == 500.0
    assert ClientConfig(latency=True, latency_sample_rate=None).latency_sample_rate is None
    assert ClientConfig(latency_sample_rate=20).latency_sample_rate == 20.0
    with pytest.raises(ConfigurationError, match="latency: must be a bool"):
        ClientConfig(latency=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="latency_sample_rate: must be > 0"):
        ClientConfig(latency_sample_rate=0.0)


# --------------------------------------------------------------------------- the driver layer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def started(clock: FakeClock, *, buffer_events: bool = True, rate: float | None = None) -> Driver:
    """A driver with latency on, connected (no IO; nothing subscribed: the core emits
    unsolicited trades all the same), its wall clock at MINUTE when its clock reads 100."""
    config = ClientConfig(latency=True, latency_sample_rate=rate, ping_interval=1.0)
    driver = Driver(
        config,
        buffer_events=buffer_events,
        clock=clock,
        wall_clock=lambda: MINUTE_UNIX + clock.now - 100.0,
    )
    driver.proto.connect(clock.now)
    driver.connected(clock.now)
    return driver


def trade_frame(seconds: float, count: int = 1) -> str:
    entry = {
        "symbol": "BTC/USD",
        "side": "buy",
        "price": 100.5,
        "qty": 0.5,
        "ord_type": "limit",
        "trade_id": 1,
        "timestamp": stamp(seconds),
    }
    return json.dumps({"channel": "trade", "type": "update", "data": [entry] * count})


def test_a_driver_needs_its_clock_for_latency() -> None:
    with pytest.raises(LocalProtocolError, match=r"config\.latency needs the client's clock"):
        Driver(ClientConfig(latency=True))
    assert Driver(ClientConfig()).latency is None


def test_the_driver_times_events_as_iteration_takes_them() -> None:
    clock = FakeClock()
    driver = started(clock)
    driver.received(trade_frame(0.001, count=2), 100.004)  # sent 3 ms before, at 100.001
    clock.now = 100.010
    buffer = driver.router.buffer
    taken = []
    while (event := buffer.take()) is not None:
        taken.append(event)
    assert [type(e) for e in taken].count(Trade) == 2
    driver.received(trade_frame(0.011), 100.012)
    assert buffer.pop(100.020) is not None
    assert buffer.take() is None and buffer.pop(100.030) is None
    assert driver.latency is not None
    trades = driver.latency.report().channels["trade"]
    assert trades.delivery.count == 3 and trades.exchange.count == 3
    assert trades.delivery.max == pytest.approx(0.008)
    assert trades.exchange.min == pytest.approx(0.001, abs=1e-6)
    assert trades.exchange.max == pytest.approx(0.003, abs=1e-6)


def test_the_driver_takes_the_offset_from_pongs() -> None:
    clock = FakeClock()
    driver = started(clock)
    actions = driver.proto.handle_timer(101.0)  # the first ping is due
    driver.perform(actions, 101.0)
    ping = next(json.loads(a.text) for a in actions if isinstance(a, Send))
    driver.received(pong_frame(stamp(1.002), req_id=ping["req_id"]), 101.004)
    assert driver.latency is not None
    clock_offset = driver.latency.clock
    assert clock_offset is not None and clock_offset.source == "pong"
    assert clock_offset.bound == pytest.approx(0.002)
    assert clock_offset.offset == pytest.approx(MINUTE_UNIX - 100.0, abs=1e-6)


def test_a_callback_only_driver_times_events_as_callbacks_get_them() -> None:
    clock = FakeClock()
    driver = started(clock, buffer_events=False, rate=100.0)
    seen: list[object] = []
    driver.router.on(None, seen.append)
    clock.now = 100.003
    driver.received(trade_frame(0.0, count=3), 100.001)
    driver.received('{"method":"subscribe","success":false,"error":"Symbol(s) not found"}', 100.002)
    assert driver.latency is not None
    trades = driver.latency.report().channels["trade"]
    assert trades.delivery.count == 3
    assert trades.delivery.p50 == pytest.approx(0.002, rel=1 / 100)
    clock.now = 101.0
    for index in range(2000):  # 2,000 trades a second: a sample is measured
        driver.received(trade_frame(1.0), 101.0 + index / 2000)
    trades = driver.latency.report().channels["trade"]
    assert trades.delivery.samples < 400
    assert trades.delivery.count > 1500


def test_latency_costs_one_check_when_off() -> None:
    driver = Driver(ClientConfig(), clock=time.monotonic)
    assert driver.latency is None
    assert type(driver.router.buffer).__name__ == "EventBuffer"


# ----------------------------------------------------------------------------- edge cases


def test_a_window_closing_within_a_denormal_time_does_not_overflow() -> None:
    """64 measurements within 5e-324 s: the rate seen is infinite, and ``every`` goes to
    its cap (it used to raise OverflowError from math.ceil(inf))."""
    sampler = LatencySampler(rate=500.0)
    sampler.sample(0.0)
    for _ in range(64):
        sampler.sample(5e-324)
    assert sampler.every == 256


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1.0", None, True])
def test_a_clock_sample_needs_finite_times(bad: Any) -> None:
    """A NaN used to be taken as a sample of bound 0, the best there is: every later
    exchange -> receive figure was NaN, and recording it raised in the driver."""
    tracker = LatencyTracker()
    stamp = "2026-01-01T00:00:00.000000Z"
    with pytest.raises(LocalProtocolError, match="sent must be a finite number of seconds"):
        tracker.clock_sample(bad, 1.0, stamp, stamp)
    with pytest.raises(LocalProtocolError, match="received must be a finite number"):
        tracker.clock_sample(0.0, bad, stamp, stamp)
    assert tracker.clock is None


@pytest.mark.parametrize("bad", ["1", None, True])
def test_a_wall_clock_reading_is_a_number(bad: Any) -> None:
    tracker = LatencyTracker()
    with pytest.raises(LocalProtocolError, match="wall must be a finite number of seconds"):
        tracker.wall_clock(bad, 0.0)
    with pytest.raises(LocalProtocolError, match="now must be a finite number of seconds"):
        tracker.wall_clock(1e9, bad)
    assert tracker.clock is None


def test_a_figure_that_is_no_number_is_refused_not_recorded() -> None:
    """The tracker's own figures are checked as they are added: a NaN receive time (a
    broken clock) raises rather than poisoning the histogram."""
    tracker = LatencyTracker()
    event = Trade("BTC/USD", "buy", Decimal(1), Decimal(1), "limit", 1, "t", received_at=math.nan)
    with pytest.raises(LocalProtocolError, match="a latency must be a finite number of seconds"):
        tracker.record_delivery(event, 1.0)
    histogram = tracker.histogram("trade", "delivery")
    assert histogram is not None and histogram.count == 0


def test_a_clock_stepping_back_leaves_the_interval_alone() -> None:
    """A window whose times went backwards says nothing about the rate: ``every`` used to
    double as if the whole window had come within one instant."""
    sampler = LatencySampler(rate=100.0)
    sampler.sample(10.0)
    for _ in range(64):
        sampler.sample(9.0)  # earlier than the window's start
    assert sampler.every == 1
