"""Book functions: depth ladder, price buckets, imbalance, pressure and microprice.

Each function reads one live book, an L2 :class:`~kraken_proto.OrderBook` or a level3
:class:`~kraken_proto.L3Book`, and returns a frozen value; nothing keeps state between
calls or reads a clock. An L2 level is a price and its quantity; a level3 level is a price,
the sum of its orders' quantities and its order count. An L2 book is read within its
``view_depth`` (what its own queries show); the fill estimate is in
:mod:`kraken_proto.analytics.fill`.

Arithmetic. Every number is a :class:`~decimal.Decimal` made from the exact values the book
holds, never a float. Sums, differences and products are exact (they are computed in a
context that cannot round). A quotient (a ratio, an average, a percentage, basis points)
is a single division of two exact values, correctly rounded to :data:`QUOTIENT_DIGITS`
significant digits with ``ROUND_HALF_EVEN``; so, for instance, a ratio of two exact sums is
as close to the true ratio as 28 digits allow. Neither depends on the thread's decimal
context, whose precision, rounding and traps are left alone. Every result is finite.

Arguments. A book that is not live raises :class:`~kraken_proto.BookNotLiveError`, as the
book's own queries do (that check comes first); an argument out of range raises
:class:`~kraken_proto.LocalProtocolError` naming it and what is allowed. Level counts are
ints (not bools); tick sizes and quantities are a ``Decimal``, an ``int`` or a numeric
``str`` (parsed exactly) between 1E-64 and 1E+64. Floats are refused: ``0.1`` is not one
tenth, and a bucket or a fill computed from it would be silently off. (These are the rules
of every module of :mod:`kraken_proto.analytics`.)

Cost. The functions read a book through its cheap public accessors, which make no level
object: an L2 book's :meth:`~kraken_proto.OrderBook.top_tokens` (Kraken's own number text)
and a level3 book's :meth:`~kraken_proto.L3Book.top_totals` (each level's exact total,
kept until the level changes). Nearly every L2 token is a plain decimal (``0.00005100``),
which is an integer at a decimal scale; :func:`imbalance`, :func:`microprice`,
:func:`imbalance_metrics` (and :func:`book_pressure`) and :func:`fill_estimate
<kraken_proto.analytics.fill.fill_estimate>` add and multiply those integers exactly
(compiled in ``kraken_proto._speedups`` when it is built, else in Python: the
``_sum_qty_py`` family below) and make a ``Decimal`` only for each result. Compiled,
``imbalance(book, 10)`` and ``microprice(book)`` so cost less than the core spends on the
book message they follow (``KrakenProtocol.receive_data``). A token in any other form takes
the ``Decimal`` path, as does a level3 book: results are the same either way, digit for
digit. :func:`depth_ladder` and :func:`aggregate` return ``Decimal`` values per level,
which is most of their cost; the tokens they decode are remembered (a book's prices recur,
and between two updates most of its quantities too). ``benchmarks/bench_analytics.py``
times every function beside a book update.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import reduce
from operator import itemgetter
from typing import TypeAlias

import msgspec

from kraken_proto.analytics._common import (
    EXACT,
    QUOTIENT,
    QUOTIENT_DIGITS,
    check_book,
    check_count,
    check_number,
)
from kraken_proto.book import ACCELERATED, OrderBook
from kraken_proto.errors import LocalProtocolError
from kraken_proto.level3 import L3Book, LevelTotal

__all__ = [
    "QUOTIENT_DIGITS",
    "AggregatedBook",
    "AggregatedLevel",
    "BookPressure",
    "DepthLadder",
    "ImbalanceMetrics",
    "LadderLevel",
    "PressureSignal",
    "PressureThresholds",
    "aggregate",
    "book_pressure",
    "depth_ladder",
    "imbalance",
    "imbalance_metrics",
    "microprice",
]

# Sums and products exact, quotients correctly rounded (see _common.py).
_add = EXACT.add
_sub = EXACT.subtract
_mul = EXACT.multiply
_scaleb = EXACT.scaleb
_div = QUOTIENT.divide

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HALF = Decimal("0.5")
_HUNDRED = Decimal(100)
_BPS = Decimal(10_000)
_TWO_BPS = Decimal(20_000)

_decode_list = msgspec.json.Decoder(list[Decimal]).decode
_decode_one = msgspec.json.Decoder(Decimal).decode
_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)

_Book: TypeAlias = "OrderBook | L3Book"


# -- values ------------------------------------------------------------------------------------


class LadderLevel(msgspec.Struct, frozen=True, gc=False):
    """One level of a :class:`DepthLadder`, with the running totals from the best level."""

    price: Decimal
    """The level's price."""
    qty: Decimal
    """The quantity resting at the price (a level3 level: the sum of its orders)."""
    cumulative_qty: Decimal
    """The quantity of this level and every better one on its side (exact)."""
    cumulative_percent: Decimal
    """``cumulative_qty`` as a percentage (0-100) of the side's quantity over the ladder's
    levels. Never decreasing from level to level, and exactly 100 at the last one; 0 for
    every level when that quantity is 0 (only a level3 book can hold zero-quantity orders).
    """


