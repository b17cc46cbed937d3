"""Outgoing message pacing: a token bucket whose clock is passed in."""

from __future__ import annotations

import math

from kraken_proto.errors import ConfigurationError

__all__ = ["TokenBucket"]


class TokenBucket:
    """Paces outgoing messages: `rate` tokens per second, at most `burst` stored. Time is passed in.

    The bucket starts full. Every method takes ``now``, the caller's monotonic clock in float
    seconds (it must be finite). A ``now`` earlier than one already seen is treated as that
    later time (no time passed), so a clock stepping back never creates tokens.

    The three queries agree exactly: ``try_acquire(t)`` succeeds if and only if
    ``available(t) >= 1``, and ``try_acquire(next_available(now))`` succeeds when nothing
    was acquired in between, so a driver that sleeps until ``next_available`` never spins.

    Args:
        rate: tokens added per second, > 0 (e.g. ``ClientConfig.max_requests_per_second``).
        burst: capacity, an int >= 1 (e.g. ``ClientConfig.request_burst``).

    Raises:
        ConfigurationError: ``rate`` or ``burst`` is invalid (the field names which).
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise ConfigurationError("rate", f"must be a number, got {type(rate).__name__}")
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigurationError("rate", f"must be finite and > 0, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int):
            raise ConfigurationError("burst", f"must be an int, got {type(burst).__name__}")
        if burst < 1:
            raise ConfigurationError("burst", f"must be >= 1, got {burst}")
        try:
            self._burst = float(burst)
        except OverflowError:
            raise ConfigurationError("burst", "is too large") from None
        self._rate = float(rate)
        self._tokens = float(burst)
        self._last = -math.inf  # time of the last change; full until then

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Capacity of the bucket."""
        return int(self._burst)

    def _level(self, now: float) -> float:
        elapsed = now - self._last
        if not elapsed > 0.0:  # time stood still or went backwards
            return self._tokens
        return min(self._burst, self._tokens + elapsed * self._rate)

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (fractional; between 0 and ``burst``)."""
        return self._level(now)

    def try_acquire(self, now: float) -> bool:
        """Take one token if one is available at ``now``; return whether it was taken."""
        level = self._level(now)
        if level < 1.0:
            return False
        self._tokens = level - 1.0
        self._last = max(self._last, now)
        return True

    def next_available(self, now: float) -> float:
        """Earliest time at which :meth:`try_acquire` can succeed (``now`` if it can now)."""
        if self._level(now) >= 1.0:
            return now
        when = self._last + (1.0 - self._tokens) / self._rate
        # Floating-point rounding can leave the level a hair under 1 at `when`: step to the
        # first representable time at which try_acquire really succeeds.
        while self._level(when) < 1.0:
            when = math.nextafter(when, math.inf)
        return when
