"""The matching engine driven directly, on tiny hand-made markets, plus trading edge cases."""

from __future__ import annotations

import random
from decimal import Decimal

from kraken_proto.simulator.account import Account
from kraken_proto.simulator.market import MarketModel
from kraken_proto.simulator.matching import IOC_REASON, MatchingEngine, Order
from kraken_proto.simulator.trading import INVALID_ARGUMENTS, Reply, execute


def tiny(levels: int = 3) -> MatchingEngine:
    market = MarketModel(
        "AAA/USD",
        rng=random.Random(1),
        price_precision=2,
        qty_precision=2,
        mid=Decimal("10.00"),
        tick=Decimal("0.01"),
        levels=levels,
        max_levels=levels,
    )
    account = Account({"USD": Decimal("1000000"), "AAA": Decimal("1000000")})
    return MatchingEngine({"AAA/USD": market}, account, random.Random(2))


def order(side: str, qty: str, price: str | None = None, order_type: str = "limit") -> Order:
    limit = None if price is None else Decimal(price)
    return Order("O1", "AAA/USD", side, order_type, Decimal(qty), limit)


def test_a_market_order_larger_than_the_book_cancels_the_rest() -> None:
    engine = tiny()
    _, asks = engine.markets["AAA/USD"].book()
    total = sum(level.qty for level in asks)
    big = order("buy", str(total + 1), order_type="market")
    engine.place(big, 1.0)
    assert big.cum_qty == total and big.status == "canceled"
    closing = engine.outbox[-1][2]
    assert closing["reason"] == IOC_REASON
    # Everything is taken: nothing crosses any more, and a post-only order rests.
    probe = order("buy", "1", str(asks[-1].price))
    assert not engine.would_take(probe)
    assert engine.estimate_cost("buy", "AAA/USD", Decimal(1)) == 0


def test_partly_consumed_levels_and_snapshot_reports() -> None:
    engine = tiny(levels=40)
    _, asks = engine.markets["AAA/USD"].book()
    engine.place(order("buy", str(asks[0].qty), order_type="market"), 1.0)
    # The best level is used up: would_take looks past it.
    assert not engine.would_take(order("buy", "1", str(asks[0].price)))
    assert engine.would_take(order("buy", "1", str(asks[1].price)))
    # A limit order smaller than the first crossing level stops after it.
    small = Order("O2", "AAA/USD", "buy", "limit", Decimal("0.01"), asks[3].price)
    engine.place(small, 2.0)
    assert small.status == "filled" and small.cum_qty == Decimal("0.01")
    report = engine.order_report(small, "new", 2.0)
    assert report["avg_price"] is not None
    assert Order("O3", "AAA/USD", "buy", "limit", Decimal(1), Decimal(1)).avg_price() == 0


def test_walking_more_than_a_hundred_levels() -> None:
    engine = tiny(levels=300)
    _, asks = engine.markets["AAA/USD"].book(150)
    qty = sum(level.qty for level in asks)
    taker = order("buy", str(qty), order_type="market")
    engine.place(taker, 1.0)
    assert taker.status == "filled"
    trades = [e for _, ch, e in engine.outbox if ch == "executions" and e["exec_type"] == "trade"]
    assert len(trades) == 150


def test_gtd_orders_with_different_expiries() -> None:
    engine = tiny(levels=40)
    bids, _ = engine.markets["AAA/USD"].book(1)
    first = Order("O4", "AAA/USD", "buy", "limit", Decimal(1), bids[0].price - 1, expire_at=5.0)
    second = Order("O5", "AAA/USD", "buy", "limit", Decimal(1), bids[0].price - 1, expire_at=7.0)
    engine.place(first, 1.0)
    engine.place(second, 1.0)
    engine.run_timers(6.0)
    assert (first.status, second.status) == ("expired", "new")
    assert engine.next_timer() == 7.0


def test_execute_rejects_params_that_are_not_an_object() -> None:
    assert execute(tiny(), {}, "add_order", [], 0.0) == [Reply(error=INVALID_ARGUMENTS)]


def test_resting_orders_reserve_funds() -> None:
    engine = tiny(levels=40)
    bids, asks = engine.markets["AAA/USD"].book(1)
    engine.place(Order("O6", "AAA/USD", "sell", "limit", Decimal(3), asks[0].price + 1), 1.0)
    engine.place(Order("O7", "AAA/USD", "buy", "limit", Decimal(2), bids[0].price - 1), 1.0)
    assert engine.available("AAA") == Decimal(1000000) - 3
    held = 2 * (bids[0].price - 1) * (1 + engine.taker_fee)
    assert engine.available("USD") == Decimal(1000000) - held
    assert not engine.can_afford("AAA/USD", "sell", Decimal(1000000), None)