class DepthLadder(msgspec.Struct, frozen=True):
    """The best ``n`` levels of each side with running totals, and the top of the book."""

    bids: tuple[LadderLevel, ...]
    """The best bids, best (highest) first; empty when the book has no bids."""
    asks: tuple[LadderLevel, ...]
    """The best asks, best (lowest) first; empty when the book has no asks."""
    mid: Decimal | None
    """The mean of the best bid and best ask prices (exact); ``None`` if a side is empty."""
    spread: Decimal | None
    """Best ask price minus best bid price (exact); ``None`` if a side is empty."""
    spread_bps: Decimal | None
    """The spread in basis points of the mid (``spread / mid * 10_000``); ``None`` if a side
    is empty."""


class AggregatedLevel(msgspec.Struct, frozen=True, gc=False):
    """One price bucket of an :class:`AggregatedBook`."""

    price: Decimal
    """The bucket's price, a multiple of the tick size: the levels it holds are at this
    price or worse, by less than one tick."""
    qty: Decimal
    """The total quantity of the bucket's levels (exact)."""
    level_count: int
    """How many price levels fell into the bucket (L2 book), or how many orders (level3)."""


class AggregatedBook(msgspec.Struct, frozen=True):
    """A book's levels grouped into price buckets of ``tick_size``.

    Bid prices are rounded down to a multiple of the tick and ask prices up, so that a
    bucket never looks better than the levels in it and, in a book that is not crossed,
    the best bid bucket stays below the best ask bucket.
    """

    tick_size: Decimal
    """The bucket width the book was grouped by."""
    bids: tuple[AggregatedLevel, ...]
    """Bid buckets, best (highest) first."""
    asks: tuple[AggregatedLevel, ...]
    """Ask buckets, best (lowest) first."""


class ImbalanceMetrics(msgspec.Struct, frozen=True):
    """What :func:`imbalance` is made of, and the volume-weighted price of each side."""

    bid_qty: Decimal
    """The total quantity of the bid levels used (exact)."""
    ask_qty: Decimal
    """The total quantity of the ask levels used (exact)."""
    ratio: Decimal
    """``(bid_qty - ask_qty) / (bid_qty + ask_qty)``, in [-1, 1]; 0 when both are 0."""
    bid_vwap: Decimal | None
    """``sum(price * qty) / sum(qty)`` over the bid levels used; ``None`` when their
    quantity is 0 (no bids, or level3 levels of zero-quantity orders only)."""
    ask_vwap: Decimal | None
    """The same over the ask levels used; ``None`` when their quantity is 0."""
    bid_levels: int
    """How many bid levels were used: ``n``, or fewer if the book holds fewer."""
    ask_levels: int
    """How many ask levels were used: ``n``, or fewer if the book holds fewer."""


