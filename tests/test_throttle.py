"""Tests for kraken_proto.throttle: burst, pacing at exact times, backwards clocks, the bound."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.errors import ConfigurationError
from kraken_proto.throttle import TokenBucket


def test_starts_full_and_allows_a_burst() -> None:
    bucket = TokenBucket(rate=20.0, burst=10)
    assert bucket.available(0.0) == 10.0
    assert [bucket.try_acquire(0.0) for _ in range(11)] == [True] * 10 + [False]
    assert bucket.available(0.0) == 0.0


def test_paces_at_exact_times_after_the_burst() -> None:
    bucket = TokenBucket(rate=20.0, burst=10)
    for _ in range(10):
        assert bucket.try_acquire(0.0)
    assert bucket.next_available(0.0) == 0.05
    assert not bucket.try_acquire(0.049)
    assert bucket.try_acquire(0.05)
    assert not bucket.try_acquire(0.05)
    assert bucket.next_available(0.05) == 0.1
    assert bucket.try_acquire(0.1)
    assert bucket.next_available(0.1) == 0.15000000000000002  # 0.1 + 1/20 in floats


def test_next_available_is_now_when_a_token_is_there() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert bucket.next_available(5.0) == 5.0
    assert bucket.try_acquire(5.0)
    assert bucket.next_available(5.0) == 5.0
    assert bucket.try_acquire(5.0)
    assert bucket.next_available(5.0) == 6.0
    assert bucket.next_available(5.5) == 6.0


def test_partial_tokens_accumulate() -> None:
    bucket = TokenBucket(rate=2.0, burst=1)
    assert bucket.try_acquire(10.0)
    assert bucket.available(10.25) == 0.5
    assert not bucket.try_acquire(10.25)
    assert bucket.next_available(10.25) == 10.5
    assert bucket.try_acquire(10.5)


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=3)
    for _ in range(3):
        assert bucket.try_acquire(0.0)
    assert bucket.available(1000.0) == 3.0
    assert [bucket.try_acquire(1000.0) for _ in range(4)] == [True, True, True, False]


def test_backwards_time_counts_as_no_time_passed() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.try_acquire(100.0)
    assert bucket.available(50.0) == 0.0
    assert not bucket.try_acquire(50.0)
    assert bucket.next_available(50.0) == 101.0
    # going back and then forward again does not count the same interval twice
    assert not bucket.try_acquire(100.5)
    assert bucket.available(100.5) == 0.5
    assert bucket.try_acquire(101.0)


def test_backwards_time_with_tokens_left_keeps_the_latest_time() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert bucket.try_acquire(10.0)
    assert bucket.try_acquire(9.0)  # one token left; clock stepped back
    assert bucket.next_available(9.0) == 11.0  # refill counts from 10.0, the latest time seen
    assert bucket.next_available(10.5) == 11.0


@pytest.mark.parametrize(
    ("rate", "burst", "start"), [(20.0, 1, 0.123), (7.0, 1, 1.7), (3.0, 2, 1.7)]
)
def test_next_available_survives_float_rounding(rate: float, burst: int, start: float) -> None:
    # For these, last + (1 - tokens) / rate lands a hair short of a full token: the answer
    # must be a time at which try_acquire really succeeds, and the float before it must not.
    bucket = TokenBucket(rate=rate, burst=burst)
    for _ in range(burst):
        assert bucket.try_acquire(start)
    naive = start + 1.0 / rate
    assert bucket.available(naive) < 1.0  # the rounding case is really exercised
    when = bucket.next_available(start)
    assert naive < when <= naive + 4 * math.ulp(naive)
    assert not bucket.try_acquire(math.nextafter(when, -math.inf))
    assert bucket.available(when) >= 1.0
    assert bucket.try_acquire(when)


def test_slow_rate() -> None:
    bucket = TokenBucket(rate=0.5, burst=1)
    assert bucket.try_acquire(0.0)
    assert bucket.next_available(0.0) == 2.0
    assert not bucket.try_acquire(1.999)
    assert bucket.try_acquire(2.0)


def test_properties() -> None:
    bucket = TokenBucket(rate=20, burst=10)
    assert bucket.rate == 20.0 and type(bucket.rate) is float
    assert bucket.burst == 10


@pytest.mark.parametrize(
    ("field", "rate", "burst"),
    [
        ("rate", 0.0, 1),
        ("rate", -1.0, 1),
        ("rate", math.inf, 1),
        ("rate", math.nan, 1),
        ("rate", "20", 1),
        ("rate", True, 1),
        ("burst", 1.0, 0),
        ("burst", 1.0, -3),
        ("burst", 1.0, 2.0),
        ("burst", 1.0, False),
        ("burst", 1.0, 10**400),
    ],
)
def test_rejects_bad_parameters(field: str, rate: object, burst: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        TokenBucket(rate, burst)  # type: ignore[arg-type]
    assert info.value.field == field


# ----------------------------------------------------------------------------- properties

times = st.lists(
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False), min_size=1, max_size=200
)


@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=20),
    raw_times=times,
    sort=st.booleans(),
)
def test_grants_in_any_window_are_bounded(
    rate: float, burst: int, raw_times: list[float], sort: bool
) -> None:
    bucket = TokenBucket(rate, burst)
    attempt_times = sorted(raw_times) if sort else raw_times
    granted: list[float] = []
    latest = -math.inf
    for t in attempt_times:
        latest = max(latest, t)  # the bucket's effective time when the clock steps back
        if bucket.try_acquire(t):
            granted.append(latest)
    granted.sort()
    for i, t0 in enumerate(granted):
        for j in range(i, len(granted)):
            t1 = granted[j]
            count = j - i + 1
            assert count <= burst + rate * (t1 - t0) + 1e-9


@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=5),
    raw_times=times,
)
def test_next_available_agrees_with_try_acquire(
    rate: float, burst: int, raw_times: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    for t in sorted(raw_times):
        when = bucket.next_available(t)
        assert when >= t
        assert (when == t) == (bucket.available(t) >= 1.0)
        assert bucket.try_acquire(when)
        assert 0.0 <= bucket.available(when) <= burst


@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=20),
    raw_times=times,
)
def test_available_stays_within_zero_and_burst(
    rate: float, burst: int, raw_times: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    for t in raw_times:
        level = bucket.available(t)
        assert 0.0 <= level <= burst
        assert bucket.try_acquire(t) == (level >= 1.0)
