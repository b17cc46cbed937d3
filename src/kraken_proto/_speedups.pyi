"""The L2 book's update loop, compiled (optional; see ``OrderBook._apply_update_py``), and
exact sums of book tokens for the analytics (see ``kraken_proto.analytics.depth``)."""

from collections.abc import Sequence

from kraken_proto.book import OrderBook
from kraken_proto.events import BookLevel

_Levels = list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]

def apply_update(book: OrderBook, bids: Sequence[BookLevel], asks: Sequence[BookLevel], /) -> int:
    """Apply an update to a live book and return its CRC32."""

def sum_qty(levels: _Levels, n: int, /) -> tuple[int, int] | None:
    """``(total, d)``: the quantities of the first ``n`` ``(price, qty)`` token pairs add up
    to ``total / 10**d``, ``d`` being their most decimals (0 for none).

    ``None`` if one of those quantities is not a plain decimal (digits, or digits "."
    digits) of at most 19 significant digits, or the total does not fit a machine word:
    the Python ``_sum_qty_py`` is exact for any plain token. ``TypeError`` for other types
    than a list or tuple of ``(bytes, bytes)`` tuples and an int, ``ValueError`` for ``n < 0``.
    """

def sum_notional(
    levels: _Levels,
    n: int,
    limit: tuple[int, int] | None = None,
    start: tuple[int, int, int, int] | None = None,
    /,
) -> tuple[int, int, int, int, int] | None:
    """``(count, qty, dq, notional, dn)``: the first ``n`` levels summed, best first:
    ``count`` of them, their quantity ``qty / 10**dq`` and their prices times quantities
    ``notional / 10**dn``, each scale the most decimals of its terms (0 for none).

    With ``limit = (num, den)`` (ints > 0), only the levels before the first at which the
    running quantity reaches ``num / den`` are summed (a level's price is not read when
    the sum stops there). ``start = (qty, dq, notional, dn)`` continues earlier sums
    (``count`` is then of the levels summed here). ``None`` as for :func:`sum_qty`, or when
    an int of ``limit`` or ``start`` does not fit 63 bits; ``TypeError``/``ValueError``
    likewise.
    """

def micro_parts(
    bid: tuple[bytes, bytes], ask: tuple[bytes, bytes], /
) -> tuple[int, int, int] | None:
    """``(numerator, denominator, exponent)`` of the microprice of two ``(price, qty)``
    token pairs: ``numerator * 10**exponent / denominator``, ``exponent`` being the ideal
    exponent of the ``Decimal`` quotient. ``None`` as for :func:`sum_qty`, or when both
    quantities are 0."""

TOP: int
"""Levels per side covered by the checksum (``kraken_proto.book._TOP``)."""
TRUNCATED: int
"""Truncated entries a side keeps before compacting (``kraken_proto.book._TRUNCATED``)."""
