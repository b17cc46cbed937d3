"""The book functions of kraken_proto.analytics (depth.py and fill.py).

Hand-computed values on small books, then hypothesis properties against a naive reference
written here (plain lists of ``(Decimal, Decimal)``, exact sums and products, each quotient
rounded once to 28 digits by integer arithmetic), then every message of the real captures.
Every function runs on an L2 ``OrderBook`` and on an ``L3Book`` holding the same levels.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from budget import sized
from hypothesis import given, settings
from hypothesis import strategies as st

from kraken_proto import BookLevel, BookNotLiveError, L3Book, L3Order, LocalProtocolError, OrderBook
from kraken_proto.analytics import (
    QUOTIENT_DIGITS,
    AggregatedBook,
    AggregatedLevel,
    BookPressure,
    DepthLadder,
    FillEstimate,
    ImbalanceMetrics,
    LadderLevel,
    PressureSignal,
    PressureThresholds,
    aggregate,
    book_pressure,
    depth_ladder,
    fill_estimate,
    imbalance,
    imbalance_metrics,
    microprice,
)
from kraken_proto.analytics import depth as depth_module
from kraken_proto.analytics import fill as fill_module
from kraken_proto.events import BookUpdate

_decode_decimal = msgspec.json.Decoder(Decimal).decode

D = Decimal
Level = tuple[Decimal, Decimal]
Book = OrderBook | L3Book
Kind = Literal["l2", "l3"]
# Exact for every number here: Inexact is trapped, so a rounding would fail the test.
WIDE = Context(prec=300, Emax=10**6, Emin=-(10**6), traps=[InvalidOperation, Inexact])

# -- building books --------------------------------------------------------------------------


def l2_book(
    bids: list[tuple[str, str]] | list[Level],
    asks: list[tuple[str, str]] | list[Level],
    *,
    depth: int = 100,
    view_depth: int | None = None,
) -> OrderBook:
    book = OrderBook("BTC/USD", depth, view_depth=view_depth)
    book.apply_snapshot(
        [BookLevel.of(price, qty) for price, qty in bids],
        [BookLevel.of(price, qty) for price, qty in asks],
    )
    return book


def l3_book(
    bids: list[tuple[str, str]] | list[Level],
    asks: list[tuple[str, str]] | list[Level],
    *,
    splits: Iterator[int] | None = None,
    depth: int = 100,
) -> L3Book:
    """An L3 book with the same levels: each level's qty split over one or more orders."""
    counter = iter(range(1_000_000))

    def orders(levels: list[tuple[str, str]] | list[Level]) -> list[L3Order]:
        out = []
        for price, qty in levels:
            parts = next(splits, 1) if splits is not None else 1
            # ``parts`` orders: equal shares of the last digit's unit, the remainder last.
            total = D(qty)
            exponent = int(total.as_tuple().exponent)
            units = int(total.scaleb(-exponent, WIDE))
            shares = [units // parts] * (parts - 1)
            shares.append(units - sum(shares))
            out += [
                L3Order(f"O{next(counter)}", D(price), D(share).scaleb(exponent, WIDE))
                for share in shares
            ]
        return out

    book = L3Book("BTC/USD", depth)
    book.apply_snapshot(orders(bids), orders(asks))
    return book


def make(
    kind: Kind, bids: list[tuple[str, str]] | list[Level], asks: list[tuple[str, str]] | list[Level]
) -> Book:
    if kind == "l2":
        return l2_book(bids, asks)
    return l3_book(bids, asks, splits=iter([1, 2, 3] * 100))


@pytest.fixture(params=["l2", "l3"])
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


# -- the naive reference ---------------------------------------------------------------------
#
# Sums, differences and products in WIDE (exact: it traps Inexact); each quotient rounded
# once to 28 significant digits, half to even, by integer arithmetic (not by the decimal
# module, which the code under test divides with).


def add(*values: Decimal) -> Decimal:
    total = D(0)
    for value in values:
        total = WIDE.add(total, value)
    return total


def quotient(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` correctly rounded to 28 significant digits, half to even."""
    n1, d1 = numerator.as_integer_ratio()
    n2, d2 = denominator.as_integer_ratio()
    top, bottom = n1 * d2, d1 * n2
    if top == 0:
        return D(0)
    sign = int((top < 0) != (bottom < 0))
    top, bottom = abs(top), abs(bottom)
    # find the exponent e with 10**27 <= top / (bottom * 10**e) < 10**28
    exponent = len(str(top)) - len(str(bottom)) - QUOTIENT_DIGITS

    def scaled(e: int) -> tuple[int, int]:
        return (top * 10**-e, bottom) if e < 0 else (top, bottom * 10**e)

    def digit_count(e: int) -> int:  # compared: 27 or less, 28, 29 or more
        a, b = scaled(e)
        return (
            27
            if a < b * 10 ** (QUOTIENT_DIGITS - 1)
            else 29
            if a >= b * 10**QUOTIENT_DIGITS
            else 28
        )

    while digit_count(exponent) > QUOTIENT_DIGITS:
        exponent += 1
    while digit_count(exponent) < QUOTIENT_DIGITS:
        exponent -= 1
    a, b = scaled(exponent)
    digits, rest = divmod(a, b)
    if 2 * rest > b or (2 * rest == b and digits % 2):
        digits += 1
    return D(f"{'-' if sign else ''}{digits}E{exponent}")


def ref_ladder(side: list[Level]) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
    total = add(*(q for _, q in side))
    out = []
    running = D(0)
    for price, qty in side:
        running = add(running, qty)
        percent = quotient(WIDE.multiply(running, D(100)), total) if total else D(0)
        out.append((price, qty, running, percent))
    return out


def ref_buckets(side: list[Level], tick: Decimal, *, up: bool) -> list[tuple[Decimal, Decimal]]:
    buckets: dict[Decimal, Decimal] = {}
    tick_n, tick_d = tick.as_integer_ratio()
    for price, qty in side:
        price_n, price_d = price.as_integer_ratio()
        top, bottom = price_n * tick_d, price_d * tick_n
        ticks = -(-top // bottom) if up else top // bottom
        bucket = WIDE.multiply(D(ticks), tick)
        buckets[bucket] = add(buckets.get(bucket, D(0)), qty)
    return sorted(buckets.items(), reverse=not up)


def ref_ratio(bids: list[Level], asks: list[Level]) -> Decimal:
    b = add(*(q for _, q in bids))
    a = add(*(q for _, q in asks))
    return quotient(WIDE.subtract(b, a), add(b, a)) if add(b, a) else D(0)


def ref_vwap(side: list[Level]) -> Decimal | None:
    total = add(*(q for _, q in side))
    if not total:
        return None
    return quotient(add(*(WIDE.multiply(p, q) for p, q in side)), total)


def ref_mid(bids: list[Level], asks: list[Level]) -> Decimal:
    return WIDE.divide(add(bids[0][0], asks[0][0]), D(2))


def ref_microprice(bids: list[Level], asks: list[Level]) -> Decimal | None:
    if not bids or not asks:
        return None
    (bp, bq), (ap, aq) = bids[0], asks[0]
    if not add(bq, aq):
        return ref_mid(bids, asks)
    return quotient(add(WIDE.multiply(bp, aq), WIDE.multiply(ap, bq)), add(bq, aq))


def ref_fill(bids: list[Level], asks: list[Level], side: str, qty: Decimal) -> dict[str, Any]:
    """The walk, level by level."""
    walked = asks if side == "buy" else bids
    left = qty
    cost = D(0)
    worst = None
    used = 0
    for price, level_qty in walked:
        if left == 0:
            break
        if level_qty == 0:
            continue
        take = min(left, level_qty)
        cost = add(cost, WIDE.multiply(take, price))
        left = WIDE.subtract(left, take)
        worst = price
        used += 1
    filled = WIDE.subtract(qty, left)
    result: dict[str, Any] = {
        "filled_qty": filled,
        "complete": left == 0,
        "notional": cost,
        "worst_price": worst,
        "levels": used,
        "avg_price": quotient(cost, filled) if filled else None,
        "slippage_bps": None,
    }
    if filled and bids and asks:
        # (avg - mid) / mid * 10_000 = (cost - mid * filled) * 10_000 / (mid * filled)
        at_mid = WIDE.multiply(ref_mid(bids, asks), filled)
        worse = WIDE.subtract(cost, at_mid) if side == "buy" else WIDE.subtract(at_mid, cost)
        result["slippage_bps"] = quotient(WIDE.multiply(worse, D(10_000)), at_mid)
    return result


def check_all(book: Book, bids: list[Level], asks: list[Level], n: int, tick: Decimal) -> None:
    """Every function on ``book`` against the reference on its levels (best first)."""
    check_top(book, bids, asks, n)
    check_walks(book, bids, asks, tick)


def check_top(book: Book, bids: list[Level], asks: list[Level], n: int) -> None:
    """The functions of the best ``n`` levels against the reference."""
    top_bids, top_asks = bids[:n], asks[:n]
    ladder = depth_ladder(book, n)
    for got, want_side in ((ladder.bids, top_bids), (ladder.asks, top_asks)):
        want = ref_ladder(want_side)
        assert [(lv.price, lv.qty, lv.cumulative_qty, lv.cumulative_percent) for lv in got] == want
    if bids and asks:
        mid = ref_mid(bids, asks)
        assert ladder.mid == mid
        assert ladder.spread == WIDE.subtract(asks[0][0], bids[0][0])
        spread_bps = quotient(WIDE.multiply(ladder.spread, D(10_000)), mid)
        assert ladder.spread_bps == spread_bps
    else:
        assert ladder.mid is ladder.spread is ladder.spread_bps is None
    assert imbalance(book, n) == ref_ratio(top_bids, top_asks)
    metrics = imbalance_metrics(book, n)
    assert metrics.bid_qty == add(*(q for _, q in top_bids))
    assert metrics.ask_qty == add(*(q for _, q in top_asks))
    assert metrics.ratio == ref_ratio(top_bids, top_asks)
    assert metrics.bid_vwap == ref_vwap(top_bids)
    assert metrics.ask_vwap == ref_vwap(top_asks)
    assert (metrics.bid_levels, metrics.ask_levels) == (len(top_bids), len(top_asks))
    assert book_pressure(book, n).imbalance == metrics.ratio
    assert microprice(book) == ref_microprice(bids, asks)


def check_walks(book: Book, bids: list[Level], asks: list[Level], tick: Decimal) -> None:
    """The functions of whole sides (buckets, fills) against the reference."""
    agg = aggregate(book, tick)
    for got_levels, side, up in ((agg.bids, bids, False), (agg.asks, asks, True)):
        assert [(lv.price, lv.qty) for lv in got_levels] == ref_buckets(side, tick, up=up)
    for taker in ("buy", "sell"):
        walked = asks if taker == "buy" else bids
        depth_qty = add(*(q for _, q in walked))
        third = depth_qty / 3  # rounded (the thread's context): any qty will do
        for qty in {walked[0][1] if walked else D(1), third or D(1), add(depth_qty, D(1))}:
            check_fill(book, bids, asks, taker, qty)


def check_fill(book: Book, bids: list[Level], asks: list[Level], side: str, qty: Decimal) -> None:
    got = fill_estimate(book, side, qty)  # type: ignore[arg-type]
    want = ref_fill(bids, asks, side, qty)
    assert got.side == side
    assert got.requested_qty == qty
    assert got.filled_qty == want["filled_qty"]
    assert got.complete is want["complete"]
    assert got.notional == want["notional"]
    assert got.worst_price == want["worst_price"]
    assert got.levels == want["levels"]
    assert got.avg_price == want["avg_price"]
    assert got.slippage_bps == want["slippage_bps"]


# -- hand-computed values --------------------------------------------------------------------

BIDS = [("100.5", "1.5"), ("100", "2")]
ASKS = [("101", "0.5"), ("102.25", "3")]


def test_depth_ladder_small_book(kind: Kind) -> None:
    ladder = depth_ladder(make(kind, BIDS, ASKS), 5)
    assert ladder == DepthLadder(
        bids=(
            LadderLevel(D("100.5"), D("1.5"), D("1.5"), D("42.85714285714285714285714286")),
            LadderLevel(D("100"), D("2"), D("3.5"), D("100")),
        ),
        asks=(
            LadderLevel(D("101"), D("0.5"), D("0.5"), D("14.28571428571428571428571429")),
            LadderLevel(D("102.25"), D("3"), D("3.5"), D("100")),
        ),
        mid=D("100.75"),
        spread=D("0.5"),
        # 0.5 / 100.75 * 10_000 = 49.627791563275434243176178660...
        spread_bps=D("49.62779156327543424317617866"),
    )
    one = depth_ladder(make(kind, BIDS, ASKS), 1)
    assert [lv.cumulative_percent for lv in one.bids + one.asks] == [D(100), D(100)]


def test_aggregate_small_book(kind: Kind) -> None:
    agg = aggregate(make(kind, BIDS, ASKS), D("1"))
    counts = (1, 1) if kind == "l2" else (1, 2)  # level3: the second level has 2 orders
    assert agg == AggregatedBook(
        tick_size=D(1),
        bids=(AggregatedLevel(D(100), D("3.5"), counts[0] + counts[1]),),
        asks=(
            AggregatedLevel(D(101), D("0.5"), 3 if kind == "l3" else 1),
            AggregatedLevel(D(103), D("3"), 1),
        ),
    )


def test_aggregate_level_counts_orders_of_level3() -> None:
    book = l3_book([("10", "3")], [("11", "4"), ("11.5", "1")], splits=iter([3, 2, 2]))
    agg = aggregate(book, 5)
    assert agg.bids == (AggregatedLevel(D(10), D(3), 3),)
    assert agg.asks == (AggregatedLevel(D(15), D(5), 4),)
    flat = aggregate(l2_book([("10", "3")], [("11", "4"), ("11.5", "1")]), 5)
    assert flat.asks == (AggregatedLevel(D(15), D(5), 2),)


def test_aggregate_tick_wider_than_the_spread(kind: Kind) -> None:
    book = make(kind, [("100.4", "1"), ("99.9", "2"), ("95", "1")], [("100.6", "1"), ("105", "2")])
    agg = aggregate(book, "5")
    assert [(lv.price, lv.qty) for lv in agg.bids] == [(D(100), D(1)), (D(95), D(3))]
    assert [(lv.price, lv.qty) for lv in agg.asks] == [(D(105), D(3))]
    assert agg.bids[0].price < agg.asks[0].price
    # a tick far wider than the book: one bucket per side, still apart
    wide = aggregate(book, D("1E+3"))
    assert [(lv.price, lv.qty) for lv in wide.bids] == [(D(0), D(4))]
    assert [(lv.price, lv.qty) for lv in wide.asks] == [(D(1000), D(3))]
    # a fine tick keeps every level; a price on a multiple stays where it is
    fine = aggregate(book, "0.1")
    assert [lv.price for lv in fine.bids] == [D("100.4"), D("99.9"), D(95)]
    assert [lv.price for lv in fine.asks] == [D("100.6"), D(105)]


def test_imbalance_and_metrics_small_book(kind: Kind) -> None:
    book = make(kind, [("100", "3"), ("99", "1")], [("101", "1"), ("102", "1")])
    assert imbalance(book, 1) == D("0.5")  # (3 - 1) / 4
    assert imbalance(book, 2) == D("0.3333333333333333333333333333")  # (4 - 2) / 6
    assert imbalance_metrics(book, 2) == ImbalanceMetrics(
        bid_qty=D(4),
        ask_qty=D(2),
        ratio=D("0.3333333333333333333333333333"),
        bid_vwap=D("99.75"),
        ask_vwap=D("101.5"),
        bid_levels=2,
        ask_levels=2,
    )
    assert book_pressure(book, 1) == BookPressure(PressureSignal.STRONG_BUY, D("0.5"))
    assert book_pressure(book, 2) == BookPressure(
        PressureSignal.BUY, D("0.3333333333333333333333333333")
    )


def test_microprice_small_book(kind: Kind) -> None:
    book = make(kind, [("100", "3"), ("99", "1")], [("101", "1")])
    # (100 * 1 + 101 * 3) / 4: nearer the ask, where less rests
    assert microprice(book) == D("100.75")
    assert microprice(make(kind, [("100", "1")], [("101", "2")])) == D(
        "100.3333333333333333333333333"
    )


def test_fill_estimate_small_book(kind: Kind) -> None:
    book = make(kind, BIDS, ASKS)
    buy = fill_estimate(book, "buy", "2")
    # 0.5 @ 101 + 1.5 @ 102.25 = 203.875; mid 100.75
    assert buy == FillEstimate(
        side="buy",
        requested_qty=D(2),
        filled_qty=D(2),
        complete=True,
        notional=D("203.875"),
        avg_price=D("101.9375"),
        worst_price=D("102.25"),
        levels=2,
        # (101.9375 - 100.75) / 100.75 * 10_000
        slippage_bps=D("117.8660049627791563275434243"),
    )
    sell = fill_estimate(book, "sell", 10)
    assert sell.filled_qty == D("3.5")
    assert sell.complete is False
    assert sell.notional == D("350.75")
    assert sell.worst_price == D(100)
    assert sell.levels == 2
    # mid - avg, positive: selling below the mid is worse for the taker
    # (100.75 - 350.75 / 3.5) / 100.75 * 10_000 = 18750 / 352.625
    #   = 53.17263381779510811768876285|005...
    assert sell.slippage_bps == D("53.17263381779510811768876285")
    assert sell.slippage_bps > 0
    inside = fill_estimate(book, "buy", D("0.25"))
    assert (inside.avg_price, inside.worst_price, inside.levels) == (D(101), D(101), 1)
    # 0.25 / 100.75 * 10_000 = 24.81389578163771712158808933|0024...
    assert inside.slippage_bps == D("24.81389578163771712158808933")


def test_empty_book(kind: Kind) -> None:
    book = make(kind, [], [])
    assert depth_ladder(book, 3) == DepthLadder((), (), None, None, None)
    assert aggregate(book, 1) == AggregatedBook(D(1), (), ())
    assert imbalance(book, 5) == 0
    assert imbalance_metrics(book, 5) == ImbalanceMetrics(D(0), D(0), D(0), None, None, 0, 0)
    assert book_pressure(book, 5) == BookPressure(PressureSignal.NEUTRAL, D(0))
    assert microprice(book) is None
    for side in ("buy", "sell"):
        assert fill_estimate(book, side, 1) == FillEstimate(
            side=side,
            requested_qty=D(1),
            filled_qty=D(0),
            complete=False,
            notional=D(0),
            avg_price=None,
            worst_price=None,
            levels=0,
            slippage_bps=None,
        )


def test_one_sided_book(kind: Kind) -> None:
    bids_only = make(kind, BIDS, [])
    ladder = depth_ladder(bids_only, 5)
    assert len(ladder.bids) == 2 and ladder.asks == ()
    assert ladder.mid is ladder.spread is ladder.spread_bps is None
    assert imbalance(bids_only, 5) == 1
    assert book_pressure(bids_only, 5).signal is PressureSignal.STRONG_BUY
    metrics = imbalance_metrics(bids_only, 5)
    assert metrics.ask_vwap is None and metrics.bid_vwap == D("100.2142857142857142857142857")
    assert microprice(bids_only) is None
    assert fill_estimate(bids_only, "buy", 1).filled_qty == 0
    sell = fill_estimate(bids_only, "sell", 1)
    assert sell.avg_price == D("100.5") and sell.complete
    assert sell.slippage_bps is None  # no asks: no mid
    asks_only = make(kind, [], ASKS)
    assert imbalance(asks_only, 5) == -1
    assert book_pressure(asks_only, 5).signal is PressureSignal.STRONG_SELL
    assert aggregate(asks_only, 1).bids == ()


def test_n_beyond_the_depth(kind: Kind) -> None:
    book = make(kind, BIDS, ASKS)
    assert depth_ladder(book, 1000) == depth_ladder(book, 2)
    assert imbalance_metrics(book, 10**9) == imbalance_metrics(book, 2)
    assert imbalance_metrics(book, 10**9).bid_levels == 2


def test_l2_view_depth_limits_what_is_read() -> None:
    levels = [(D(100 - i), D(i + 1)) for i in range(5)]
    asks = [(D(101 + i), D(1)) for i in range(5)]
    book = l2_book(levels, asks, depth=10, view_depth=2)
    assert len(depth_ladder(book, 5).bids) == 2
    assert imbalance_metrics(book, 5).bid_qty == 3
    assert fill_estimate(book, "sell", 100).filled_qty == 3
    assert len(aggregate(book, "0.5").bids) == 2


def test_many_decimals_stay_exact(kind: Kind) -> None:
    tiny = "0.000000000000000000000000000000000001"  # 1E-36
    big = "123456789012345678901234567890.123456789"
    book = make(kind, [("63388.7", tiny), ("63388.1", big)], [("63388.8", "0.00005100")])
    ladder = depth_ladder(book, 5)
    exact = WIDE.add(D(big), D(tiny))
    assert ladder.bids[1].cumulative_qty == exact  # 66 digits: nothing rounded
    assert ladder.bids[0].cumulative_percent == quotient(D(tiny) * 100, exact)
    assert ladder.bids[1].cumulative_percent == 100
    metrics = imbalance_metrics(book, 5)
    assert metrics.bid_qty == exact
    ask = D("0.000051")
    assert metrics.ratio == quotient(WIDE.subtract(exact, ask), WIDE.add(exact, ask))
    sell = fill_estimate(book, "sell", tiny)
    assert sell.filled_qty == D(tiny) and sell.avg_price == D("63388.7")
    sell = fill_estimate(book, "sell", "1E-40")
    assert sell.notional == D("63388.7E-40") and sell.complete


def test_results_ignore_the_thread_context(kind: Kind) -> None:
    book = make(kind, [("63388.7", "0.25761908"), ("63388.1", "0.78879110")], ASKS)
    before = (
        depth_ladder(book, 5),
        aggregate(book, "0.3"),
        imbalance_metrics(book, 5),
        microprice(book),
        fill_estimate(book, "sell", "1"),
    )
    traps = [InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded]
    with localcontext(Context(prec=3, traps=traps)) as context:
        after = (
            depth_ladder(book, 5),
            aggregate(book, "0.3"),
            imbalance_metrics(book, 5),
            microprice(book),
            fill_estimate(book, "sell", "1"),
        )
        assert not any(context.flags.values())
    assert after == before


def test_pressure_thresholds_custom() -> None:
    # bids 3, asks 2: imbalance exactly 0.2
    book = l2_book([("100", "3")], [("101", "2")])
    assert book_pressure(book, 1).signal is PressureSignal.BUY
    custom = PressureThresholds(weak="0.25", strong=1)
    assert (custom.weak, custom.strong) == (D("0.25"), D(1))
    assert isinstance(custom.weak, Decimal) and isinstance(custom.strong, Decimal)
    assert book_pressure(book, 1, thresholds=custom).signal is PressureSignal.NEUTRAL
    only_bids = l2_book([("100", "3")], [])
    assert book_pressure(only_bids, 1, thresholds=custom).signal is PressureSignal.STRONG_BUY


@pytest.mark.parametrize(
    ("bid_qty", "ask_qty", "signal"),
    [
        ("3", "1", PressureSignal.STRONG_BUY),  # 0.5: reached counts
        ("4", "1", PressureSignal.STRONG_BUY),  # 0.6
        ("3", "2", PressureSignal.BUY),  # 0.2
        ("119", "81", PressureSignal.NEUTRAL),  # 0.19
        ("1", "1", PressureSignal.NEUTRAL),
        ("81", "119", PressureSignal.NEUTRAL),  # -0.19
        ("2", "3", PressureSignal.SELL),  # -0.2
        ("1", "3", PressureSignal.STRONG_SELL),  # -0.5
        ("1", "9", PressureSignal.STRONG_SELL),  # -0.8
    ],
)
def test_pressure_signal_boundaries(bid_qty: str, ask_qty: str, signal: PressureSignal) -> None:
    book = l2_book([("100", bid_qty)], [("101", ask_qty)])
    pressure = book_pressure(book, 1)
    assert pressure.signal is signal
    assert pressure.imbalance == imbalance(book, 1)


def test_default_thresholds() -> None:
    assert PressureThresholds() == PressureThresholds(D("0.2"), D("0.5"))


# -- level3 specifics ------------------------------------------------------------------------


def test_level3_zero_quantity_orders() -> None:
    """Level3 books may hold orders of quantity 0 (a level of them has no quantity)."""
    book = L3Book("BTC/USD", 10)
    book.apply_snapshot(
        [L3Order("b1", D(100), D(0)), L3Order("b2", D(99), D(2))],
        [L3Order("a1", D(101), D(0)), L3Order("a2", D(102), D(0))],
    )
    ladder = depth_ladder(book, 5)
    assert [lv.cumulative_percent for lv in ladder.bids] == [D(0), D(100)]
    assert [lv.cumulative_percent for lv in ladder.asks] == [D(0), D(0)]
    metrics = imbalance_metrics(book, 5)
    assert metrics.ask_vwap is None and metrics.bid_vwap == D(99)
    assert metrics.ratio == 1
    assert microprice(book) == D("100.5")  # no weight at the top: the plain mid
    assert imbalance(book, 1) == 0
    sell = fill_estimate(book, "sell", 1)
    assert (sell.worst_price, sell.levels, sell.avg_price) == (D(99), 1, D(99))
    buy = fill_estimate(book, "buy", 1)
    assert (buy.filled_qty, buy.complete, buy.avg_price, buy.levels) == (D(0), False, None, 0)
    assert aggregate(book, 1).asks == (
        AggregatedLevel(D(101), D(0), 1),
        AggregatedLevel(D(102), D(0), 1),
    )


# -- walking deep books ----------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1, 7, 8, 9, 32, 33, 100, 150])
def test_fill_reads_as_deep_as_needed(kind: Kind, levels: int) -> None:
    bids = [(D(1000 - i), D(1)) for i in range(levels)]
    asks = [(D(1001 + i), D(1)) for i in range(levels)]
    book = l2_book(bids, asks, depth=1000) if kind == "l2" else l3_book(bids, asks, depth=1000)
    for qty in (D(1), D(levels), D(levels) - D("0.5"), D(levels + 1), D(10**6)):
        for side in ("buy", "sell"):
            check_fill(book, bids, asks, side, qty)


# -- not live, bad arguments -----------------------------------------------------------------

CALLS: dict[str, Callable[[Book], object]] = {
    "depth_ladder": lambda book: depth_ladder(book, 5),
    "aggregate": lambda book: aggregate(book, 1),
    "imbalance": lambda book: imbalance(book, 5),
    "imbalance_metrics": lambda book: imbalance_metrics(book, 5),
    "book_pressure": lambda book: book_pressure(book, 5),
    "microprice": microprice,
    "fill_estimate": lambda book: fill_estimate(book, "buy", 1),
}


@pytest.mark.parametrize("state", ["awaiting", "resyncing", "failed", "never"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_not_live_raises_like_the_book(kind: Kind, name: str, state: str) -> None:
    if state == "never":
        book: Book = OrderBook("BTC/USD", 10) if kind == "l2" else L3Book("BTC/USD", 10)
    else:
        book = make(kind, BIDS, ASKS)
        {
            "awaiting": book.mark_awaiting_snapshot,
            "resyncing": book.mark_resyncing,
            "failed": book.mark_failed,
        }[state]()
    with pytest.raises(BookNotLiveError) as own:
        book.bids(1)
    with pytest.raises(BookNotLiveError) as raised:
        CALLS[name](book)
    assert str(raised.value) == str(own.value)
    assert (raised.value.symbol, raised.value.state) == (own.value.symbol, own.value.state)
    # not live comes first, before any argument check
    with pytest.raises(BookNotLiveError):
        depth_ladder(book, 0)


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("thing", [None, "BTC/USD", {"bids": []}])
def test_not_a_book(name: str, thing: object) -> None:
    with pytest.raises(LocalProtocolError, match="book must be an OrderBook or an L3Book"):
        CALLS[name](thing)  # type: ignore[arg-type]


BAD_N = [0, -1, True, False, 1.0, "3", None, D(2)]


@pytest.mark.parametrize("n", BAD_N, ids=repr)
@pytest.mark.parametrize(
    "call", [depth_ladder, imbalance, imbalance_metrics, book_pressure], ids=lambda f: f.__name__
)
def test_bad_n(kind: Kind, call: Callable[[Book, Any], object], n: object) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        call(book, n)
    assert str(raised.value) == f"n must be an int >= 1, got {n!r}"


BAD_NUMBERS = [
    0,
    -1,
    "0",
    "-0",
    D("-0.5"),
    D(0),
    "abc",
    "",
    "NaN",
    "sNaN",
    "Infinity",
    D("-Infinity"),
    D("NaN"),
    True,
    None,
    [1],
    D("1E-65"),
    "1.00001E+64",
    10**65,
]


@pytest.mark.parametrize("tick", BAD_NUMBERS, ids=repr)
def test_bad_tick_size(kind: Kind, tick: object) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        aggregate(book, tick)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "tick_size must be a positive finite Decimal, int or numeric str between 1E-64 and "
        f"1E+64, got {tick!r}"
    )


@pytest.mark.parametrize("qty", BAD_NUMBERS, ids=repr)
def test_bad_fill_qty(kind: Kind, qty: object) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        fill_estimate(book, "buy", qty)  # type: ignore[arg-type]
    assert str(raised.value).startswith("qty must be a positive finite Decimal")
    assert str(raised.value).endswith(f"got {qty!r}")


def test_floats_are_refused_with_a_reason(kind: Kind) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        aggregate(book, 0.1)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "tick_size must be a positive finite Decimal, int or numeric str between 1E-64 and "
        "1E+64, not a float (floats are inexact: write Decimal('0.1') or '0.1'), got 0.1"
    )
    with pytest.raises(LocalProtocolError, match=r"^qty .* not a float"):
        fill_estimate(book, "sell", 1.5)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match=r"^weak .* not a float"):
        PressureThresholds(weak=0.1)  # type: ignore[arg-type]


def test_numbers_at_the_bounds_are_accepted(kind: Kind) -> None:
    book = make(kind, BIDS, ASKS)
    assert aggregate(book, "1E-64").bids[0].price == D("100.5")
    assert aggregate(book, D("1E+64")).asks == (
        AggregatedLevel(D("1E+64"), D("3.5"), 4 if kind == "l3" else 2),
    )
    assert fill_estimate(book, "buy", " 1E+64 ").filled_qty == D("3.5")  # Decimal() strips
    assert fill_estimate(book, "buy", 10**64).requested_qty == D(10**64)
    with localcontext() as context:
        context.traps[InvalidOperation] = False  # Decimal("abc") is then NaN, not an error
        with pytest.raises(LocalProtocolError, match="got 'abc'"):
            aggregate(book, "abc")


@pytest.mark.parametrize("side", ["bid", "ask", "BUY", "Sell", "", None, 1], ids=repr)
def test_bad_side(kind: Kind, side: object) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        fill_estimate(book, side, 1)  # type: ignore[arg-type]
    assert str(raised.value) == f"side must be 'buy' or 'sell', got {side!r}"


NUMBER = "a positive finite Decimal, int or numeric str between 1E-64 and 1E+64"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weak": 0}, f"weak must be {NUMBER}, got 0"),
        ({"weak": "-0.1"}, f"weak must be {NUMBER}, got '-0.1'"),
        ({"weak": 1, "strong": 1}, "weak must be > 0 and < 1, got 1"),
        ({"weak": "0.5"}, "strong must be > weak (0.5) and <= 1, got Decimal('0.5')"),
        ({"weak": "0.6"}, "strong must be > weak (0.6) and <= 1, got Decimal('0.5')"),
        ({"strong": "1.01"}, "strong must be > weak (0.2) and <= 1, got '1.01'"),
        ({"strong": None}, f"strong must be {NUMBER}, got None"),
        ({"strong": True}, f"strong must be {NUMBER}, got True"),
        ({"weak": "x"}, f"weak must be {NUMBER}, got 'x'"),
        ({"weak": "1E-65"}, f"weak must be {NUMBER}, got '1E-65'"),
    ],
)
def test_bad_thresholds(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError) as raised:
        PressureThresholds(**kwargs)
    assert str(raised.value) == message


def test_thresholds_must_be_thresholds(kind: Kind) -> None:
    book = make(kind, BIDS, ASKS)
    with pytest.raises(LocalProtocolError) as raised:
        book_pressure(book, 1, thresholds=(0.2, 0.5))  # type: ignore[arg-type]
    assert str(raised.value) == "thresholds must be a PressureThresholds, got tuple"


def test_values_are_frozen() -> None:
    book = l2_book(BIDS, ASKS)
    values: list[Any] = [
        depth_ladder(book, 1),
        depth_ladder(book, 1).bids[0],
        aggregate(book, 1),
        aggregate(book, 1).bids[0],
        imbalance_metrics(book, 1),
        book_pressure(book, 1),
        fill_estimate(book, "buy", 1),
        PressureThresholds(),
    ]
    for value in values:
        field = next(iter(getattr(value, "__struct_fields__", None) or value.__slots__))
        with pytest.raises(AttributeError):
            setattr(value, field, None)


# -- properties against the naive reference --------------------------------------------------


def _number(digits: int, exponent: int) -> Decimal:
    return D(digits).scaleb(exponent, WIDE)


@st.composite
def books(draw: st.DrawFn) -> tuple[list[Level], list[Level]]:
    """An uncrossed book: distinct prices (up to 15 digits), quantities of many decimals."""
    scale = draw(st.integers(-2, 10))
    ticks = draw(st.lists(st.integers(1, 10**12), min_size=0, max_size=30, unique=True))
    ticks.sort()
    split = draw(st.integers(0, len(ticks)))
    qty = st.builds(_number, st.integers(1, 10**18), st.integers(-20, 4))
    bids = [(_number(t, -scale), draw(qty)) for t in reversed(ticks[:split])]
    asks = [(_number(t, -scale), draw(qty)) for t in ticks[split:]]
    return bids, asks


@settings(max_examples=150)
@given(
    book=books(),
    n=st.integers(1, 35),
    tick=st.builds(_number, st.integers(1, 10**6), st.integers(-12, 6)),
    splits=st.lists(st.integers(1, 3), min_size=60, max_size=60),
)
def test_properties_against_the_reference(
    book: tuple[list[Level], list[Level]], n: int, tick: Decimal, splits: list[int]
) -> None:
    bids, asks = book
    for built in (l2_book(bids, asks), l3_book(bids, asks, splits=iter(splits))):
        check_all(built, bids, asks, n, tick)
        check_invariants(built, bids, asks, n, tick)


def check_invariants(
    book: Book, bids: list[Level], asks: list[Level], n: int, tick: Decimal
) -> None:
    ladder = depth_ladder(book, n)
    for ladder_side in (ladder.bids, ladder.asks):
        percents = [lv.cumulative_percent for lv in ladder_side]
        assert percents == sorted(percents)  # never decreasing
        if ladder_side:
            assert percents[-1] == 100  # exactly
            assert ladder_side[-1].cumulative_qty == add(*(lv.qty for lv in ladder_side))
    agg = aggregate(book, tick)
    for buckets, side in ((agg.bids, bids), (agg.asks, asks)):
        assert add(*(lv.qty for lv in buckets)) == add(*(q for _, q in side))
        assert all((Fraction(lv.price) / Fraction(tick)).denominator == 1 for lv in buckets)
        prices = [lv.price for lv in buckets]
        assert len(set(prices)) == len(prices)
    if agg.bids and agg.asks:
        assert agg.bids[0].price < agg.asks[0].price  # never cross
    ratio = imbalance(book, n)
    assert -1 <= ratio <= 1
    price = microprice(book)
    if price is not None:
        assert bids[0][0] <= price <= asks[0][0]


@settings(max_examples=100)
@given(
    book=books(),
    side=st.sampled_from(["buy", "sell"]),
    qty=st.builds(_number, st.integers(1, 10**18), st.integers(-22, 6)),
)
def test_fill_estimate_is_a_brute_force_walk(
    book: tuple[list[Level], list[Level]], side: str, qty: Decimal
) -> None:
    bids, asks = book
    check_fill(l2_book(bids, asks), bids, asks, side, qty)
    check_fill(l3_book(bids, asks, splits=iter([2, 1, 3] * 30)), bids, asks, side, qty)


# -- the real captures -----------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    channel: str | None = None
    type: str | None = None
    method: str | None = None
    result: dict[str, Any] | None = None


class _BookFrame(msgspec.Struct):
    type: str
    data: list[BookUpdate]


_envelope = msgspec.json.Decoder(_Envelope)
_book_frame = msgspec.json.Decoder(_BookFrame)
TICKS = {"BTC/USD": D("0.5"), "ETH/USD": D("0.25"), "XRP/USD": D("0.0002")}


@pytest.mark.parametrize("stem", ["btcusd_l2", "btcusd_sample", "ethusd_sample", "xrpusd_sample"])
def test_real_captures_every_message(real_capture_paths: dict[str, Path], stem: str) -> None:
    """After every book message, the live book's analytics equal the reference's, computed
    on a dict model of the book built from the frames. The functions of the top 10 levels
    are checked after every message, buckets and fills (which walk whole sides) after every
    4th, to keep the run near 2 s."""
    books: dict[str, OrderBook] = {}
    models: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    depth = 0
    checked = not_live = 0
    for line in real_capture_paths[stem].read_text().splitlines():
        text = json.loads(line)["text"]
        envelope = _envelope.decode(text)
        if envelope.method in ("subscribe", "unsubscribe") and envelope.result is not None:
            symbol = envelope.result["symbol"]
            if envelope.method == "subscribe":
                depth = envelope.result["depth"]
            elif symbol in books:
                books[symbol].mark_awaiting_snapshot()
                with pytest.raises(BookNotLiveError):
                    imbalance(books[symbol], 10)
                not_live += 1
            continue
        if envelope.channel != "book":
            continue
        frame = _book_frame.decode(text)
        for entry in frame.data:
            book = books.setdefault(entry.symbol, OrderBook(entry.symbol, depth))
            model = models.setdefault(entry.symbol, ({}, {}))
            if frame.type == "snapshot":
                book.apply_snapshot(entry.bids, entry.asks)
                model[0].clear()
                model[1].clear()
            else:
                book.apply_update(entry.bids, entry.asks)
            for side, levels in zip(model, (entry.bids, entry.asks), strict=True):
                for level in levels:
                    if level.qty:
                        side[level.price] = level.qty
                    else:
                        side.pop(level.price, None)
            bids = sorted(model[0].items(), reverse=True)[:depth]
            asks = sorted(model[1].items())[:depth]
            for side, kept in zip(model, (bids, asks), strict=True):
                for price in set(side) - {price for price, _ in kept}:
                    del side[price]
            assert book.is_live
            check_top(book, bids, asks, 10)
            if checked % 4 == 0:
                check_walks(book, bids, asks, TICKS[entry.symbol])
            checked += 1
    assert checked > 300
    assert (not_live > 0) is (stem == "btcusd_l2")  # unsubscribed: not live until a snapshot


# -- exact sums of L2 tokens: the compiled and the Python functions ----------------------------
#
# imbalance, microprice, imbalance_metrics and the fill estimate sum an L2 book's plain
# tokens as integers, with kraken_proto._speedups when it is built (else the Python twins
# in depth.py). Both are compared with a reference here and with each other; the book
# functions are checked against the naive reference with the Python twins swapped in, and on
# books whose tokens take the Decimal path (exponents, quotes, too many digits).

SUMS = ("_sum_qty", "_sum_notional", "_micro_parts")
PYTHON_SUMS = (
    depth_module._sum_qty_py,
    depth_module._sum_notional_py,
    depth_module._micro_parts_py,
)
COMPILED_SUMS = depth_module._compiled_sums()


@contextmanager
def python_sums() -> Iterator[None]:
    """The book functions use the Python twins inside the block."""
    saved = [getattr(depth_module, name) for name in SUMS], fill_module._sum_notional
    for name, function in zip(SUMS, PYTHON_SUMS, strict=True):
        setattr(depth_module, name, function)
    fill_module._sum_notional = depth_module._sum_notional_py
    try:
        yield
    finally:
        for name, function in zip(SUMS, saved[0], strict=True):
            setattr(depth_module, name, function)
        fill_module._sum_notional = saved[1]


def each_sums(check: Callable[[], None]) -> None:
    """``check()`` with the sums the module chose (compiled if built), then with Python's."""
    check()
    with python_sums():
        check()


def value(token: bytes) -> Fraction:
    return Fraction(_decode_decimal(token))


def decimals(token: bytes) -> int:
    return len(token.partition(b".")[2])


def ref_sum_qty(levels: list[tuple[bytes, bytes]], n: int) -> tuple[int, int]:
    used = levels[:n]
    scale = max((decimals(qty) for _, qty in used), default=0)
    total = sum((value(qty) for _, qty in used), Fraction(0)) * 10**scale
    assert total.denominator == 1
    return int(total), scale


def ref_sum_notional(
    levels: list[tuple[bytes, bytes]], n: int, limit: tuple[int, int] | None = None
) -> tuple[int, int, int, int, int]:
    used = []
    running = Fraction(0)
    for price, qty in levels[:n]:
        running += value(qty)
        if limit is not None and running >= Fraction(*limit):
            break
        used.append((price, qty))
    qty_total, qty_scale = ref_sum_qty(used, len(used))
    scale = max((decimals(p) + decimals(q) for p, q in used), default=0)
    notional = sum((value(p) * value(q) for p, q in used), Fraction(0)) * 10**scale
    assert notional.denominator == 1
    return len(used), qty_total, qty_scale, int(notional), scale


def ref_micro_parts(bid: tuple[bytes, bytes], ask: tuple[bytes, bytes]) -> tuple[int, int, int]:
    (bp, bq), (ap, aq) = bid, ask
    exponent = max(decimals(bq), decimals(aq)) - max(
        decimals(bp) + decimals(aq), decimals(ap) + decimals(bq)
    )
    price = (value(bp) * value(aq) + value(ap) * value(bq)) / (value(bq) + value(aq))
    denominator = int((value(bq) + value(aq)) * 10 ** max(decimals(bq), decimals(aq)))
    numerator = price * denominator / Fraction(10) ** exponent
    assert numerator.denominator == 1
    return int(numerator), denominator, exponent


def plain_text(digits: int, places: int) -> bytes:
    text = str(digits).rjust(places + 1, "0")
    return (text[:-places] + "." + text[-places:] if places else text).encode()


plain_tokens = st.builds(
    plain_text,
    st.one_of(st.integers(0, 10**8), st.integers(0, 10**19), st.integers(0, 10**45)),
    st.integers(0, 30),
)
other_tokens = st.sampled_from(
    [b"1E-3", b"1.5e2", b'"0.5"', b"-1", b"-0.5", b".5", b"5.", b"", b"1.2.3", b"0x1", b"1_0"]
)
any_tokens = st.one_of(plain_tokens, plain_tokens, plain_tokens, other_tokens)
token_levels = st.lists(st.tuples(any_tokens, any_tokens), max_size=12)
plain_levels = st.lists(st.tuples(plain_tokens, plain_tokens), max_size=12)


def check_sums(compiled: Any, python: Any, reference: Any, args: tuple[Any, ...]) -> None:
    """The Python twin answers exactly as the reference (None for tokens that are not
    plain); the compiled one the same, or None (tokens or sums too wide for it)."""
    want = python(*args)
    try:
        assert want == reference(*args)
    except (ValueError, ZeroDivisionError, AssertionError, msgspec.ValidationError):
        assert want is None
    if COMPILED_SUMS is not None:
        got = compiled(*args)
        assert got is None or got == want


# The three sum kernels below are cheap to explore (short level lists of byte tokens, every
# branch reached in the first few dozen derandomized examples): 80 examples in CI, the full
# 300 under HYPOTHESIS_PROFILE=thorough (tests/budget.py).
@sized(80, 300)
@given(levels=token_levels, n=st.integers(0, 14))
def test_sum_qty_compiled_and_python(levels: list[tuple[bytes, bytes]], n: int) -> None:
    compiled = COMPILED_SUMS[0] if COMPILED_SUMS else None
    check_sums(compiled, depth_module._sum_qty_py, ref_sum_qty, (levels, n))


@sized(80, 300)
@given(
    levels=st.one_of(plain_levels, token_levels),
    n=st.integers(0, 14),
    limit=st.one_of(
        st.none(), st.tuples(st.integers(1, 10**12), st.integers(1, 10**6)), st.just((1, 1))
    ),
    split=st.integers(0, 14),
)
def test_sum_notional_compiled_and_python(
    levels: list[tuple[bytes, bytes]], n: int, limit: tuple[int, int] | None, split: int
) -> None:
    compiled = COMPILED_SUMS[1] if COMPILED_SUMS else None
    check_sums(compiled, depth_module._sum_notional_py, ref_sum_notional, (levels, n, limit))
    # The sums of the first levels continued with the others: the sums of all of them.
    whole = depth_module._sum_notional_py(levels, n, limit)
    first = min(split, n)
    for sum_notional in filter(None, [depth_module._sum_notional_py, compiled]):
        head = sum_notional(levels[:first], first, limit)
        if head is None or head[0] < first:
            continue
        rest = sum_notional(levels[first:], n - first, limit, head[1:])
        if rest is not None:
            assert (head[0] + rest[0], *rest[1:]) == whole


@sized(80, 300)
@given(bid=st.tuples(any_tokens, any_tokens), ask=st.tuples(any_tokens, any_tokens))
def test_micro_parts_compiled_and_python(
    bid: tuple[bytes, bytes], ask: tuple[bytes, bytes]
) -> None:
    compiled = COMPILED_SUMS[2] if COMPILED_SUMS else None
    check_sums(compiled, depth_module._micro_parts_py, ref_micro_parts, (bid, ask))


def test_sums_by_hand() -> None:
    levels = [(b"100.5", b"1.50"), (b"100", b"2"), (b"99.25", b"0.00005100")]
    for sum_qty, sum_notional, micro_parts in filter(None, [PYTHON_SUMS, COMPILED_SUMS]):
        assert sum_qty(levels, 3) == (350005100, 8)  # 3.50005100
        assert sum_qty(levels, 10**30) == sum_qty(levels, 3)
        assert sum_qty(levels, 1) == (150, 2)
        assert sum_qty([], 5) == sum_qty(levels, 0) == (0, 0)
        # 1.50 * 100.5 + 2 * 100 + 0.00005100 * 99.25 = 350.75506175 (scale 10)
        assert sum_notional(levels, 3) == (3, 350005100, 8, 3507550617500, 10)
        # up to 3.500051: 1.50 and 2 taken whole (3.50); the next level reaches it exactly
        assert sum_notional(levels, 3, (3500051, 10**6)) == (2, 350, 2, 350750, 3)
        assert sum_notional(levels, 3, (3500052, 10**6)) == sum_notional(levels, 3)
        assert sum_notional(levels, 3, (7, 2)) == (1, 150, 2, 150750, 3)  # 3.5 reached
        assert sum_notional(levels, 3, (3, 1)) == (1, 150, 2, 150750, 3)
        assert sum_notional(levels, 3, (1, 1)) == (0, 0, 0, 0, 0)
        assert sum_notional(levels, 3, (4, 1)) == sum_notional(levels, 3)
        # (100 * 1 + 101 * 3) / 4 = 100.75: 403 / 4, exponent 0
        assert micro_parts((b"100", b"3"), (b"101", b"1")) == (403, 4, 0)
        # (100.5 * 2 + 101 * 1.50) / (1.50 + 2) = 352.50 / 3.50: both at scale 2
        assert micro_parts((b"100.5", b"1.50"), (b"101", b"2")) == (35250, 350, 0)
        # (100.5 * 2 + 101.25 * 1) / (1 + 2) = 302.25 / 3: 30225 * 10**-2 / 3
        assert micro_parts((b"100.5", b"1"), (b"101.25", b"2")) == (30225, 3, -2)
        assert micro_parts((b"1", b"0"), (b"2", b"0.0")) is None  # no weight at all
        assert sum_qty([(b"1", b"1E-3")], 1) is None
        assert sum_notional([(b"1E+2", b"1")], 1) is None
        assert sum_notional([(b"1E+2", b"1")], 1, (1, 2)) == (0, 0, 0, 0, 0)  # price unread
        assert micro_parts((b"1", b'"1"'), (b"2", b"1")) is None
    for sum_qty, sum_notional, _ in [PYTHON_SUMS]:
        with pytest.raises(ValueError, match="n must be >= 0"):
            sum_qty(levels, -1)
        with pytest.raises(ValueError, match="n must be >= 0"):
            sum_notional(levels, -1)


WIDE_QTY = b"123456789012345678901234567890.123456789"  # 39 digits


@pytest.mark.skipif(COMPILED_SUMS is None, reason="kraken_proto._speedups is not built")
def test_compiled_sums_give_up_beyond_a_machine_word() -> None:
    assert COMPILED_SUMS is not None
    sum_qty, sum_notional, micro_parts = COMPILED_SUMS
    wide = [(b"1", WIDE_QTY)]
    assert sum_qty(wide, 1) is None
    assert depth_module._sum_qty_py(wide, 1) == (123456789012345678901234567890123456789, 9)
    many = [(b"1", b"9999999999999999999")] * 40  # 19 digits each: the total is too wide
    assert sum_qty(many, 40) == (399999999999999999960, 0) or sum_qty(many, 40) is None
    assert sum_qty([(b"1", b"1"), (b"1", b"1." + b"0" * 60)], 2) is None  # 10**60
    assert sum_qty([(b"1", b"0.5"), (b"1", b"0." + b"0" * 60)], 2) is None
    assert sum_notional([(b"9999999999999999999", b"9999999999999999999")] * 4, 4) is None
    assert sum_notional([(b"1", b"1")], 1, (10**30, 1)) is None  # the limit is too wide
    assert sum_notional([(b"1", b"1")], 1, (1, 10**30)) is None
    assert sum_notional([(b"1", b"1")], 1, None, (10**30, 0, 0, 0)) is None  # too wide a start
    assert sum_notional([(b"1", b"1")], 1, (10**30, 1), (0, 0, 0, 0)) is None
    big = b"9999999999999999999"
    assert micro_parts((big, big), (big + b".5", big)) is None


@pytest.mark.skipif(COMPILED_SUMS is None, reason="kraken_proto._speedups is not built")
def test_compiled_sums_check_their_arguments() -> None:
    assert COMPILED_SUMS is not None
    sum_qty, sum_notional, micro_parts = COMPILED_SUMS
    level = (b"1", b"1")
    bad_calls: list[tuple[type[Exception], str, Callable[[], object]]] = [
        (TypeError, "levels must be a list or tuple", lambda: sum_qty(iter([level]), 1)),
        (TypeError, "n must be an int", lambda: sum_qty([level], 1.0)),
        (TypeError, "n must be an int", lambda: sum_notional([level], None)),
        (ValueError, "n must be >= 0", lambda: sum_qty([level], -1)),
        (ValueError, "n must be >= 0", lambda: sum_qty([level], -(10**30))),
        (TypeError, r"a level must be a \(price, qty\) tuple", lambda: sum_qty([[b"1", b"1"]], 1)),
        (TypeError, r"a level must be a \(price, qty\) tuple", lambda: sum_qty([(b"1",)], 1)),
        (TypeError, "a number token must be bytes", lambda: sum_qty([(b"1", "1")], 1)),
        (TypeError, "a number token must be bytes", lambda: sum_notional([("1", b"1")], 1)),
        (TypeError, "a number token must be bytes", lambda: sum_notional([(b"1", 1)], 1)),
        (TypeError, "limit must be None or a", lambda: sum_notional([level], 1, 1)),
        (TypeError, "limit must be None or a", lambda: sum_notional([level], 1, (1, 2.0))),
        (TypeError, "limit must be None or a", lambda: sum_notional([level], 1, (1,))),
        (ValueError, "limit must be two ints > 0", lambda: sum_notional([level], 1, (0, 1))),
        (ValueError, "limit must be two ints > 0", lambda: sum_notional([level], 1, (1, -5))),
        (ValueError, "limit", lambda: sum_notional([level], 1, (1, -(10**30)))),
        (TypeError, "takes 2 arguments", lambda: sum_qty([level])),  # type: ignore[call-arg]
        (TypeError, "takes 2 to 4", lambda: sum_notional([level])),  # type: ignore[call-arg]
        (TypeError, "start must be None or a", lambda: sum_notional([level], 1, None, (1, 2))),
        (TypeError, "start must be None or a", lambda: sum_notional([], 1, None, (0, 0, 0, 0.0))),
        (ValueError, "start must be ints >= 0", lambda: sum_notional([], 1, None, (0, -1, 0, 0))),
        (
            ValueError,
            "start must be ints >= 0",
            lambda: sum_notional([], 1, None, (-(10**30),) * 4),
        ),
        (TypeError, "takes 2 arguments", lambda: micro_parts(level)),  # type: ignore[call-arg]
        (TypeError, r"a level must be a \(price, qty\) tuple", lambda: micro_parts(level, [1])),
        (TypeError, "a number token must be bytes", lambda: micro_parts(level, (b"1", None))),
    ]
    for error, message, call in bad_calls:
        with pytest.raises(error, match=message):
            call()
    assert sum_qty((level, level), True) == (1, 0)  # a tuple of levels, a bool n: ints
    assert sum_notional([level], 1, None) == (1, 1, 0, 1, 0)


def test_compiled_sums_are_chosen_with_the_compiled_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("kraken_proto._speedups")
    fake.sum_qty = fake.sum_notional = fake.micro_parts = len  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kraken_proto._speedups", fake)
    monkeypatch.setattr(depth_module, "ACCELERATED", True)
    assert depth_module._compiled_sums() == (len, len, len)
    del fake.micro_parts  # type: ignore[attr-defined]
    assert depth_module._compiled_sums() is None  # built before these existed
    monkeypatch.setattr(depth_module, "ACCELERATED", False)
    fake.micro_parts = len  # type: ignore[attr-defined]
    assert depth_module._compiled_sums() is None  # KRAKEN_WS_PURE_PYTHON, or not built


@settings(max_examples=60)
@given(
    book=books(),
    n=st.integers(1, 35),
    tick=st.builds(_number, st.integers(1, 10**6), st.integers(-12, 6)),
)
def test_properties_with_the_python_sums(
    book: tuple[list[Level], list[Level]], n: int, tick: Decimal
) -> None:
    bids, asks = book
    built = l2_book(bids, asks)
    with python_sums():
        check_all(built, bids, asks, n, tick)


def raw_book(bids: list[tuple[bytes, bytes]], asks: list[tuple[bytes, bytes]]) -> OrderBook:
    book = OrderBook("BTC/USD", 100)
    book.apply_snapshot(
        [BookLevel(msgspec.Raw(p), msgspec.Raw(q)) for p, q in bids],
        [BookLevel(msgspec.Raw(p), msgspec.Raw(q)) for p, q in asks],
    )
    return book


def decoded(levels: list[tuple[bytes, bytes]]) -> list[Level]:
    return [(_decode_decimal(p), _decode_decimal(q)) for p, q in levels]


TOKEN_BOOKS = {
    "exponent quantities": (
        [(b"100.5", b"1.5E-3"), (b"100", b"2"), (b"99", b"25e-1")],
        [(b"101", b"0.5"), (b"102.25", b"3E+1")],
    ),
    "quoted numbers": (
        [(b'"100.5"', b'"1.5"'), (b"100", b"2")],
        [(b"101", b'"0.5"'), (b'"102.25"', b"3")],
    ),
    "exponent prices": (
        [(b"1.005E+2", b"1.5"), (b"100", b"2")],
        [(b"1.01e2", b"0.5"), (b"102.25", b"3")],
    ),
    "wide quantities": (
        [(b"100.5", WIDE_QTY), (b"100", b"9999999999999999999")],
        [(b"101", b"0.5"), (b"102.25", b"9999999999999999999.5")],
    ),
    "mixed decimals": (
        [(b"100.50", b"1.5"), (b"100", b"2.000"), (b"99.125", b"7")],
        [(b"101", b"0.50"), (b"102.2", b"3"), (b"103.25", b"0.00001")],
    ),
    "more decimals bid": ([(b"100", b"1.25")], [(b"101", b"2.5")]),
    "more decimals ask": ([(b"100", b"1.5")], [(b"101", b"2.25")]),
}


@pytest.mark.parametrize("name", sorted(TOKEN_BOOKS))
def test_books_of_any_tokens_against_the_reference(name: str) -> None:
    """Tokens that are not plain, or too wide for the compiled sums, take the Decimal path;
    the results are the reference's all the same."""
    bid_tokens, ask_tokens = TOKEN_BOOKS[name]
    book = raw_book(bid_tokens, ask_tokens)
    bids, asks = decoded(bid_tokens), decoded(ask_tokens)

    def check() -> None:
        for n in (1, 2, 3, 10):
            check_top(book, bids, asks, n)
        check_walks(book, bids, asks, D("0.5"))
        for qty in (D("0.25"), D("1.5"), D("3.5"), D("1E+40")):
            for side in ("buy", "sell"):
                check_fill(book, bids, asks, side, qty)

    each_sums(check)


def test_results_keep_the_digits_of_the_decimal_arithmetic() -> None:
    """The integer sums give each result the exponent Decimal arithmetic would: not only
    equal values, the same digits."""
    book = raw_book(
        [(b"100.50", b"1.50"), (b"100", b"2")],
        [(b"101.0", b"0.50000000"), (b"102", b"3")],
    )
    zeros = raw_book([(b"100.00", b"1.0")], [(b"102.00", b"1.0")])

    def check() -> None:
        metrics = imbalance_metrics(book, 2)
        assert str(metrics.bid_qty) == "3.50"
        assert str(metrics.ask_qty) == "3.50000000"
        assert str(metrics.ratio) == "0"
        assert str(metrics.bid_vwap) == "100.2142857142857142857142857"
        assert str(metrics.ask_vwap) == "101.8571428571428571428571429"
        assert str(imbalance(book, 1)) == "0.5"  # (1.50 - 0.50000000) / 2.00000000
        # (100.50 * 0.50000000 + 101.0 * 1.50) / 2.00000000 = 201.7500000000 / 2.00000000
        assert str(microprice(book)) == "100.875"
        fill = fill_estimate(book, "buy", D("0.5"))
        assert (str(fill.notional), str(fill.filled_qty)) == ("50.50", "0.5")
        fill = fill_estimate(book, "buy", D("1E+1"))
        assert str(fill.notional) == "356.500000000"
        assert str(fill.filled_qty) == "3.50000000"
        assert str(fill_estimate(book, "sell", 1).notional) == "100.50"
        # exact quotients keep their ideal exponent: trailing zeros
        assert str(microprice(zeros)) == "101.00"  # 202.000 / 2.0
        metrics = imbalance_metrics(zeros, 1)
        assert (str(metrics.bid_vwap), str(metrics.ask_vwap)) == ("100.00", "102.00")
        fill = fill_estimate(zeros, "buy", D("1E+1"))
        assert (str(fill.notional), str(fill.avg_price)) == ("102.000", "102.00")

    each_sums(check)


def test_the_token_cache_forgets_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(depth_module, "_KNOWN_MAX", 3)
    monkeypatch.setattr(depth_module, "_KNOWN", {})
    assert depth_module._decode([b"1.5", b"2"]) == [D("1.5"), D(2)]
    assert depth_module._decode([b"1.5", b"2"]) == [D("1.5"), D(2)]  # remembered
    assert depth_module._value(b"3") == D(3)
    assert len(depth_module._KNOWN) == 3
    assert depth_module._value(b"4") == D(4)  # full: forgotten first
    assert {b"4": D(4)} == depth_module._KNOWN
    assert depth_module._decode([b"5", b"6", b"7"]) == [D(5), D(6), D(7)]
    assert depth_module._decode([b"8"]) == [D(8)]
    assert {b"8": D(8)} == depth_module._KNOWN
    assert str(depth_module._value(b"1.50")) == "1.50"  # the token's own digits


class _SubBook(OrderBook):
    """A subclass: the book functions take their general path for it."""

    __slots__ = ()


@pytest.mark.parametrize("sides", [(BIDS, ASKS), (BIDS, []), ([], ASKS), ([], [])])
def test_a_subclass_of_order_book_gets_the_same_answers(
    sides: tuple[list[tuple[str, str]], list[tuple[str, str]]],
) -> None:
    bid_texts, ask_texts = sides
    book = _SubBook("BTC/USD", 10)
    book.apply_snapshot(
        [BookLevel.of(p, q) for p, q in bid_texts], [BookLevel.of(p, q) for p, q in ask_texts]
    )
    bids = [(D(p), D(q)) for p, q in bid_texts]
    asks = [(D(p), D(q)) for p, q in ask_texts]
    each_sums(lambda: check_all(book, bids, asks, 2, D("0.5")))
