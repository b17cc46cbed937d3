"""Tests for kraken_proto.ratecounter: Kraken's cost table, decay, pacing and order ages."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.config import RateTier
from kraken_proto.ratecounter import MAX_TRACKED_ORDERS, RateCounterState, TradingRateCounter
from kraken_proto.trading import (
    AddOrder,
    AmendOrder,
    BatchAdd,
    BatchCancel,
    BatchOrder,
    CancelAll,
    CancelAllOrdersAfter,
    CancelOrder,
    EditOrder,
    TradingRequest,
)

BTC = "BTC/USD"
ETH = "ETH/USD"


def add(symbol: str = BTC) -> AddOrder:
    return AddOrder(order_type="market", side="buy", order_qty=1, symbol=symbol)


def batch_add(n: int, symbol: str = BTC) -> BatchAdd:
    order = BatchOrder(order_type="market", side="buy", order_qty=1)
    return BatchAdd(symbol=symbol, orders=(order,) * n)


def amend(order_id: str = "O1", symbol: str | None = None) -> AmendOrder:
    return AmendOrder(order_id=order_id, order_qty=1, symbol=symbol)


def edit(order_id: str = "O1", symbol: str = BTC) -> EditOrder:
    return EditOrder(order_id=order_id, symbol=symbol, order_qty=2)


def cancel(*order_ids: str) -> CancelOrder:
    return CancelOrder(order_id=order_ids)


def starter() -> TradingRateCounter:
    return TradingRateCounter(RateTier.STARTER)


# --------------------------------------------------------------------------- costs


def test_fixed_costs() -> None:
    counter = starter()
    assert counter.cost(add(), 0.0) == 1.0
    assert counter.charges(add(ETH), 0.0) == {ETH: 1.0}
    assert counter.cost(batch_add(2), 0.0) == 1.0
    assert counter.cost(batch_add(15), 0.0) == 7.5
    assert counter.cost(CancelAll(), 0.0) == 0.0
    assert counter.cost(CancelAllOrdersAfter(timeout=60), 0.0) == 0.0
    assert counter.charges(CancelAll(), 0.0) == {}


@pytest.mark.parametrize(
    ("age", "cost"),
    [(0.0, 4.0), (4.999, 4.0), (5.0, 3.0), (9.9, 3.0), (10.0, 2.0), (15.0, 1.0), (1e6, 1.0)],
)
def test_amend_cost_by_age(age: float, cost: float) -> None:
    counter = starter()
    counter.note_order(BTC, 100.0, order_id="O1")
    assert counter.charges(amend(), 100.0 + age) == {BTC: cost}


@pytest.mark.parametrize(
    ("age", "cost"),
    [(0.0, 7.0), (5.0, 6.0), (10.0, 5.0), (15.0, 3.0), (44.9, 3.0), (45.0, 2.0), (90.0, 1.0)],
)
def test_edit_cost_by_age(age: float, cost: float) -> None:
    counter = starter()
    counter.note_order(BTC, 100.0, order_id="O1")
    assert counter.charges(edit(), 100.0 + age) == {BTC: cost}


@pytest.mark.parametrize(
    ("age", "cost"),
    [
        (0.0, 8.0),
        (5.0, 6.0),
        (10.0, 5.0),
        (15.0, 4.0),
        (45.0, 2.0),
        (90.0, 1.0),
        (299.9, 1.0),
        (300.0, 0.0),
    ],
)
def test_cancel_cost_by_age(age: float, cost: float) -> None:
    counter = starter()
    counter.note_order(BTC, 100.0, order_id="O1")
    assert counter.cost(cancel("O1"), 100.0 + age) == cost
    assert counter.charges(cancel("O1"), 100.0 + age) == ({BTC: cost} if cost else {})


def test_unknown_pairs_cost_nothing_unknown_ages_cost_the_most() -> None:
    counter = starter()
    assert counter.charges(amend("ghost"), 0.0) == {}  # pair unknown: cannot charge
    assert counter.charges(cancel("ghost"), 0.0) == {}
    assert counter.charges(amend("ghost", symbol=BTC), 0.0) == {BTC: 4.0}  # age 0
    assert counter.charges(edit("ghost"), 0.0) == {BTC: 7.0}
    assert counter.wait_time(cancel("ghost"), 0.0) == 0.0


def test_a_clock_stepping_back_gives_age_zero() -> None:
    counter = starter()
    counter.note_order(BTC, 100.0, order_id="O1")
    assert counter.cost(cancel("O1"), 50.0) == 8.0


def test_amend_finds_its_pair_from_the_order() -> None:
    counter = starter()
    counter.note_order(ETH, 0.0, order_id="O1", cl_ord_id="c1")
    by_client = AmendOrder(cl_ord_id="c1", order_qty=1)
    assert counter.charges(by_client, 12.0) == {ETH: 2.0}
    assert counter.charges(amend("O1", symbol=BTC), 12.0) == {ETH: 2.0}  # the known pair wins


def test_cancel_sums_over_every_order_it_names_once_each() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_id="O1", cl_ord_id="c1")
    counter.note_order(BTC, 0.0, order_id="O2", order_userref=7)
    counter.note_order(BTC, 20.0, order_id="O3", order_userref=7)
    counter.note_order(ETH, 0.0, order_id="O4")
    request = CancelOrder(order_id=("O1", "O4", "ghost"), cl_ord_id=("c1",), order_userref=(7, 8))
    # O1 (age 20: 4) named twice counts once; O2 (age 20: 4) and O3 (age 0: 8) by userref 7.
    assert counter.charges(request, 20.0) == {BTC: 16.0, ETH: 4.0}
    assert counter.cost(request, 20.0) == 20.0


def test_batch_cancel_charges_each_pair_its_part() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_id="O1")
    counter.note_order(ETH, 0.0, order_id="O2", order_userref=42)
    counter.note_order(ETH, 0.0, order_id="O3", cl_ord_id="c3")
    request = BatchCancel(orders=("O1", "42", "ghost", "99"), cl_ord_id=("c3", "nobody"))
    assert counter.charges(request, 1.0) == {BTC: 8.0, ETH: 16.0}
    counter.sync(ETH, 50.0, 1.0)
    counter.sync(BTC, 50.0, 1.0)
    # ETH needs 50 + 16 - 60 = 6 s of decay, BTC 50 + 8 - 60 < 0: the wait is the longest.
    assert counter.wait_time(request, 1.0) == 6.0
    counter.record(request, 1.0)
    assert counter.state(ETH, 1.0).count == 66.0
    assert counter.state(BTC, 1.0).count == 58.0


# --------------------------------------------------------------------------- the counter


def test_record_decay_and_state() -> None:
    counter = TradingRateCounter(RateTier.INTERMEDIATE)
    assert counter.tier is RateTier.INTERMEDIATE
    assert counter.symbols() == ()
    assert counter.state(BTC, 0.0) == RateCounterState(BTC, 0.0, 125, 2.34)
    counter.record(batch_add(10, ETH), 10.0)
    counter.record(add(), 10.0)
    counter.record(add(), 10.0)
    assert counter.state(BTC, 10.0) == RateCounterState(BTC, 2.0, 125, 2.34)
    assert counter.state(BTC, 10.5).count == pytest.approx(0.83)
    assert counter.state(BTC, 20.0).count == 0.0  # never below zero
    assert counter.state(ETH, 11.0).count == pytest.approx(5.0 - 2.34)
    assert counter.symbols() == (BTC, ETH)
    counter.record(CancelAll(), 11.0)
    assert counter.symbols() == (BTC, ETH)


def test_time_going_backwards_does_not_decay() -> None:
    counter = starter()
    counter.record(add(), 10.0)
    counter.record(add(), 10.0)
    assert counter.state(BTC, 5.0).count == 2.0
    counter.record(add(), 5.0)  # an earlier time is taken as no time passed
    assert counter.state(BTC, 10.0).count == 3.0
    assert counter.state(BTC, 11.0).count == 2.0


def test_wait_time_paces_to_the_threshold() -> None:
    counter = starter()
    counter.sync(BTC, 60.0, 0.0)
    assert counter.wait_time(add(), 0.0) == 1.0
    assert counter.wait_time(add(), 0.25) == 0.75
    assert counter.wait_time(add(), 1.0) == 0.0
    assert counter.wait_time(add(ETH), 0.0) == 0.0
    assert counter.wait_time(batch_add(4), 0.0) == 2.0
    assert counter.wait_time(CancelAll(), 0.0) == 0.0
    # Queried before the counter's time: it has not started decaying yet.
    assert counter.wait_time(add(), -3.0) == 4.0


def test_a_cost_above_the_threshold_never_fits() -> None:
    counter = starter()
    ids = tuple(f"O{i}" for i in range(8))
    for order_id in ids:
        counter.note_order(BTC, 0.0, order_id=order_id)
    assert counter.cost(BatchCancel(orders=ids), 0.0) == 64.0
    assert counter.wait_time(BatchCancel(orders=ids), 0.0) == math.inf
    assert counter.wait_time(BatchCancel(orders=ids), 5.0) == 0.0  # 8 * 6 = 48 fits


def test_wait_time_steps_past_rounding() -> None:
    # Found by search: the closed-form estimate lands an ulp short of fitting.
    counter = starter()
    counter.sync(BTC, 60.09204938554385, 1234.567)
    now = 1234.6356483854179
    estimate = 1234.567 + (60.09204938554385 + 1.0 - 60.0) / 1.0 - now
    assert counter.state(BTC, now + estimate).count + 1.0 > 60.0
    wait = counter.wait_time(add(), now)
    assert wait > estimate
    assert counter.state(BTC, now + wait).count + 1.0 <= 60.0


def test_sync_adopts_krakens_value() -> None:
    counter = starter()
    counter.record(add(), 0.0)
    counter.sync(BTC, 12.5, 1.0)
    assert counter.state(BTC, 1.0).count == 12.5
    assert counter.state(BTC, 2.0).count == 11.5
    counter.sync(BTC, -3.0, 2.0)
    assert counter.state(BTC, 2.0).count == 0.0
    counter.sync(BTC, 7, 2.0)
    for bad in (math.nan, math.inf, "lots", None):
        counter.sync(BTC, bad, 3.0)  # type: ignore[arg-type]
    assert counter.state(BTC, 2.0).count == 7.0
    counter.sync(ETH, "4.5", 0.0)  # type: ignore[arg-type]
    assert counter.state(ETH, 0.0).count == 4.5


# --------------------------------------------------------------------------- orders


def test_note_order_restarts_the_age_and_merges_ids() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0)  # no id: nothing to remember
    assert counter.tracked_orders == 0
    counter.note_order(BTC, 0.0, cl_ord_id="c1")
    counter.note_order(BTC, 2.0, order_id="O1", cl_ord_id="c1")  # the ack: same order
    assert counter.tracked_orders == 1
    assert counter.symbol_of(order_id="O1") == BTC
    assert counter.symbol_of(cl_ord_id="c1") == BTC
    assert counter.cost(cancel("O1"), 12.0) == 5.0  # age 10 from the second note
    counter.note_order(BTC, 12.0, order_id="O1")  # amended: age restarts
    assert counter.cost(cancel("O1"), 12.0) == 8.0
    assert counter.symbol_of() is None
    assert counter.symbol_of(order_id="ghost", cl_ord_id="c1") == BTC


def test_note_order_joins_two_notes_of_one_order() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_id="O1")
    counter.note_order(BTC, 0.0, cl_ord_id="c1", order_userref=3)
    assert counter.tracked_orders == 2
    counter.note_order(BTC, 1.0, order_id="O1", cl_ord_id="c1")
    assert counter.tracked_orders == 1
    assert counter.symbol_of(cl_ord_id="c1") == BTC
    assert counter.cost(CancelOrder(order_userref=(3,)), 1.0) == 0.0  # that note went away


def test_note_order_replaces_changed_ids() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_id="O1", cl_ord_id="c1", order_userref=1)
    counter.note_order(ETH, 1.0, cl_ord_id="c1", order_id="O2", order_userref=2)
    assert counter.tracked_orders == 1
    assert counter.symbol_of(order_id="O1") is None
    assert counter.symbol_of(order_id="O2") == ETH
    assert counter.cost(CancelOrder(order_userref=(1,)), 1.0) == 0.0
    assert counter.charges(CancelOrder(order_userref=(2,)), 1.0) == {ETH: 8.0}
    counter.note_order(ETH, 1.0, order_id="O2", cl_ord_id="c2")
    assert counter.symbol_of(cl_ord_id="c1") is None
    assert counter.symbol_of(cl_ord_id="c2") == ETH


def test_orders_known_by_userref_alone_are_each_remembered() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_userref=5)
    counter.note_order(BTC, 0.0, order_userref=5)
    assert counter.tracked_orders == 2
    assert counter.charges(CancelOrder(order_userref=(5,)), 0.0) == {BTC: 16.0}
    assert counter.charges(BatchCancel(orders=("5", "6")), 0.0) == {BTC: 16.0}


def test_forget_order() -> None:
    counter = starter()
    counter.note_order(BTC, 0.0, order_id="O1", cl_ord_id="c1", order_userref=9)
    counter.note_order(BTC, 0.0, order_id="O2", cl_ord_id="c2")
    counter.note_order(BTC, 0.0, order_id="O3", order_userref=9)
    counter.forget_order(order_id="O1", cl_ord_id="c1")
    assert counter.symbol_of(order_id="O1") is None
    assert counter.symbol_of(cl_ord_id="c1") is None
    assert counter.charges(CancelOrder(order_userref=(9,)), 0.0) == {BTC: 8.0}  # O3 only
    counter.forget_order(cl_ord_id="c2")
    counter.forget_order(order_id="O3")
    counter.forget_order(order_id="ghost", cl_ord_id="nobody")
    counter.forget_order()
    assert counter.tracked_orders == 0
    assert counter.cost(CancelOrder(order_userref=(9,)), 0.0) == 0.0


def test_memory_is_bounded() -> None:
    counter = starter()
    for i in range(MAX_TRACKED_ORDERS + 5):
        counter.note_order(BTC, float(i), order_id=f"O{i}")
    assert counter.tracked_orders == MAX_TRACKED_ORDERS
    assert counter.symbol_of(order_id="O4") is None  # the oldest notes went first
    assert counter.symbol_of(order_id="O5") == BTC
    counter.note_order(BTC, 1e5, order_id="O5")  # a re-note makes it the newest
    counter.note_order(BTC, 1e5, order_id="new")
    assert counter.symbol_of(order_id="O5") == BTC
    assert counter.symbol_of(order_id="O6") is None


# --------------------------------------------------------------------------- properties

_REQUESTS: list[TradingRequest] = [add(), batch_add(2), batch_add(15), add(ETH)]

_steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0),  # time step
        st.sampled_from(["record", "sync"]),
        st.sampled_from(_REQUESTS),
        st.floats(min_value=-5.0, max_value=200.0),  # synced value
    ),
    max_size=30,
)


@given(st.sampled_from(list(RateTier)), _steps)
def test_count_never_negative_and_decays_monotonically(
    tier: RateTier, steps: list[tuple[float, str, TradingRequest, float]]
) -> None:
    counter = TradingRateCounter(tier)
    now = 0.0
    for step, kind, request, value in steps:
        now += step
        if kind == "record":
            counter.record(request, now)
        else:
            counter.sync(BTC, value, now)
        for symbol in counter.symbols():
            levels = [counter.state(symbol, now + dt).count for dt in (0.0, 0.1, 1.0, 7.5, 1e3)]
            assert all(level >= 0.0 for level in levels)
            assert levels == sorted(levels, reverse=True)
            assert levels[-1] == 0.0


@given(
    st.sampled_from(list(RateTier)),
    st.floats(min_value=0.0, max_value=400.0),  # synced count
    st.floats(min_value=0.0, max_value=1e6),  # sync time
    st.floats(min_value=-10.0, max_value=100.0),  # now - sync time
    st.sampled_from(_REQUESTS[:3]),
)
def test_wait_time_is_exactly_when_the_request_fits(
    tier: RateTier, count: float, synced_at: float, offset: float, request: TradingRequest
) -> None:
    counter = TradingRateCounter(tier)
    counter.sync(BTC, count, synced_at)
    now = synced_at + offset
    cost = counter.cost(request, now)
    wait = counter.wait_time(request, now)
    assert wait >= 0.0
    assert counter.state(BTC, now + wait).count + cost <= tier.threshold
    if wait > 1e-6:
        assert counter.state(BTC, now + wait - 1e-6).count + cost > tier.threshold
    else:
        assert counter.state(BTC, now).count + cost <= tier.threshold + tier.decay * 1e-6
