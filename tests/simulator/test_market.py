"""The simulator's market model: determinism, book shape, trades, statistics, depth deltas."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal

import pytest

from kraken_proto.checksum import book_checksum
from kraken_proto.simulator.market import (
    CANDLES_KEPT,
    DAY,
    DEPTHS,
    INTERVALS,
    RECENT_TRADES,
    Level,
    MarketModel,
    MarketStep,
)

START = 1_785_542_400.0  # 2026-08-01T00:00:00Z


def btc(seed: int = 1, **kwargs: object) -> MarketModel:
    options: dict[str, object] = {
        "rng": random.Random(seed),
        "price_precision": 1,
        "qty_precision": 8,
        "mid": Decimal("63000.0"),
        "tick": Decimal("0.1"),
        "start": START,
    }
    options.update(kwargs)
    return MarketModel("BTC/USD", **options)  # type: ignore[arg-type]


def doge(seed: int = 2) -> MarketModel:
    return MarketModel(
        "DOGE/USD",
        rng=random.Random(seed),
        price_precision=7,
        qty_precision=8,
        mid=Decimal("0.1523400"),
        tick=Decimal("0.0000001"),
        start=START,
    )


def run(market: MarketModel, steps: int, dt: float = 0.05) -> Iterator[MarketStep]:
    """Step lazily, so a loop sees the market as it is right after each step."""
    for i in range(steps):
        yield market.step(START + (i + 1) * dt)


def snapshot(market: MarketModel) -> tuple[list[Level], list[Level]]:
    return market.book()


def assert_precision(value: Decimal, precision: int) -> None:
    assert isinstance(value, Decimal)
    assert value.as_tuple().exponent == -precision, value


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_market_and_different_seed_differs() -> None:
    a, b, c = btc(7), btc(7), btc(8)
    for step_a, step_b in zip(run(a, 300), run(b, 300), strict=True):
        assert step_a.bids == step_b.bids
        assert step_a.asks == step_b.asks
        assert step_a.trades == step_b.trades
        assert step_a.depths == step_b.depths
        assert [step_a.book(d) for d in DEPTHS] == [step_b.book(d) for d in DEPTHS]
    assert snapshot(a) == snapshot(b)
    assert a.ticker() == b.ticker()
    assert a.checksum() == b.checksum()
    list(run(c, 300))
    assert snapshot(a) != snapshot(c)


# --------------------------------------------------------------------------- book shape


@pytest.mark.parametrize("factory", [btc, doge])
def test_never_crossed_precise_and_deep(factory: object) -> None:
    market = factory()  # type: ignore[operator]
    pp, qp = market.price_precision, market.qty_precision
    bids, asks = market.book()
    assert len(bids) >= 1000 and len(asks) >= 1000
    for step in run(market, 1500):
        bid, ask = market.best()
        assert bid.price < ask.price
        for level in (*step.bids, *step.asks):
            assert_precision(level.price, pp)
            assert_precision(level.qty, qp)
        for trade in step.trades:
            assert_precision(trade.price, pp)
            assert_precision(trade.qty, qp)
            assert trade.qty > 0
    bids, asks = market.book()
    assert 1000 <= len(bids) <= 1200 and 1000 <= len(asks) <= 1200
    assert [lv.price for lv in bids] == sorted((lv.price for lv in bids), reverse=True)
    assert [lv.price for lv in asks] == sorted(lv.price for lv in asks)
    assert bids[0].price < asks[0].price
    grid = market.tick
    for level in (*bids, *asks):
        assert_precision(level.price, pp)
        assert_precision(level.qty, qp)
        assert level.qty > 0
        assert level.price % grid == 0
    stats = market.ticker()
    for name in ("bid", "ask", "last", "vwap", "low", "high", "change"):
        assert_precision(getattr(stats, name), pp)
    for name in ("bid_qty", "ask_qty", "volume"):
        assert_precision(getattr(stats, name), qp)
    assert_precision(stats.change_pct, 2)
    for interval in INTERVALS:
        for candle in market.candles(interval):
            for name in ("open", "high", "low", "close", "vwap"):
                assert_precision(getattr(candle, name), pp)
            assert_precision(candle.volume, qp)


def test_levels_parameter_and_book_depth_argument() -> None:
    market = btc(levels=50)
    bids, asks = market.book()
    assert len(bids) == len(asks) == 150  # levels + half the slack at start
    list(run(market, 200))
    bids, asks = market.book(10)
    assert len(bids) == len(asks) == 10
    full_bids, full_asks = market.book()
    assert 50 <= len(full_bids) <= 250 and 50 <= len(full_asks) <= 250


def test_sides_stay_between_levels_and_max_levels() -> None:
    market = btc(3, levels=10, max_levels=12)
    sizes = set()
    for _ in range(300):
        market.step(START + 1)
        bids, asks = market.book()
        sizes |= {len(bids), len(asks)}
    # One more than max_levels right after a new level: trimmed at the next step.
    assert sizes <= {10, 11, 12, 13}
    assert len(sizes) > 1


def test_a_market_with_no_room_below_keeps_positive_bids() -> None:
    # One tick above zero: the bid side cannot grow below it, trades and cancels keep it.
    market = MarketModel(
        "TINY/USD",
        rng=random.Random(3),
        price_precision=4,
        qty_precision=2,
        mid=Decimal("0.0001"),
        tick=Decimal("0.0001"),
        levels=5,
        start=START,
        rate=120.0,
    )
    assert market.book()[0] == [market.best()[0]]
    short = 0
    for index in range(400):
        market.step(START + index * 0.05)
        bids, asks = market.book()
        short += len(bids) < 5  # no room for more ticks above zero
        assert bids and all(lv.price > 0 for lv in bids)
        assert asks[0].price > bids[0].price
        assert len(asks) >= 5
    assert short > 10


def test_checksum_matches_the_reference() -> None:
    market = doge()
    for _ in range(50):
        market.step(START + 1)
        bids, asks = market.book(10)
        pairs = ([(lv.price, lv.qty) for lv in asks], [(lv.price, lv.qty) for lv in bids])
        assert market.checksum() == book_checksum(pairs[0], pairs[1], 7, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tick": Decimal("0.05")}, "whole number"),
        ({"tick": Decimal("0")}, "whole number"),
        ({"mid": Decimal("0.05")}, "below one tick"),
        ({"levels": 0}, "levels"),
        ({"levels": 10, "max_levels": 9}, "max_levels"),
        ({"spread": 0}, "spread"),
        ({"rate": 0.0}, "rate"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        btc(**kwargs)


# --------------------------------------------------------------------------- trades


def test_trades_consume_the_best_levels_of_the_other_side() -> None:
    market = btc(5)
    book = {"bid": {lv.price: lv.qty for lv in market.book()[0]}}
    book["ask"] = {lv.price: lv.qty for lv in market.book()[1]}
    trade_ids: list[int] = []
    seen = 0
    for step in run(market, 1500):
        trade_ids += [trade.trade_id for trade in step.trades]
        for side, changes, taker in (("bid", step.bids, "sell"), ("ask", step.asks, "buy")):
            levels = book[side]
            pending = [trade for trade in step.trades if trade.side == taker]
            for change in changes:
                before = levels.get(change.price, Decimal(0))
                if pending and change.price == pending[0].price:
                    trade = pending[0]
                    if before - change.qty == trade.qty:
                        # The taker trades at the best price of the side it hits.
                        best = max(levels) if side == "bid" else min(levels)
                        assert trade.price == best
                        pending.pop(0)
                        seen += 1
                if change.qty == 0:
                    del levels[change.price]
                else:
                    levels[change.price] = change.qty
            assert pending == [], "every trade removed its quantity from the book"
    assert seen > 50
    assert trade_ids == list(range(trade_ids[0], trade_ids[0] + len(trade_ids)))
    assert {lv.price: lv.qty for lv in market.book()[0]} == book["bid"]
    assert {lv.price: lv.qty for lv in market.book()[1]} == book["ask"]


def test_recent_trades_ticker_and_candles_follow_the_trades() -> None:
    market = btc(9)
    recent = market.recent_trades()
    assert len(recent) == RECENT_TRADES  # the invented history fills it
    assert all(t.time < START for t in recent)
    before = market.ticker()
    candle_before = market.candle(1)
    assert candle_before is not None
    traded = [trade for step in run(market, 600) for trade in step.trades]
    assert traded
    after = market.ticker()
    assert after.trades == before.trades + len(traded)
    assert after.volume == before.volume + sum(t.qty for t in traded)
    assert after.last == traded[-1].price
    assert after.low <= after.last <= after.high
    assert after.low <= after.vwap <= after.high
    assert after.change == after.last - (after.last - after.change)
    assert market.recent_trades()[-1] == traded[-1]
    assert market.recent_trades() == (recent + traded)[-RECENT_TRADES:]
    bid, ask = market.best()
    assert (after.bid, after.bid_qty, after.ask, after.ask_qty) == (
        bid.price,
        bid.qty,
        ask.price,
        ask.qty,
    )
    for interval in INTERVALS:
        candle = market.candle(interval)
        assert candle is not None
        length = interval * 60
        assert candle.begin % length == 0
        assert candle.begin <= traded[-1].time < candle.begin + length
        assert candle.close == traded[-1].price
        inside = [t for t in traded if t.time >= candle.begin]
        assert candle.trades >= len(inside)
        assert candle.low <= candle.vwap <= candle.high
        assert len(market.candles(interval)) <= CANDLES_KEPT
    minute = market.candle(1)
    assert minute is not None
    in_minute = [t for t in traded if t.time >= minute.begin]
    if minute.begin >= START:
        assert minute.volume == sum(t.qty for t in in_minute)
        assert minute.trades == len(in_minute)


def test_ticker_window_forgets_trades_older_than_a_day() -> None:
    market = btc(7)
    list(run(market, 20))
    step = market.step(START + 2 * DAY)
    assert step.trades  # this seed trades in that step
    stats = market.ticker()
    assert stats.trades == len(step.trades)
    assert stats.volume == sum(t.qty for t in step.trades)
    assert stats.last == step.trades[-1].price
    assert stats.low == min(t.price for t in step.trades)
    assert stats.high == max(t.price for t in step.trades)
    # A later step with nothing expiring leaves the window as it is.
    later = market.step(START + 2 * DAY + 0.05)
    assert market.ticker().trades == stats.trades + len(later.trades)


def test_ticker_of_an_empty_window() -> None:
    market = btc(2, history=0)
    step = market.step(START + 2 * DAY)
    assert not step.trades  # this seed does not trade in that step
    stats = market.ticker()
    assert stats.trades == 0
    assert stats.volume == 0
    assert stats.low == stats.high == stats.last == stats.vwap == Decimal("63000.0")
    assert stats.change == 0
    assert str(stats.change_pct) == "0.00"
    assert market.recent_trades() == []
    assert market.candles(5) == []
    assert market.candle(5) is None


# --------------------------------------------------------------------------- depth deltas


def test_published_depth_updates_keep_truncated_books_equal_to_the_full_book() -> None:
    market = btc(11, levels=1000)
    full_bids, full_asks = market.book()
    books = {
        depth: (
            {lv.price: lv.qty for lv in full_bids[:depth]},
            {lv.price: lv.qty for lv in full_asks[:depth]},
        )
        for depth in DEPTHS
    }
    refills = 0
    for index in range(400):
        step = market.step(START + index * 0.05)
        for depth in DEPTHS:
            delta = step.book(depth)
            bids, asks = books[depth]
            if delta is None:
                assert depth not in step.depths
            else:
                assert depth in step.depths
                for levels, changes in ((bids, delta.bids), (asks, delta.asks)):
                    for change in changes:
                        if change.qty == 0:
                            del levels[change.price]
                            refills += 1
                        else:
                            levels[change.price] = change.qty
                for levels, best_first in ((bids, True), (asks, False)):
                    if len(levels) > depth:
                        for price in sorted(levels, reverse=best_first)[depth:]:
                            del levels[price]
            if index % 25 == 0 or index == 399:
                top_bids, top_asks = market.book(depth)
                assert sorted(bids.items(), reverse=True) == [(lv.price, lv.qty) for lv in top_bids]
                assert sorted(asks.items()) == [(lv.price, lv.qty) for lv in top_asks]
    assert refills > 100
