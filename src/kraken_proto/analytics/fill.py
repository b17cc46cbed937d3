"""The fill estimate: what a market order of a given size would get from the resting book.

One of the book functions of :mod:`kraken_proto.analytics` (the others are in
:mod:`kraken_proto.analytics.depth`, whose rules on arithmetic and arguments apply here):
a pure function of a live L2 or level3 book that walks the side a taker would trade
against, best level first, and reads the book no deeper than the fill needs.

On an L2 book of plain tokens the levels the order takes whole are summed as integers
(``_sum_notional``: compiled when ``kraken_proto._speedups`` is built) and only the level
the walk ends in, and the few prices reported, are decoded; other books are walked level by
level in ``Decimal``. Both give the same result, digit for digit.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec

from kraken_proto.analytics._common import check_book, check_number
from kraken_proto.analytics.depth import (
    _BPS,
    _ZERO,
    _add,
    _Book,
    _decode,
    _div,
    _l2_side,
    _l3_side,
    _mid,
    _mul,
    _scaled,
    _Side,
    _sub,
    _sum_notional,
    _value,
)
from kraken_proto.book import OrderBook
from kraken_proto.errors import LocalProtocolError
from kraken_proto.level3 import L3Book

__all__ = ["FillEstimate", "fill_estimate"]

_FIRST_READ = 4  # levels read first; each further read of the side takes 4 times as many


class FillEstimate(msgspec.Struct, frozen=True):
    """What a market order would get from the book as it stands (see :func:`fill_estimate`).

    When the side walked is empty nothing fills: ``filled_qty`` and ``notional`` are 0,
    ``levels`` is 0, ``complete`` is False and ``avg_price``, ``worst_price`` and
    ``slippage_bps`` are ``None``.
    """

    side: Literal["buy", "sell"]
    """The taker's side: ``"buy"`` walks the asks, ``"sell"`` the bids."""
    requested_qty: Decimal
    """The quantity asked for."""
    filled_qty: Decimal
    """The quantity the book can fill: ``requested_qty``, or all the side holds if less."""
    complete: bool
    """Whether the whole ``requested_qty`` can be filled."""
    notional: Decimal
    """The exact total price of the filled quantity (``sum(price * qty taken)``)."""
    avg_price: Decimal | None
    """``notional / filled_qty`` (correctly rounded); ``None`` if nothing fills."""
    worst_price: Decimal | None
    """The price of the last level the fill takes from; ``None`` if nothing fills."""
    levels: int
    """How many price levels the fill takes quantity from."""
    slippage_bps: Decimal | None
    """How much worse than the mid the average price is, in basis points of the mid:
    ``(avg_price - mid) / mid * 10_000`` for a buy, ``(mid - avg_price) / mid * 10_000``
    for a sell, so positive is worse for the taker whichever the side (0 or below only
    when the book is crossed). Computed from the exact notional, with one rounding. For a
    partial fill it is that of the quantity filled. ``None`` if nothing fills or the other
    side is empty (no mid)."""


# What a walk found: (remaining, notional, best, worst, levels, other): the quantity left
# unfilled, the exact notional, the best and the worst price of the levels the fill takes from
# (None if none), how many levels it took from, and the best price of the taker's own side.
_Walk: TypeAlias = "tuple[Decimal, Decimal, Decimal | None, Decimal | None, int, Decimal | None]"


def _levels(book: _Book, buy: bool) -> Iterator[tuple[Decimal, Decimal]]:
    """The ``(price, qty)`` of the side a taker walks, best first, read in growing chunks."""
    count = _FIRST_READ
    done = 0
    while True:
        side: _Side
        if isinstance(book, OrderBook):
            l2_bids, l2_asks = book.top_tokens(count)
            l2_levels = l2_asks if buy else l2_bids
            read = len(l2_levels)
            side = _l2_side(l2_levels[done:])
        else:
            l3_bids, l3_asks = book.top_totals(count)
            l3_levels = l3_asks if buy else l3_bids
            read = len(l3_levels)
            side = _l3_side(l3_levels[done:])
        yield from zip(side.prices, side.qtys, strict=True)
        if read < count:
            return
        done = read
        count *= 4


def _best_price(book: _Book, bid: bool) -> Decimal | None:
    """The best bid (``bid``) or ask price of a checked book; ``None`` if that side is empty."""
    if isinstance(book, OrderBook):
        l2_bids, l2_asks = book.top_tokens(1)
        l2_levels = l2_bids if bid else l2_asks
        return _value(l2_levels[0][0]) if l2_levels else None
    l3_bids, l3_asks = book.top_totals(1)
    l3_levels = l3_bids if bid else l3_asks
    return l3_levels[0][0] if l3_levels else None


