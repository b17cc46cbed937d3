"""Reconnect delays: capped exponential backoff with jitter, no clock and no global random."""

from __future__ import annotations

import random

from kraken_proto.config import ReconnectConfig

__all__ = ["Backoff"]


class Backoff:
    """Capped exponential backoff with jitter from an injected random.Random.

    The delay handed out for attempt ``n`` (counting from 0 since the last :meth:`reset`) is
    ``base * (1 - jitter * rng.random())`` with
    ``base = min(max_delay, initial_delay * backoff_multiplier ** n)``: always in
    ``(base * (1 - jitter), base]``, so never above ``max_delay`` and never negative. Exactly
    one ``rng.random()`` is drawn per delay (also when ``jitter`` is 0), so a seeded ``rng``
    gives the same schedule every time.

    Args:
        config: the schedule (``initial_delay``, ``max_delay``, ``backoff_multiplier``,
            ``jitter`` in float seconds/fractions; ``max_attempts`` the budget, ``None`` for
            unlimited).
        rng: the jitter source, usually ``ClientConfig.rng``.
    """

    __slots__ = ("_attempt", "_config", "_rng")

    def __init__(self, config: ReconnectConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Number of delays handed out since construction or the last :meth:`reset`."""
        return self._attempt

    def next_delay(self) -> float | None:
        """Return the next delay in float seconds, or ``None`` once the budget is spent.

        With ``max_attempts=k`` the first ``k`` calls return delays and every later call
        returns ``None`` (and does not advance :attr:`attempt`) until :meth:`reset`.
        """
        config = self._config
        if config.max_attempts is not None and self._attempt >= config.max_attempts:
            return None
        try:
            base = config.initial_delay * config.backoff_multiplier**self._attempt
        except OverflowError:  # the multiplier's power left the float range: long since capped
            base = config.max_delay
        base = min(base, config.max_delay)
        self._attempt += 1
        delay = base * (1.0 - config.jitter * self._rng.random())
        return min(max(delay, 0.0), config.max_delay)

    def reset(self) -> None:
        """Start the schedule again from ``initial_delay`` with a full budget (after success)."""
        self._attempt = 0
