"""Deadlines on the driver's clock: no clock is read here, ``now`` is always passed in."""

from __future__ import annotations

import math

__all__ = ["NEVER", "after"]

NEVER = math.inf
"""The deadline of something that is not scheduled (the parts report it instead of ``None``,
so the earliest deadline is a plain ``min``)."""


def after(now: float, delay: float) -> float:
    """``now + delay`` (``delay > 0``), but never ``now`` itself: when the sum rounds back to
    ``now`` (a tiny delay on a large clock reading), the next float after it.

    Every deadline the protocol sets while handling an input is made with this, so a
    deadline set by ``handle_timer(now)`` is always later than ``now``.
    """
    at = now + delay
    return at if at > now else math.nextafter(now, math.inf)