class PressureSignal(enum.Enum):
    """Which way the resting quantity leans, as judged by :func:`book_pressure`."""

    STRONG_BUY = "strong_buy"
    """Imbalance >= the strong threshold: far more quantity bid than offered."""
    BUY = "buy"
    """Imbalance >= the weak threshold (and below the strong one)."""
    NEUTRAL = "neutral"
    """Imbalance strictly between the negated weak threshold and the weak threshold."""
    SELL = "sell"
    """Imbalance <= minus the weak threshold (and above minus the strong one)."""
    STRONG_SELL = "strong_sell"
    """Imbalance <= minus the strong threshold: far more quantity offered than bid."""


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class PressureThresholds:
    """The imbalance levels at which :func:`book_pressure` signals buying or selling.

    ``weak`` (default 0.2) is where :attr:`PressureSignal.BUY`/``SELL`` start, ``strong``
    (default 0.5) where :attr:`PressureSignal.STRONG_BUY`/``STRONG_SELL`` start; both
    apply symmetrically to negative imbalances, and a threshold that is reached counts.
    Each is given as a ``Decimal``, an ``int`` or a numeric ``str`` (a float is refused as
    inexact) and kept as a ``Decimal``; ``0 < weak < strong <= 1`` is required, else
    :class:`~kraken_proto.LocalProtocolError` names the threshold.
    """

    weak: Decimal
    """Absolute imbalance from which the signal is ``BUY`` or ``SELL``."""
    strong: Decimal
    """Absolute imbalance from which the signal is ``STRONG_BUY`` or ``STRONG_SELL``."""

    def __init__(
        self,
        weak: Decimal | int | str = Decimal("0.2"),
        strong: Decimal | int | str = Decimal("0.5"),
    ) -> None:
        weak_value = check_number("weak", weak)
        strong_value = check_number("strong", strong)
        if not weak_value < _ONE:
            raise LocalProtocolError(f"weak must be > 0 and < 1, got {weak!r}")
        if not weak_value < strong_value <= _ONE:
            raise LocalProtocolError(
                f"strong must be > weak ({weak_value}) and <= 1, got {strong!r}"
            )
        object.__setattr__(self, "weak", weak_value)
        object.__setattr__(self, "strong", strong_value)


class BookPressure(msgspec.Struct, frozen=True):
    """The result of :func:`book_pressure`: a signal and the imbalance it was read from."""

    signal: PressureSignal
    """Which way the book leans, by the thresholds given."""
    imbalance: Decimal
    """The :func:`imbalance` over the levels used, in [-1, 1]."""


# -- reading books -----------------------------------------------------------------------------

_Tokens: TypeAlias = "list[tuple[bytes, bytes]]"


_KNOWN: dict[bytes, Decimal] = {}
"""The values of recently decoded tokens: a book's prices recur, and between two updates
most of its quantities too. A token's text fixes its value, exponent included."""
_KNOWN_MAX = 4096  # tokens remembered; then forgotten all at once


def _decode(tokens: Sequence[bytes]) -> list[Decimal]:
    """The exact values of number tokens: remembered, or decoded in one pass."""
    known = _KNOWN
    try:
        return [known[token] for token in tokens]
    except KeyError:
        values = _decode_list(b"[" + b",".join(tokens) + b"]")
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known.update(zip(tokens, values, strict=True))
        return values


def _value(token: bytes) -> Decimal:
    """The exact value of one number token (see :func:`_decode`)."""
    value = _KNOWN.get(token)
    if value is None:
        value = _decode_one(token)
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[token] = value
    return value


def _total(values: Iterable[Decimal]) -> Decimal:
    """The exact sum."""
    return reduce(_add, values, _ZERO)


class _Side:
    """One side of a book as read: prices and quantities best first, and each level's
    count (1 per L2 level, its orders for level3)."""

    __slots__ = ("counts", "prices", "qtys")

    def __init__(self, prices: list[Decimal], qtys: list[Decimal], counts: list[int]) -> None:
        self.prices = prices
        self.qtys = qtys
        self.counts = counts


def _l2_side(levels: _Tokens) -> _Side:
    """An L2 side from its ``(price, qty)`` tokens."""
    return _Side(
        _decode([price for price, _ in levels]),
        _decode([qty for _, qty in levels]),
        [1] * len(levels),
    )


def _l3_side(levels: list[LevelTotal]) -> _Side:
    """A level3 side from its ``(price, qty, order count)`` totals."""
    return _Side(list(map(_first, levels)), list(map(_second, levels)), list(map(_third, levels)))


