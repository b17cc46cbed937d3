"""TradesByPriceLevel: trades of a sliding window summed per price level.

Trades are real ``Trade`` events: trade frames fed through ``KrakenProtocol``. The clock is
a plain float. The property test compares every overlay with a brute-force sum over the
trades a naive reference still keeps.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, Inexact, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocols import events, open_proto

from kraken_proto import Trade
from kraken_proto.analytics import PriceLevelActivity, TradeOverlay, TradesByPriceLevel
from kraken_proto.errors import LocalProtocolError

D = Decimal


def trades(*entries: tuple[str, str, str, str]) -> list[Trade]:
    """``(symbol, side, price, qty)`` entries as the Trade events of one trade frame."""
    data = [
        {
            "symbol": symbol,
            "side": side,
            "price": json.loads(price),  # a JSON number, as Kraken sends it
            "qty": json.loads(qty),
            "ord_type": "limit",
            "trade_id": number,
            "timestamp": "2026-09-25T17:48:26.844359Z",
        }
        for number, (symbol, side, price, qty) in enumerate(entries, start=1)
    ]
    frame = json.dumps({"channel": "trade", "type": "update", "data": data})
    # json.dumps would write the numbers as floats: splice the exact tokens back in.
    for _, _, price, qty in entries:
        frame = frame.replace(f'"price": {json.loads(price)}', f'"price": {price}', 1)
        frame = frame.replace(f'"qty": {json.loads(qty)}', f'"qty": {qty}', 1)
    emitted = events(open_proto().receive_data(frame, 0.0), Trade)
    assert len(emitted) == len(entries)
    for event, (_, _, price, qty) in zip(emitted, entries, strict=True):
        assert (event.price, event.qty) == (D(price), D(qty))
    return emitted


def one(symbol: str, side: str, price: str, qty: str) -> Trade:
    (trade,) = trades((symbol, side, price, qty))
    return trade


def test_an_overlay_sums_each_price() -> None:
    tracker = TradesByPriceLevel(60.0)
    for now, trade in enumerate(
        trades(
            ("BTC/USD", "buy", "100.5", "0.5"),
            ("BTC/USD", "sell", "100.5", "0.25"),
            ("BTC/USD", "buy", "101.0", "2"),
            ("BTC/USD", "sell", "99.9", "0.00005100"),
            ("BTC/USD", "buy", "100.50", "1"),  # the same price, other digits
        )
    ):
        tracker.add_trade(trade, float(now))
    overlay = tracker.overlay("BTC/USD", 10.0)
    assert overlay.symbol == "BTC/USD"
    assert overlay.at == 10.0
    assert overlay.levels == (
        PriceLevelActivity(D("99.9"), 1, D(0), D("0.000051"), D("0.000051"), D("99.9")),
        PriceLevelActivity(D("100.5"), 3, D("1.5"), D("0.25"), D("1.75"), D("100.5")),
        PriceLevelActivity(D("101.0"), 1, D(2), D(0), D(2), D("101.0")),
    )
    assert overlay.point_of_control == D("101.0")
    assert (overlay.trade_count, overlay.buy_qty, overlay.sell_qty) == (5, D("3.5"), D("0.250051"))
    notional = D("100.5") * D("1.75") + D(202) + D("99.9") * D("0.000051")
    assert overlay.vwap == notional / D("3.750051")
    assert overlay.level(D("100.50")) == overlay.levels[1]
    assert overlay.level(D("100")) is None
    assert [t.trade_id for t in tracker.trades_at_price("BTC/USD", D("100.5"))] == [1, 2, 5]
    assert tracker.trades_at_price("BTC/USD", D("100")) == ()
    assert tracker.trades_at_price("ETH/USD", D("100")) == ()


def test_trades_older_than_the_window_fall_out() -> None:
    tracker = TradesByPriceLevel(1.5)
    first, second, third = trades(
        ("BTC/USD", "buy", "100.0", "1"),
        ("BTC/USD", "sell", "100.0", "2"),
        ("BTC/USD", "buy", "101.0", "3"),
    )
    tracker.add_trade(first, 0.0)
    tracker.add_trade(second, 1.0)
    tracker.add_trade(third, 1.5)  # stamp 0.0 == now - window: still kept
    assert tracker.overlay("BTC/USD", 1.5).trade_count == 3
    overlay = tracker.overlay("BTC/USD", 2.0)  # 0.0 < 0.5: the first falls out
    assert overlay.levels[0] == PriceLevelActivity(D("100.0"), 1, D(0), D(2), D(2), D("100.0"))
    assert tracker.trades_at_price("BTC/USD", D("100.0")) == (second,)
    assert tracker.trades_at_price("BTC/USD", D("100.0"), now=2.6) == ()  # 1.0 < 1.1
    overlay = tracker.overlay("BTC/USD", 3.1)
    assert overlay.levels == ()
    assert overlay.point_of_control is None
    assert overlay.vwap is None
    assert (overlay.trade_count, overlay.buy_qty, overlay.sell_qty) == (0, 0, 0)
    # What fell out stays out, whatever an earlier now says later.
    assert tracker.overlay("BTC/USD", 0.0).trade_count == 0
    assert tracker.overlay("BTC/USD", 0.0).at == 3.1


def test_a_clock_going_backwards_stamps_with_the_latest_time() -> None:
    tracker = TradesByPriceLevel(1.0)
    early, late = trades(("BTC/USD", "buy", "100.0", "1"), ("BTC/USD", "buy", "100.0", "2"))
    tracker.add_trade(early, 5.0)
    tracker.add_trade(late, 4.0)  # stamped 5.0, not 4.0
    assert tracker.overlay("BTC/USD", 6.0).trade_count == 2
    assert tracker.overlay("BTC/USD", 6.01).trade_count == 0
    assert tracker.overlay("BTC/USD", 1.0).at == 6.01  # stepping back: standing still


def test_tick_size_buckets_prices_and_makes_the_vwap_meaningful() -> None:
    tracker = TradesByPriceLevel(60, tick_size=D("0.25"))
    assert (tracker.window, tracker.tick_size) == (60.0, D("0.25"))
    for trade in trades(
        ("BTC/USD", "buy", "100.1", "1"),
        ("BTC/USD", "sell", "100.2", "3"),
        ("BTC/USD", "buy", "100.25", "1"),  # the lower edge belongs to its own bucket
        ("BTC/USD", "buy", "100.49", "1"),
    ):
        tracker.add_trade(trade, 0.0)
    overlay = tracker.overlay("BTC/USD", 0.0)
    low, high = overlay.levels
    assert (low.price, low.trade_count, low.buy_qty, low.sell_qty) == (D("100.00"), 2, 1, 3)
    assert low.vwap == (D("100.1") + 3 * D("100.2")) / 4 == D("100.175")
    assert (high.price, high.trade_count, high.vwap) == (D("100.25"), 2, D("100.37"))
    assert overlay.point_of_control == D("100.00")
    assert len(tracker.trades_at_price("BTC/USD", D("100.24"))) == 2
    # A tick that is no power of ten: buckets [99, 102), [102, 105).
    coarse = TradesByPriceLevel(60, tick_size=D(3))
    coarse.add_trade(one("BTC/USD", "buy", "100.5", "1"), 0.0)
    coarse.add_trade(one("BTC/USD", "buy", "102", "1"), 0.0)
    assert [level.price for level in coarse.overlay("BTC/USD", 0.0).levels] == [99, 102]


def test_the_point_of_control_tie_rules() -> None:
    tracker = TradesByPriceLevel(60)
    for trade in trades(
        ("BTC/USD", "buy", "102.0", "2"),
        ("BTC/USD", "buy", "101.0", "1"),
        ("BTC/USD", "sell", "101.0", "1"),  # 101.0: volume 2 in two trades
        ("BTC/USD", "buy", "103.0", "2"),
    ):
        tracker.add_trade(trade, 0.0)
    # Volume 2 at 101, 102 and 103: 101 has more trades.
    assert tracker.overlay("BTC/USD", 0.0).point_of_control == D("101.0")
    even = TradesByPriceLevel(60)
    for trade in trades(("BTC/USD", "buy", "103.0", "2"), ("BTC/USD", "sell", "102.0", "2")):
        even.add_trade(trade, 0.0)
    # Same volume, same count: the lower price.
    assert even.overlay("BTC/USD", 0.0).point_of_control == D("102.0")


def test_symbols_are_kept_apart_and_expire_clears_them() -> None:
    tracker = TradesByPriceLevel(10)
    btc, eth = trades(("BTC/USD", "buy", "100.0", "1"), ("ETH/USD", "sell", "100.0", "5"))
    tracker.add_trade(btc, 0.0)
    tracker.add_trade(eth, 8.0)
    assert tracker.overlay("BTC/USD", 9.0).sell_qty == 0
    assert tracker.overlay("ETH/USD", 9.0).buy_qty == 0
    assert tracker.overlay("XRP/USD", 9.0) == TradeOverlay(
        "XRP/USD", 9.0, (), None, 0, D(0), D(0), None
    )
    tracker.expire(12.0)  # BTC's trade goes (and the symbol with it), ETH's stays
    assert tracker.trades_at_price("BTC/USD", D("100.0")) == ()
    assert tracker.trades_at_price("ETH/USD", D("100.0")) == (eth,)
    assert list(tracker._symbols) == ["ETH/USD"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TradesByPriceLevel(0), "window must be a finite number of seconds > 0"),
        (lambda: TradesByPriceLevel(float("inf")), "window must be"),
        (lambda: TradesByPriceLevel(True), "window must be"),
        (lambda: TradesByPriceLevel("60"), "window must be"),
        (
            lambda: TradesByPriceLevel(60, tick_size=D(0)),
            "tick_size must be None or a positive finite",
        ),
        (lambda: TradesByPriceLevel(60, tick_size=D("NaN")), "tick_size must be"),
        (lambda: TradesByPriceLevel(60, tick_size=D("sNaN")), "tick_size must be"),
        (lambda: TradesByPriceLevel(60, tick_size=0.5), "tick_size must be .* not a float"),  # type: ignore[arg-type]
        (lambda: TradesByPriceLevel(60, tick_size="1E+65"), "between 1E-64 and 1E"),
    ],
)
def test_bad_construction_names_the_argument(make: Any, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        make()


def test_bad_calls_name_the_argument() -> None:
    tracker = TradesByPriceLevel(60)
    trade = one("BTC/USD", "buy", "100.0", "1")
    cases: list[tuple[Any, str]] = [
        (lambda: tracker.add_trade(trade, float("nan")), "now must be a finite number of seconds"),
        (lambda: tracker.add_trade(trade, "1"), "now must be"),
        (lambda: tracker.add_trade({"price": 1}, 1.0), "trade must be a Trade event"),
        (
            lambda: tracker.add_trade(Trade("BTC/USD", "b", D(1), D(1), "limit", 1, "t"), 1.0),
            "trade.side must be 'buy' or 'sell'",
        ),
        (
            lambda: tracker.add_trade(Trade("BTC/USD", "buy", D(0), D(1), "limit", 1, "t"), 1.0),
            "trade.price and trade.qty must be finite",
        ),
        (
            lambda: tracker.add_trade(
                Trade("BTC/USD", "sell", D(1), D("NaN"), "limit", 1, "t"), 1.0
            ),
            "trade.price and trade.qty",
        ),
        (
            lambda: tracker.trades_at_price("BTC/USD", 100.0),
            r"price must be a positive finite Decimal, int or numeric str below 1E\+256, not a",
        ),
        (lambda: tracker.trades_at_price("BTC/USD", D(-1)), "price must be"),
        (lambda: tracker.overlay("BTC/USD", float("inf")), "now must be"),
        (lambda: tracker.expire(None), "now must be"),
    ]
    tracker.add_trade(trade, 0.0)
    for make, match in cases:
        with pytest.raises(LocalProtocolError, match=match):
            make()
    with pytest.raises(LocalProtocolError, match="now must be"):
        tracker.trades_at_price("BTC/USD", D(100), now=True)
    assert tracker.overlay("BTC/USD", 1).trade_count == 1  # an int now is fine


# ----------------------------------------------------------------------------- properties

entry = st.tuples(
    st.floats(0, 2, allow_nan=False),  # seconds since the previous call (negative: see below)
    st.booleans(),  # the clock jumps back by this step instead
    st.sampled_from(["BTC/USD", "ETH/USD"]),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["99.5", "99.75", "100.0", "100.00", "100.1", "101.3", "102"]),
    st.sampled_from(["0.00005100", "0.5", "1", "2.25", "3"]),
    st.booleans(),  # query an overlay after this trade
)


def brute_force(
    kept: list[tuple[float, Trade]], symbol: str, tick: Decimal | None
) -> dict[Decimal, tuple[int, Decimal, Decimal, Decimal]]:
    """Per level: count, buy qty, sell qty, notional, over the kept trades of ``symbol``."""
    sums: dict[Decimal, tuple[int, Decimal, Decimal, Decimal]] = {}
    for _, trade in kept:
        if trade.symbol != symbol:
            continue
        key = trade.price if tick is None else (trade.price // tick) * tick
        count, buy, sell, notional = sums.get(key, (0, D(0), D(0), D(0)))
        if trade.side == "buy":
            buy += trade.qty
        else:
            sell += trade.qty
        sums[key] = (count + 1, buy, sell, notional + trade.price * trade.qty)
    return sums


@given(
    entries=st.lists(entry, min_size=1, max_size=25),
    window=st.sampled_from([0.5, 1.0, 3.0]),
    tick=st.sampled_from([None, D("0.25"), D("1"), D("0.3")]),
)
def test_overlays_equal_a_brute_force_sum_over_the_kept_trades(
    entries: list[tuple[float, bool, str, str, str, str, bool]],
    window: float,
    tick: Decimal | None,
) -> None:
    made = trades(*[(symbol, side, price, qty) for _, _, symbol, side, price, qty, _ in entries])
    tracker = TradesByPriceLevel(window, tick_size=tick)
    reference: list[tuple[float, Trade]] = []  # (stamp, trade), every trade ever added
    cutoff: dict[str, float] = {}  # per symbol: the latest cutoff applied
    now = 0.0
    clock = -math.inf  # the latest now: a clock stepping back stands still
    for (step, back, symbol, _, _, _, query), trade in zip(entries, made, strict=True):
        now = now - step if back else now + step
        clock = max(clock, now)
        tracker.add_trade(trade, now)
        reference.append((clock, trade))
        cutoff[symbol] = max(cutoff.get(symbol, -math.inf), clock - window)
        if not query:
            continue
        for name in ("BTC/USD", "ETH/USD"):
            overlay = tracker.overlay(name, now)
            assert overlay.at == clock
            cutoff[name] = max(cutoff.get(name, -math.inf), clock - window)
            kept = [(s, t) for s, t in reference if s >= cutoff[name]]
            sums = brute_force(kept, name, tick)
            assert [level.price for level in overlay.levels] == sorted(sums)
            for level in overlay.levels:
                count, buy, sell, notional = sums[level.price]
                assert (level.trade_count, level.buy_qty, level.sell_qty) == (count, buy, sell)
                assert level.volume == buy + sell
                assert level.vwap == (level.price if tick is None else notional / (buy + sell))
                in_level = [
                    t
                    for _, t in kept
                    if t.symbol == name
                    and level.price in (t.price if tick is None else (t.price // tick) * tick,)
                ]
                assert tracker.trades_at_price(name, level.price) == tuple(in_level)
            assert overlay.trade_count == sum(count for count, _, _, _ in sums.values())
            assert overlay.buy_qty == sum((buy for _, buy, _, _ in sums.values()), D(0))
            if sums:
                best = max(sums, key=lambda p: (sums[p][1] + sums[p][2], sums[p][0], -p))
                assert overlay.point_of_control == best
            else:
                assert overlay.point_of_control is None


# ----------------------------------------------------------------------------- edge cases


def test_vwaps_ignore_the_thread_context() -> None:
    """A VWAP is one division correctly rounded to 28 digits, whatever the thread's decimal
    context says (it used to follow the context's precision and traps)."""
    tracker = TradesByPriceLevel(60, tick_size=D(1))
    for trade in trades(("BTC/USD", "buy", "100.1", "1"), ("BTC/USD", "sell", "100.2", "2")):
        tracker.add_trade(trade, 0.0)
    expected = tracker.overlay("BTC/USD", 0.0)
    assert expected.vwap == D("100.1666666666666666666666667")
    assert expected.levels[0].vwap == expected.vwap
    with localcontext() as context:
        context.prec = 4
        context.traps[Inexact] = True
        assert tracker.overlay("BTC/USD", 0.0) == expected


def test_tick_size_and_price_are_decimals_ints_or_numeric_strs() -> None:
    tracker = TradesByPriceLevel(60, tick_size="0.5")
    assert tracker.tick_size == D("0.5")
    assert TradesByPriceLevel(60, tick_size=2).tick_size == D(2)
    tracker.add_trade(one("BTC/USD", "buy", "100.7", "1"), 0.0)
    assert len(tracker.trades_at_price("BTC/USD", "100.6")) == 1
    assert len(tracker.trades_at_price("BTC/USD", 100)) == 0
    with pytest.raises(LocalProtocolError, match=r"not a float .* write Decimal\('0.5'\)"):
        TradesByPriceLevel(60, tick_size=0.5)  # type: ignore[arg-type]