def _decimal_walk(book: _Book, buy: bool, wanted: Decimal) -> _Walk:
    """The walk level by level, in Decimal: any book."""
    remaining = wanted
    notional = _ZERO
    best: Decimal | None = None  # the best price of the side walked
    worst: Decimal | None = None
    levels = 0
    for price, level_qty in _levels(book, buy):
        if best is None:
            best = price
        if not level_qty:
            continue
        take = min(remaining, level_qty)
        notional = _add(notional, _mul(price, take))
        remaining = _sub(remaining, take)
        worst = price
        levels += 1
        if not remaining:
            break
    return remaining, notional, best, worst, levels, _best_price(book, buy)


def _token_walk(book: OrderBook, buy: bool, wanted: Decimal) -> _Walk | None:
    """The same walk on an L2 book's tokens: the levels taken whole summed as integers, then
    the level it ends in (if any) in Decimal; ``None`` for tokens that are not plain.

    The results are those of :func:`_decimal_walk`, exponents included: while a level is
    taken whole, its qty and price times qty are added to the running sums, so those are
    the exact sums of the levels taken whole (with the exponents of Decimal sums); the
    level where the running quantity reaches ``wanted`` takes all that remains.
    """
    limit = wanted.as_integer_ratio()
    count = _FIRST_READ
    levels = 0  # taken whole so far
    start = None  # their sums
    while True:
        bids, asks = book.top_tokens(count)
        walked, own = (asks, bids) if buy else (bids, asks)
        sums = _sum_notional(walked[levels:], count, limit, start)
        if sums is None:
            return None
        taken, qty, qty_scale, total, total_scale = sums
        levels += taken
        if levels < len(walked) or len(walked) < count:
            break
        # Every level read was taken whole, and there may be more: read on from there.
        start = qty, qty_scale, total, total_scale
        count *= 4
    remaining = _sub(wanted, _scaled(qty, -qty_scale)) if levels else wanted
    notional = _scaled(total, -total_scale)
    best = _value(walked[0][0]) if walked else None
    if levels < len(walked):
        # The level the walk ends in: it has at least what remains, so it takes all of it.
        price, level_qty = _decode(walked[levels])
        take = min(remaining, level_qty)
        notional = _add(notional, _mul(price, take))
        remaining = _sub(remaining, take)
        worst: Decimal | None = price
        levels += 1
    else:
        worst = _value(walked[levels - 1][0]) if levels else None
    other = _value(own[0][0]) if own else None
    return remaining, notional, best, worst, levels, other


def fill_estimate(
    book: OrderBook | L3Book, side: Literal["buy", "sell"], qty: Decimal | int | str
) -> FillEstimate:
    """Walk the book as a market order of ``qty`` on ``side`` would, and report the fill.

    A buy takes from the asks, lowest first, a sell from the bids, highest first; each level
    gives ``min(what is left, its qty)`` at its price (a level3 level with no quantity gives
    nothing and does not count). The result has the filled quantity, whether it is
    ``complete``, the exact ``notional``, the ``avg_price`` and ``worst_price`` paid or
    received and the ``slippage_bps`` of the average against the mid (positive = worse
    than the mid for the taker). An L2 book is walked within its ``view_depth``; see
    :class:`FillEstimate` for an empty side.

    ``qty`` is a ``Decimal``, ``int`` or numeric ``str`` between 1E-64 and 1E+64 (floats are
    refused: they are inexact).

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``side`` is not ``"buy"`` or ``"sell"``, or ``qty`` is not such
            a number.
    """
    check_book(book)
    if side not in ("buy", "sell"):
        raise LocalProtocolError(f"side must be 'buy' or 'sell', got {side!r}")
    wanted = check_number("qty", qty)
    buy = side == "buy"
    walk = _token_walk(book, buy, wanted) if type(book) is OrderBook else None
    if walk is None:
        walk = _decimal_walk(book, buy, wanted)
    remaining, notional, best, worst, levels, other = walk  # other: the taker's own side
    filled = _sub(wanted, remaining)
    avg_price = slippage = None
    if worst is not None:
        avg_price = _div(notional, filled)
        if other is not None and best is not None:
            # (avg - mid) / mid with avg = notional / filled: one division of exact values.
            at_mid = _mul(_mid(other, best), filled)
            worse = _sub(notional, at_mid) if side == "buy" else _sub(at_mid, notional)
            slippage = _div(_mul(worse, _BPS), at_mid)
    return FillEstimate(
        side=side,
        requested_qty=wanted,
        filled_qty=filled,
        complete=not remaining,
        notional=notional,
        avg_price=avg_price,
        worst_price=worst,
        levels=levels,
        slippage_bps=slippage,
    )