def _sides(book: _Book, n: int | None) -> tuple[_Side, _Side]:
    """The best ``n`` levels of each side (all of them if ``None``) of a checked book."""
    if isinstance(book, OrderBook):
        l2_bids, l2_asks = book.top_tokens(n)
        return _l2_side(l2_bids), _l2_side(l2_asks)
    l3_bids, l3_asks = book.top_totals(n)
    return _l3_side(l3_bids), _l3_side(l3_asks)


def _qtys(book: _Book, n: int) -> tuple[list[Decimal], list[Decimal]]:
    """The quantities of the best ``n`` levels of each side of a checked book."""
    if isinstance(book, OrderBook):
        l2_bids, l2_asks = book.top_tokens(n)
        return _decode([qty for _, qty in l2_bids]), _decode([qty for _, qty in l2_asks])
    l3_bids, l3_asks = book.top_totals(n)
    return list(map(_second, l3_bids)), list(map(_second, l3_asks))


def _top(book: _Book) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """Best bid price and qty, best ask price and qty of a checked book; ``None`` if a side
    is empty."""
    if isinstance(book, OrderBook):
        l2_bids, l2_asks = book.top_tokens(1)
        if not l2_bids or not l2_asks:
            return None
        bid_price, bid_qty, ask_price, ask_qty = _decode((*l2_bids[0], *l2_asks[0]))
        return bid_price, bid_qty, ask_price, ask_qty
    l3_bids, l3_asks = book.top_totals(1)
    if not l3_bids or not l3_asks:
        return None
    return l3_bids[0][0], l3_bids[0][1], l3_asks[0][0], l3_asks[0][1]


# -- exact sums of L2 tokens -------------------------------------------------------------------
#
# A plain token (digits, or digits "." digits: what Kraken sends) is an integer at a
# decimal scale, ``0.00005100`` being 5100 at scale 8. The functions below add and multiply
# those integers and return them with their scales; a caller makes a Decimal of each result
# with _scaled(), which gives it the exponent the Decimal arithmetic of the same tokens
# would have (a sum's is the least of its terms' exponents, a product's the sum of its
# factors'), so that the results do not differ even in their digits. They return None for
# any token that is not plain (the caller then decodes the tokens: the Decimal path).
#
# kraken_proto._speedups has each of them compiled (sum_qty, sum_notional, micro_parts),
# used when it is built: the same results, except that the compiled ones also return None
# for a token of more than 19 significant digits or a result beyond a machine word, and
# raise TypeError for arguments of the wrong types. tests/analytics/test_depth.py compares
# them on the same inputs.


def _plain(token: bytes) -> tuple[int, int] | None:
    """A plain decimal token as ``(integer, decimals)``; ``None`` for any other token."""
    head, dot, tail = token.partition(b".")
    if head.isdigit() and (tail.isdigit() or not dot):
        return int(head + tail), len(tail)
    return None


def _sum_qty_py(levels: _Tokens, n: int) -> tuple[int, int] | None:
    """``(total, d)``: the sum of the quantities of the first ``n`` levels is ``total /
    10**d``, ``d`` being the most decimals among them (0 for no level); ``None`` if one of
    those quantities is not plain."""
    if n < 0:
        raise ValueError("n must be >= 0")
    total = scale = 0
    for _, qty in levels[:n]:
        head, dot, tail = qty.partition(b".")
        if not head.isdigit() or (dot and not tail.isdigit()):
            return None
        decimals = len(tail)
        value = int(head + tail)
        if decimals > scale:
            total *= 10 ** (decimals - scale)
            scale = decimals
        elif decimals < scale:
            value *= 10 ** (scale - decimals)
        total += value
    return total, scale


