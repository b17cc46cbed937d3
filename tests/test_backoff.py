"""Tests for kraken_proto.backoff: exact schedule, jitter bounds, budget, reset."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.backoff import Backoff
from kraken_proto.config import ReconnectConfig


class FixedRandom(random.Random):
    """A Random whose random() always returns ``value`` (to pin the jitter)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.value


def delays(backoff: Backoff, count: int) -> list[float | None]:
    return [backoff.next_delay() for _ in range(count)]


def test_exact_sequence_without_jitter() -> None:
    backoff = Backoff(ReconnectConfig(jitter=0.0), random.Random(0))
    expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]
    assert delays(backoff, 12) == expected
    assert backoff.attempt == 12


def test_exact_sequence_with_non_power_of_two_multiplier() -> None:
    config = ReconnectConfig(initial_delay=1.0, max_delay=10.0, backoff_multiplier=3.0, jitter=0)
    assert delays(Backoff(config, random.Random()), 5) == [1.0, 3.0, 9.0, 10.0, 10.0]


def test_multiplier_one_is_constant() -> None:
    config = ReconnectConfig(initial_delay=0.5, max_delay=0.5, backoff_multiplier=1.0, jitter=0)
    assert delays(Backoff(config, random.Random()), 4) == [0.5, 0.5, 0.5, 0.5]


def test_jitter_takes_the_stated_fraction_off() -> None:
    config = ReconnectConfig(initial_delay=1.0, max_delay=100.0, jitter=0.5)
    rng = FixedRandom(0.5)
    backoff = Backoff(config, rng)
    # base 1, 2, 4; factor 1 - 0.5 * 0.5 = 0.75
    assert delays(backoff, 3) == [0.75, 1.5, 3.0]
    assert rng.calls == 3


def test_full_jitter_can_reach_almost_zero_but_not_below() -> None:
    config = ReconnectConfig(initial_delay=1.0, max_delay=1.0, jitter=1.0)
    almost_one = 1.0 - 2**-53  # the largest value random() can return
    delay = Backoff(config, FixedRandom(almost_one)).next_delay()
    assert delay is not None
    assert 0.0 < delay < 1e-15


def test_rng_is_drawn_even_without_jitter() -> None:
    rng = FixedRandom(0.9)
    backoff = Backoff(ReconnectConfig(jitter=0.0), rng)
    assert backoff.next_delay() == 0.1
    assert rng.calls == 1


def test_delay_is_clamped_even_with_a_misbehaving_rng() -> None:
    config = ReconnectConfig(initial_delay=1.0, max_delay=2.0, jitter=0.5)
    assert Backoff(config, FixedRandom(-1.0)).next_delay() == 1.5
    assert (
        Backoff(
            ReconnectConfig(initial_delay=2.0, max_delay=2.0, jitter=0.5), FixedRandom(-3.0)
        ).next_delay()
        == 2.0
    )
    assert (
        Backoff(ReconnectConfig(initial_delay=1.0, jitter=1.0), FixedRandom(5.0)).next_delay()
        == 0.0
    )


def test_seeded_rng_reproduces_the_sequence() -> None:
    config = ReconnectConfig()
    first = delays(Backoff(config, random.Random(1234)), 20)
    second = delays(Backoff(config, random.Random(1234)), 20)
    assert first == second
    assert first != delays(Backoff(config, random.Random(4321)), 20)
    assert len(set(first)) == 20  # jitter really varies the delays


def test_budget_gives_max_attempts_delays_then_none() -> None:
    backoff = Backoff(ReconnectConfig(max_attempts=3, jitter=0.0), random.Random(0))
    assert delays(backoff, 5) == [0.1, 0.2, 0.4, None, None]
    assert backoff.attempt == 3


def test_zero_budget_never_retries() -> None:
    backoff = Backoff(ReconnectConfig(max_attempts=0), random.Random(0))
    assert backoff.next_delay() is None
    assert backoff.attempt == 0


def test_reset_restarts_schedule_and_budget() -> None:
    backoff = Backoff(ReconnectConfig(max_attempts=2, jitter=0.0), random.Random(0))
    assert delays(backoff, 3) == [0.1, 0.2, None]
    backoff.reset()
    assert backoff.attempt == 0
    assert delays(backoff, 3) == [0.1, 0.2, None]


def test_unlimited_attempts_survive_float_overflow() -> None:
    # 2.0 ** 1100 overflows a float: the schedule must stay capped, not raise.
    backoff = Backoff(ReconnectConfig(jitter=0.0), random.Random(0))
    result = delays(backoff, 1100)
    assert result[-1] == 30.0
    assert backoff.attempt == 1100
    assert all(d == 30.0 for d in result[9:])


@given(
    initial=st.floats(min_value=1e-6, max_value=100.0),
    spread=st.floats(min_value=1.0, max_value=1e4),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32),
    count=st.integers(min_value=1, max_value=60),
)
def test_delays_stay_in_bounds(
    initial: float, spread: float, multiplier: float, jitter: float, seed: int, count: int
) -> None:
    config = ReconnectConfig(
        initial_delay=initial,
        max_delay=initial * spread,
        backoff_multiplier=multiplier,
        jitter=jitter,
    )
    jittered = Backoff(config, random.Random(seed))
    bases = Backoff(ReconnectConfig(**{**config.__dict__, "jitter": 0.0}), random.Random(seed))
    previous_base = 0.0
    for _ in range(count):
        delay = jittered.next_delay()
        base = bases.next_delay()
        assert delay is not None and base is not None
        assert 0.0 < delay <= config.max_delay
        assert base <= config.max_delay
        assert base >= previous_base  # the base never shrinks
        assert base * (1.0 - jitter) * (1 - 1e-12) <= delay <= base
        previous_base = base
    assert jittered.attempt == count


@given(
    max_attempts=st.integers(min_value=0, max_value=30),
    extra=st.integers(min_value=1, max_value=5),
)
def test_budget_property(max_attempts: int, extra: int) -> None:
    backoff = Backoff(ReconnectConfig(max_attempts=max_attempts), random.Random(0))
    result = delays(backoff, max_attempts + extra)
    assert all(d is not None for d in result[:max_attempts])
    assert result[max_attempts:] == [None] * extra
    assert backoff.attempt == max_attempts
