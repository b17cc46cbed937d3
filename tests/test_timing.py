"""Deadlines on the driver's clock: ``after`` is always strictly later."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.timing import NEVER, after


def test_an_ordinary_delay_is_added() -> None:
    assert after(10.0, 2.5) == 12.5


def test_a_delay_lost_to_rounding_still_lands_after_now() -> None:
    now = 2.0**40
    assert now + 1e-9 == now  # the sum rounds back to now
    assert after(now, 1e-9) == math.nextafter(now, math.inf)


@given(
    now=st.floats(min_value=0.0, max_value=2.0**52, allow_nan=False),
    delay=st.floats(min_value=5e-324, max_value=1e6, allow_nan=False),
)
def test_after_is_always_later_and_never_far_off(now: float, delay: float) -> None:
    at = after(now, delay)
    assert now < at < NEVER
    assert at == max(now + delay, math.nextafter(now, math.inf))