def _sum_notional_py(
    levels: _Tokens,
    n: int,
    limit: tuple[int, int] | None = None,
    start: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int, int] | None:
    """``(count, qty, dq, notional, dn)`` over the first ``n`` levels, best first: the
    levels summed, the sum of their quantities ``qty / 10**dq`` and of their prices times
    quantities ``notional / 10**dn``, each scale the most decimals of its terms (0 if none).

    With ``limit`` ``(num, den)`` (ints > 0), the levels summed are those before the first
    at which the running quantity reaches ``num / den``: those a walk for that quantity
    takes whole. ``start`` ``(qty, dq, notional, dn)`` continues earlier sums (``count``
    is then of the levels summed here). The tokens are read level by level, the quantity
    first (a level's price is not read when the walk stops there); ``None`` if one read is
    not plain.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    count = 0
    qty_total, qty_scale, notional, notional_scale = start or (0, 0, 0, 0)
    for price, qty in levels[:n]:
        # _plain(qty) and _plain(price), inline: this loop is the pure-Python fill walk.
        head, dot, tail = qty.partition(b".")
        if not head.isdigit() or (dot and not tail.isdigit()):
            return None
        q_value = int(head + tail)
        q_decimals = len(tail)
        cumulative, cumulative_scale = qty_total, qty_scale
        if q_decimals > cumulative_scale:
            cumulative *= 10 ** (q_decimals - cumulative_scale)
            cumulative_scale = q_decimals
        cumulative += q_value * 10 ** (cumulative_scale - q_decimals)
        if limit is not None and cumulative * limit[1] >= limit[0] * 10**cumulative_scale:
            break
        head, dot, tail = price.partition(b".")
        if not head.isdigit() or (dot and not tail.isdigit()):
            return None
        decimals = len(tail) + q_decimals
        if decimals > notional_scale:
            notional *= 10 ** (decimals - notional_scale)
            notional_scale = decimals
        notional += int(head + tail) * q_value * 10 ** (notional_scale - decimals)
        qty_total, qty_scale = cumulative, cumulative_scale
        count += 1
    return count, qty_total, qty_scale, notional, notional_scale


def _micro_parts_py(
    bid: tuple[bytes, bytes], ask: tuple[bytes, bytes]
) -> tuple[int, int, int] | None:
    """``(numerator, denominator, exponent)`` of the microprice of the best levels: it is
    ``numerator * 10**exponent / denominator``, and ``exponent`` is the ideal exponent of
    the Decimal quotient (see :func:`microprice`). ``None`` if a token is not plain or
    both quantities are 0."""
    parts = [_plain(bid[0]), _plain(bid[1]), _plain(ask[0]), _plain(ask[1])]
    if None in parts:
        return None
    (bid_price, bp), (bid_qty, bq), (ask_price, ap), (ask_qty, aq) = parts  # type: ignore[misc]
    first, second = bp + aq, ap + bq
    top = max(first, second)
    numerator = bid_price * ask_qty * 10 ** (top - first) + ask_price * bid_qty * 10 ** (
        top - second
    )
    bottom = max(bq, aq)
    denominator = bid_qty * 10 ** (bottom - bq) + ask_qty * 10 ** (bottom - aq)
    if not denominator:
        return None
    return numerator, denominator, bottom - top


_SumQty = Callable[[_Tokens, int], "tuple[int, int] | None"]
_SumNotional = Callable[..., "tuple[int, int, int, int, int] | None"]
_MicroParts = Callable[[tuple[bytes, bytes], tuple[bytes, bytes]], "tuple[int, int, int] | None"]


def _compiled_sums() -> tuple[_SumQty, _SumNotional, _MicroParts] | None:
    """The compiled sums, when the book's loop is compiled too (see ``book.ACCELERATED``)
    and the built module has them."""
    if not ACCELERATED:
        return None
    try:
        from kraken_proto._speedups import micro_parts, sum_notional, sum_qty  # noqa: PLC0415
    except ImportError:  # a module built before they existed
        return None
    return sum_qty, sum_notional, micro_parts


_sum_qty, _sum_notional, _micro_parts = _compiled_sums() or (
    _sum_qty_py,
    _sum_notional_py,
    _micro_parts_py,
)


def _scaled(value: int, exponent: int) -> Decimal:
    """``value * 10**exponent`` as a Decimal of that exponent (exact)."""
    return _scaleb(value, exponent)  # the context converts an int exactly


def _int_ratio(bid_total: int, bid_scale: int, ask_total: int, ask_scale: int) -> Decimal:
    """:func:`_ratio` of two sums of :func:`_sum_qty`: ``bid_total / 10**bid_scale`` and
    ``ask_total / 10**ask_scale``."""
    if bid_scale > ask_scale:
        ask_total *= 10 ** (bid_scale - ask_scale)
    elif ask_scale > bid_scale:
        bid_total *= 10 ** (ask_scale - bid_scale)
    total = bid_total + ask_total
    if not total:
        return _ZERO
    # Both at one scale, as the Decimal difference and sum would be: ideal exponent 0.
    return _div(bid_total - ask_total, total)  # the context converts ints exactly


# -- arithmetic --------------------------------------------------------------------------------


def _ratio(bid_qty: Decimal, ask_qty: Decimal) -> Decimal:
    """``(b - a) / (b + a)``, correctly rounded; 0 when both are 0."""
    total = _add(bid_qty, ask_qty)
    if not total:
        return _ZERO
    return _div(_sub(bid_qty, ask_qty), total)


def _mid(bid: Decimal, ask: Decimal) -> Decimal:
    """The exact mean of two prices."""
    return _mul(_add(bid, ask), _HALF)


def _ladder(side: _Side) -> tuple[LadderLevel, ...]:
    qtys = side.qtys
    total = _total(qtys)
    levels = []
    cumulative = _ZERO
    for price, qty in zip(side.prices, qtys, strict=True):
        cumulative = _add(cumulative, qty)
        percent = _div(_mul(cumulative, _HUNDRED), total) if total else _ZERO
        levels.append(LadderLevel(price, qty, cumulative, percent))
    return tuple(levels)


def _buckets(side: _Side, tick: Decimal, *, up: bool) -> tuple[AggregatedLevel, ...]:
    """Group a side's levels (best first) into buckets; prices rounded ``up`` or down.

    The levels' prices are strictly monotonic, so a level falls into the bucket of the one
    before it exactly when it is not beyond that bucket's price: a bid (rounded down) at
    or above it, an ask (rounded up) at or below it. Only a new bucket needs a division.
    """
    out: list[AggregatedLevel] = []
    bucket: Decimal | None = None
    qty = _ZERO
    count = 0
    for price, level_qty, level_count in zip(side.prices, side.qtys, side.counts, strict=True):
        if bucket is not None:
            if price <= bucket if up else price >= bucket:
                qty = _add(qty, level_qty)
                count += level_count
                continue
            out.append(AggregatedLevel(bucket, qty, count))
        ticks, remainder = EXACT.divmod(price, tick)
        if up and remainder:
            ticks = _add(ticks, _ONE)
        bucket, qty, count = _mul(ticks, tick), level_qty, level_count
    if bucket is not None:
        out.append(AggregatedLevel(bucket, qty, count))
    return tuple(out)


def _vwap(side: _Side, total: Decimal) -> Decimal | None:
    if not total:
        return None
    notional = _total(map(_mul, side.prices, side.qtys))
    return _div(notional, total)


# -- the functions -----------------------------------------------------------------------------


def depth_ladder(book: OrderBook | L3Book, n: int) -> DepthLadder:
    """The best ``n`` levels of each side with running totals, and the top of the book.

    Each :class:`LadderLevel` carries its ``cumulative_qty`` (exact running sum from the
    best level) and ``cumulative_percent`` of the side's quantity over those levels
    (correctly rounded; never decreasing, exactly 100 at the last level). A side with fewer
    than ``n`` levels lists all it has. ``mid``, ``spread`` and ``spread_bps`` are ``None``
    when a side is empty.

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``n`` is not an int >= 1.
    """
    check_book(book)
    check_count("n", n)
    bids, asks = _sides(book, n)
    mid = spread = spread_bps = None
    if bids.prices and asks.prices:
        best_bid, best_ask = bids.prices[0], asks.prices[0]
        mid = _mid(best_bid, best_ask)
        spread = _sub(best_ask, best_bid)
        # spread / mid * 10_000 with mid = (bid + ask) / 2: one division of exact values.
        spread_bps = _div(_mul(spread, _TWO_BPS), _add(best_bid, best_ask))
    return DepthLadder(_ladder(bids), _ladder(asks), mid, spread, spread_bps)


def aggregate(book: OrderBook | L3Book, tick_size: Decimal | int | str) -> AggregatedBook:
    """Every level of the book grouped into price buckets ``tick_size`` wide.

    A bid at price ``p`` goes to the bucket ``floor(p / tick_size) * tick_size``, an ask to
    ``ceil(p / tick_size) * tick_size`` (exact), so buckets never cross in a book that is
    not crossed, even with a tick wider than the spread. Each :class:`AggregatedLevel` sums
    its levels' quantities and counts its levels (L2) or orders (level3). An L2 book is read
    within its ``view_depth``.

    ``tick_size`` is a ``Decimal``, ``int`` or numeric ``str`` between 1E-64 and 1E+64
    (floats are refused: they are inexact).

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``tick_size`` is not such a number.
    """
    check_book(book)
    tick = check_number("tick_size", tick_size)
    bids, asks = _sides(book, None)
    return AggregatedBook(tick, _buckets(bids, tick, up=False), _buckets(asks, tick, up=True))


def imbalance(book: OrderBook | L3Book, n: int) -> Decimal:
    """The order book imbalance over the best ``n`` levels of each side.

    ``(B - A) / (B + A)``, where ``B`` and ``A`` are the exact total quantities of the best
    ``n`` bid and ask levels (fewer if a side holds fewer): 1 when only bids rest, -1 when
    only asks do, in [-1, 1] always. It is 0 when there is no quantity on either side (an
    empty book). Correctly rounded to :data:`QUOTIENT_DIGITS` digits.

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``n`` is not an int >= 1.
    """
    if type(book) is OrderBook and type(n) is int and n > 0:
        # The arguments are good (top_tokens raises BookNotLiveError itself).
        bids, asks = book.top_tokens(n)
        bid = _sum_qty(bids, n)
        ask = _sum_qty(asks, n)
        if bid is not None and ask is not None:
            # _int_ratio(*bid, *ask), inline: this is the cheapest call of the module.
            bid_total, bid_scale = bid
            ask_total, ask_scale = ask
            if bid_scale > ask_scale:
                ask_total *= 10 ** (bid_scale - ask_scale)
            elif ask_scale > bid_scale:
                bid_total *= 10 ** (ask_scale - bid_scale)
            total = bid_total + ask_total
            return _div(bid_total - ask_total, total) if total else _ZERO
    check_book(book)
    check_count("n", n)
    bid_qtys, ask_qtys = _qtys(book, n)
    return _ratio(_total(bid_qtys), _total(ask_qtys))


def imbalance_metrics(book: OrderBook | L3Book, n: int) -> ImbalanceMetrics:
    """The totals behind :func:`imbalance` over the best ``n`` levels, and each side's VWAP.

    ``bid_vwap``/``ask_vwap`` are ``sum(price * qty) / sum(qty)`` over those levels,
    correctly rounded; ``None`` for a side without quantity (an empty side).
    ``bid_levels``/``ask_levels`` say how many levels were used.

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``n`` is not an int >= 1.
    """
    if type(book) is OrderBook and type(n) is int and n > 0:
        l2_bids, l2_asks = book.top_tokens(n)
        bid = _sum_notional(l2_bids, n)
        ask = _sum_notional(l2_asks, n)
        if bid is not None and ask is not None:
            return _int_metrics(bid, ask)
    check_book(book)
    check_count("n", n)
    bids, asks = _sides(book, n)
    bid_qty, ask_qty = _total(bids.qtys), _total(asks.qtys)
    return ImbalanceMetrics(
        bid_qty=bid_qty,
        ask_qty=ask_qty,
        ratio=_ratio(bid_qty, ask_qty),
        bid_vwap=_vwap(bids, bid_qty),
        ask_vwap=_vwap(asks, ask_qty),
        bid_levels=len(bids.qtys),
        ask_levels=len(asks.qtys),
    )


def _int_vwap(qty: int, qty_scale: int, notional: int, notional_scale: int) -> Decimal | None:
    """:func:`_vwap` of sums of :func:`_sum_notional`: ``notional / qty`` with the ideal
    exponent of the Decimal quotient (the difference of the two sums' exponents)."""
    if not qty:
        return None
    return _div(_scaled(notional, qty_scale - notional_scale), qty)


def _int_metrics(
    bid: tuple[int, int, int, int, int], ask: tuple[int, int, int, int, int]
) -> ImbalanceMetrics:
    """:func:`imbalance_metrics` from each side's :func:`_sum_notional`."""
    bid_levels, bid_qty, bid_scale, bid_notional, bid_notional_scale = bid
    ask_levels, ask_qty, ask_scale, ask_notional, ask_notional_scale = ask
    return ImbalanceMetrics(
        bid_qty=_scaled(bid_qty, -bid_scale),
        ask_qty=_scaled(ask_qty, -ask_scale),
        ratio=_int_ratio(bid_qty, bid_scale, ask_qty, ask_scale),
        bid_vwap=_int_vwap(bid_qty, bid_scale, bid_notional, bid_notional_scale),
        ask_vwap=_int_vwap(ask_qty, ask_scale, ask_notional, ask_notional_scale),
        bid_levels=bid_levels,
        ask_levels=ask_levels,
    )


_DEFAULT_THRESHOLDS = PressureThresholds()


def book_pressure(
    book: OrderBook | L3Book, n: int, *, thresholds: PressureThresholds = _DEFAULT_THRESHOLDS
) -> BookPressure:
    """The :func:`imbalance` over the best ``n`` levels, read as a buy or sell signal.

    With the default :class:`PressureThresholds` (0.2 and 0.5): imbalance >= 0.5 is
    ``STRONG_BUY``, >= 0.2 ``BUY``, <= -0.5 ``STRONG_SELL``, <= -0.2 ``SELL``, anything
    between ``NEUTRAL`` (an empty book too, its imbalance being 0).

    Raises:
        BookNotLiveError: the book is not live.
        LocalProtocolError: ``n`` is not an int >= 1, or ``thresholds`` is not a
            :class:`PressureThresholds`.
    """
    ratio = imbalance(book, n)
    if not isinstance(thresholds, PressureThresholds):
        raise LocalProtocolError(
            f"thresholds must be a PressureThresholds, got {type(thresholds).__name__}"
        )
    if ratio >= thresholds.strong:
        signal = PressureSignal.STRONG_BUY
    elif ratio >= thresholds.weak:
        signal = PressureSignal.BUY
    elif ratio <= thresholds.strong.copy_negate():
        signal = PressureSignal.STRONG_SELL
    elif ratio <= thresholds.weak.copy_negate():
        signal = PressureSignal.SELL
    else:
        signal = PressureSignal.NEUTRAL
    return BookPressure(signal, ratio)


def microprice(book: OrderBook | L3Book) -> Decimal | None:
    """The size-weighted mid of the top of the book, or ``None`` if a side is empty.

    ``(best_bid * ask_qty + best_ask * bid_qty) / (bid_qty + ask_qty)`` with the best
    levels' prices and quantities: nearer the ask when more is bid than offered. One
    division of exact values, correctly rounded to :data:`QUOTIENT_DIGITS` digits, so it lies
    between the best bid and the best ask whenever they have at most that many digits. When
    both best levels have no quantity (possible only in a level3 book holding zero-quantity
    orders) it is the plain mid.

    Raises:
        BookNotLiveError: the book is not live.
    """
    if type(book) is OrderBook:
        bids, asks = book.top_tokens(1)  # raises BookNotLiveError
        if not bids or not asks:
            return None
        parts = _micro_parts(bids[0], asks[0])
        if parts is not None:
            numerator, denominator, exponent = parts
            return _div(_scaled(numerator, exponent), denominator)
    check_book(book)
    top = _top(book)
    if top is None:
        return None
    bid_price, bid_qty, ask_price, ask_qty = top
    weight = _add(bid_qty, ask_qty)
    if not weight:
        return _mid(bid_price, ask_price)
    return _div(_add(_mul(bid_price, ask_qty), _mul(ask_price, bid_qty)), weight)
