"""OrderFlowTracker: large levels appearing, disappearing, increasing, decreasing.

Books are fed the way the core feeds them: frames through ``KrakenProtocol`` (a naive model
renders them with valid checksums), a real capture replayed, or snapshots and updates
applied to an ``OrderBook``. The property tests compare the tracker's events with a naive
model: applying a call's events to the previous set of large levels must give the set a
brute-force scan of the book computes.
"""

from __future__ import annotations

import inspect
import re
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from frames import NaiveBook
from hypothesis import given
from hypothesis import strategies as st
from protocols import events, subscribed_book

from kraken_proto import BookNotLiveError, BookUpdate, ClientConfig, KrakenProtocol
from kraken_proto.analytics import (
    FlowEvent,
    FlowEventKind,
    LargeLevel,
    LargeOrderThreshold,
    OrderFlowTracker,
    ThresholdKind,
)
from kraken_proto.analytics import depth as depth_module
from kraken_proto.analytics import fill as fill_module
from kraken_proto.analytics import flow as flow_module
from kraken_proto.book import OrderBook
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import BookLevel, L3Order
from kraken_proto.level3 import L3Book
from kraken_proto.replay import read_capture

D = Decimal
K = FlowEventKind
APPEARED = K.LARGE_ORDER_APPEARED
DISAPPEARED = K.LARGE_ORDER_DISAPPEARED
INCREASED = K.LARGE_ORDER_INCREASED
DECREASED = K.LARGE_ORDER_DECREASED

Large = dict[tuple[str, Decimal], Decimal]


def levels(*pairs: tuple[str, str]) -> list[BookLevel]:
    return [BookLevel.of(price, qty) for price, qty in pairs]


def live_book(
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    symbol: str = "BTC/USD",
    depth: int = 10,
    **kwargs: Any,
) -> OrderBook:
    book = OrderBook(symbol, depth, **kwargs)
    book.apply_snapshot(levels(*bids), levels(*asks))
    return book


def feed(proto: KrakenProtocol, naive: NaiveBook, bids: Any = (), asks: Any = ()) -> None:
    """Send one book update through the protocol; it must verify."""
    actions = proto.receive_data(naive.frame(list(bids), list(asks)), 1.0)
    assert events(actions, BookUpdate), actions


def summary(events_: tuple[FlowEvent, ...]) -> list[tuple[FlowEventKind, str, str, str, str]]:
    return [(e.kind, e.side, str(e.price), str(e.qty), str(e.previous_qty)) for e in events_]


# ----------------------------------------------------------------------------- naive model


def naive_large(book: OrderBook | L3Book, rule: LargeOrderThreshold, depth: int) -> Large:
    sides = {
        "bid": [(level.price, level.qty) for level in book.bids(depth)],
        "ask": [(level.price, level.qty) for level in book.asks(depth)],
    }
    if rule.kind is ThresholdKind.ABSOLUTE:
        threshold: Decimal | None = rule.value
    else:
        qtys = [qty for side in sides.values() for _, qty in side]
        threshold = rule.value * statistics.median(qtys) if qtys else None
    return {
        (side, price): qty
        for side, pairs in sides.items()
        for price, qty in pairs
        if threshold is not None and qty and qty >= threshold  # 0 is never large
    }


def apply_events(large: Large, flow: tuple[FlowEvent, ...]) -> Large:
    """The previous large set with the events applied, checking each event's consistency."""
    result = dict(large)
    for event in flow:
        key = (event.side, event.price)
        if event.kind is APPEARED:
            assert key not in result
            assert event.threshold is not None and event.qty >= event.threshold
            result[key] = event.qty
        elif event.kind is DISAPPEARED:
            assert result.pop(key) == event.previous_qty
            assert event.qty == 0 or event.threshold is None or event.qty < event.threshold
        else:
            assert result[key] == event.previous_qty
            assert (event.qty > event.previous_qty) == (event.kind is INCREASED)
            assert event.qty != event.previous_qty
            result[key] = event.qty
    return result


def check_order(flow: tuple[FlowEvent, ...]) -> None:
    """Bids before asks; within a side, best price first."""
    sides = [event.side for event in flow]
    assert sides == sorted(sides, key=lambda side: side != "bid")
    for side, best_first in (("bid", True), ("ask", False)):
        prices = [event.price for event in flow if event.side == side]
        assert prices == sorted(prices, reverse=best_first)


# ----------------------------------------------------------------------------- scripted


def test_every_event_kind_through_the_protocol() -> None:
    proto, books = subscribed_book()
    naive = books["BTC/USD"]  # bids 99.0 .. 90.0 at 1.0000000i, asks 101.0 .. at 2.0000000i
    tracker = OrderFlowTracker(D("5"), track_depth=10)
    book = proto.book("BTC/USD")
    assert book is not None
    assert tracker.track_update(book, 1.0) == ()  # nothing is large

    feed(proto, naive, bids=[("98.0", "7")])
    (event,) = tracker.track_update(book, 2.0)
    assert event == FlowEvent(
        APPEARED, "BTC/USD", "bid", D("98.0"), D(7), D("1.00000001"), D(5), 2.0
    )

    feed(proto, naive, bids=[("98.0", "9")])
    assert summary(tracker.track_update(book, 3.0)) == [
        (INCREASED, "bid", "98.0", "9.00000000", "7.00000000")
    ]
    feed(proto, naive, bids=[("98.0", "6")])
    assert summary(tracker.track_update(book, 4.0)) == [
        (DECREASED, "bid", "98.0", "6.00000000", "9.00000000")
    ]
    feed(proto, naive, bids=[("98.0", "3")])
    (event,) = tracker.track_update(book, 5.0)
    assert (event.kind, event.qty, event.previous_qty, event.at) == (DISAPPEARED, 3, 6, 5.0)

    feed(proto, naive, asks=[("103.0", "5")])  # exactly the threshold: large
    (event,) = tracker.track_update(book, 6.0)
    assert (event.kind, event.side, event.price, event.qty) == (APPEARED, "ask", 103, 5)
    assert tracker.large_levels("BTC/USD") == (LargeLevel("ask", D("103.0"), D(5)),)

    feed(proto, naive, asks=[("103.0", "0")])  # deleted: qty 0, it left the window
    (event,) = tracker.track_update(book, 7.0)
    assert (event.kind, event.qty, event.previous_qty) == (DISAPPEARED, 0, 5)
    assert tracker.large_levels("BTC/USD") == ()
    assert tracker.track_update(book, 8.0) == ()  # nothing changed since


def test_first_update_reports_every_large_level_and_the_order_of_events() -> None:
    book = live_book(
        [("99.0", "20"), ("98.0", "1"), ("97.0", "30")],
        [("101.0", "40"), ("102.0", "2"), ("103.0", "50")],
    )
    tracker = OrderFlowTracker(D("10"))
    flow = tracker.track_update(book, 0.0)
    assert summary(flow) == [
        (APPEARED, "bid", "99.0", "20", "0"),
        (APPEARED, "bid", "97.0", "30", "0"),
        (APPEARED, "ask", "101.0", "40", "0"),
        (APPEARED, "ask", "103.0", "50", "0"),
    ]
    # Several changes in one update, on both sides, in the documented order.
    book.apply_update(
        levels(("97.0", "5"), ("99.0", "25"), ("96.0", "11")),
        levels(("103.0", "45"), ("100.5", "12")),
    )
    assert summary(tracker.track_update(book, 1.0)) == [
        (INCREASED, "bid", "99.0", "25", "20"),
        (DISAPPEARED, "bid", "97.0", "5", "30"),
        (APPEARED, "bid", "96.0", "11", "0"),
        (APPEARED, "ask", "100.5", "12", "0"),
        (DECREASED, "ask", "103.0", "45", "50"),
    ]


def test_levels_leaving_and_entering_the_window() -> None:
    book = live_book([("99.0", "1"), ("98.0", "1"), ("97.0", "50")], [("101.0", "1")])
    tracker = OrderFlowTracker(D("10"), track_depth=3)
    assert summary(tracker.track_update(book, 0.0)) == [(APPEARED, "bid", "97.0", "50", "0")]
    # A better bid pushes the large level to 4th place: out of the window, qty 0.
    book.apply_update(levels(("99.5", "1")), [])
    assert summary(tracker.track_update(book, 1.0)) == [(DISAPPEARED, "bid", "97.0", "0", "50")]
    # It comes back when the better bid goes: appeared again, previous_qty 0.
    book.apply_update(levels(("99.5", "0")), [])
    assert summary(tracker.track_update(book, 2.0)) == [(APPEARED, "bid", "97.0", "50", "0")]
    # Truncated away by the book's own depth: the same DISAPPEARED, qty 0.
    small = live_book([("99.0", "1"), ("97.0", "50")], [], depth=2)
    tracker.forget("BTC/USD")
    assert len(tracker.track_update(small, 3.0)) == 1
    small.apply_update(levels(("99.5", "1")), [])
    assert summary(tracker.track_update(small, 4.0)) == [(DISAPPEARED, "bid", "97.0", "0", "50")]


def test_the_window_is_clamped_to_the_books_view_depth() -> None:
    book = live_book([("99.0", "1"), ("98.0", "50")], [], view_depth=1)
    tracker = OrderFlowTracker(D("10"), track_depth=25)
    assert tracker.track_update(book, 0.0) == ()  # 98.0 is beyond what the book shows


def test_relative_threshold_moves_with_the_median() -> None:
    # Quantities 1, 2, 3, 4, 20: median 3, threshold 3 * 3 = 9: only 20 is large.
    book = live_book(
        [("99.0", "1"), ("98.0", "2"), ("97.0", "20")], [("101.0", "3"), ("102.0", "4")]
    )
    tracker = OrderFlowTracker(LargeOrderThreshold.relative(D("3")))
    (event,) = tracker.track_update(book, 0.0)
    assert (event.kind, event.price, event.threshold) == (APPEARED, D("97.0"), D(9))
    # Even count: 1, 2, 3, 4, 20, 30 -> median (3 + 4) / 2 = 3.5, threshold 10.5.
    book.apply_update([], levels(("103.0", "30")))
    (event,) = tracker.track_update(book, 1.0)
    assert (event.kind, event.price, event.threshold) == (APPEARED, D("103.0"), D("10.5"))
    # The median rises (2 -> 8): 20 stays below 3 * median without its own qty changing.
    book.apply_update(levels(("98.0", "8"), ("99.0", "7")), [])
    # qtys 3, 4, 7, 8, 20, 30: median 7.5, threshold 22.5.
    assert summary(tracker.track_update(book, 2.0)) == [(DISAPPEARED, "bid", "97.0", "20", "20")]
    assert tracker.large_levels("BTC/USD") == (LargeLevel("ask", D("103.0"), D(30)),)
    # The median falls again: 20 comes back with previous_qty == qty.
    book.apply_update(levels(("98.0", "1"), ("99.0", "1")), [])
    # qtys 1, 1, 3, 4, 20, 30: median 3.5, threshold 10.5.
    assert summary(tracker.track_update(book, 3.0)) == [(APPEARED, "bid", "97.0", "20", "20")]
    # An update that leaves the median where it was only evaluates the changed levels.
    book.apply_update([], levels(("102.0", "40")))
    # qtys 1, 1, 3, 20, 30, 40: median 11.5, threshold 34.5: 20 and 30 go, 40 comes.
    assert summary(tracker.track_update(book, 4.0)) == [
        (DISAPPEARED, "bid", "97.0", "20", "20"),
        (APPEARED, "ask", "102.0", "40", "4"),
        (DISAPPEARED, "ask", "103.0", "30", "30"),
    ]
    book.apply_update([], levels(("102.0", "41")))  # median unchanged (11.5)
    assert summary(tracker.track_update(book, 5.0)) == [(INCREASED, "ask", "102.0", "41", "40")]


def test_relative_threshold_over_an_empty_window() -> None:
    book = live_book([("99.0", "1"), ("98.0", "9")], [])
    tracker = OrderFlowTracker(LargeOrderThreshold.relative(D("1")))
    # qtys 1, 9: median 5: 9 is large.
    assert summary(tracker.track_update(book, 0.0)) == [(APPEARED, "bid", "98.0", "9", "0")]
    book.apply_snapshot([], [])
    (event,) = tracker.track_update(book, 1.0)
    assert (event.kind, event.qty, event.threshold) == (DISAPPEARED, 0, None)
    assert tracker.track_update(book, 2.0) == ()
    empty = OrderFlowTracker(LargeOrderThreshold.relative(D("1")))
    assert empty.track_update(book, 0.0) == ()


def test_several_symbols_with_their_own_thresholds() -> None:
    proto, books = subscribed_book(("BTC/USD", "DOGE/USD"))
    tracker = OrderFlowTracker(
        D("5"), per_symbol={"DOGE/USD": LargeOrderThreshold.absolute(D("10000"))}
    )
    assert tracker.threshold_for("DOGE/USD") == LargeOrderThreshold.absolute(10000)
    assert tracker.threshold_for("ETH/USD") == LargeOrderThreshold.absolute(5)
    btc, doge = proto.book("BTC/USD"), proto.book("DOGE/USD")
    assert btc is not None and doge is not None
    feed(proto, books["BTC/USD"], bids=[("99.0", "6")])
    feed(proto, books["DOGE/USD"], bids=[("99.0", "6")], asks=[("101.0", "20000")])
    (btc_event,) = tracker.track_update(btc, 1.0)
    (doge_event,) = tracker.track_update(doge, 1.0)
    assert (btc_event.symbol, btc_event.side, btc_event.qty) == ("BTC/USD", "bid", 6)
    assert (doge_event.symbol, doge_event.side, doge_event.qty) == ("DOGE/USD", "ask", 20000)
    assert doge_event.threshold == 10000
    # Each symbol's state is its own: forgetting one leaves the other.
    tracker.forget("BTC/USD")
    tracker.forget("never/seen")
    assert tracker.large_levels("BTC/USD") == ()
    assert tracker.large_levels("DOGE/USD") == (LargeLevel("ask", D("101.0"), D(20000)),)
    assert tracker.track_update(doge, 2.0) == ()
    assert len(tracker.track_update(btc, 2.0)) == 1  # reported again


def test_the_same_price_written_with_other_digits_is_the_same_level() -> None:
    book = live_book([("99.0", "20")], [("101", "20.0")])
    tracker = OrderFlowTracker(D("10"))
    assert len(tracker.track_update(book, 0.0)) == 2
    book.apply_snapshot(levels(("99.00", "20.000")), levels(("101.0", "25")))
    assert summary(tracker.track_update(book, 1.0)) == [(INCREASED, "ask", "101", "25", "20.0")]


def test_a_level3_book_is_tracked_by_its_aggregated_levels() -> None:
    book = L3Book("BTC/USD", 10)
    orders = [L3Order("A", D("99.0"), D("4")), L3Order("B", D("99.0"), D("7"))]
    book.apply_snapshot(orders, [L3Order("C", D("101.0"), D("1"))])
    tracker = OrderFlowTracker(D("10"))
    assert summary(tracker.track_update(book, 0.0)) == [(APPEARED, "bid", "99.0", "11", "0")]
    book.apply_update([L3Order("A", D("99.0"), D("4"), event="delete")], [])
    assert summary(tracker.track_update(book, 1.0)) == [(DISAPPEARED, "bid", "99.0", "7", "11")]


def test_a_book_that_is_not_live_is_refused_and_the_state_kept() -> None:
    book = live_book([("99.0", "20")], [])
    tracker = OrderFlowTracker(D("10"))
    tracker.track_update(book, 0.0)
    book.mark_resyncing()
    with pytest.raises(BookNotLiveError, match="resyncing"):
        tracker.track_update(book, 1.0)
    assert tracker.large_levels("BTC/USD") == (LargeLevel("bid", D("99.0"), D(20)),)
    l3 = L3Book("ETH/USD", 10)
    with pytest.raises(BookNotLiveError, match="awaiting_snapshot"):
        tracker.track_update(l3, 1.0)
    assert "ETH/USD" not in tracker._books  # refused before any state was made


def test_books_are_read_through_their_public_accessors() -> None:
    """The analytics read a book's levels only through its public accessors
    (OrderBook.top_tokens, L3Book.top_totals and the other queries), never its private
    state."""
    for module in (flow_module, depth_module, fill_module):
        source = inspect.getsource(module)
        assert not re.search(r"\bbook\._", source), module.__name__
        assert "._bids" not in source and "._asks" not in source, module.__name__


def test_callbacks_get_every_event_and_can_be_removed() -> None:
    book = live_book([("99.0", "1")], [("101.0", "1")])
    tracker = OrderFlowTracker(D("10"))
    seen: list[tuple[str, FlowEvent]] = []
    remove_a = tracker.on_event(lambda event: seen.append(("a", event)))
    remove_b = tracker.on_event(lambda event: seen.append(("b", event)))
    book.apply_update(levels(("99.0", "11")), levels(("101.0", "12")))
    flow = tracker.track_update(book, 1.0)
    assert seen == [("a", flow[0]), ("b", flow[0]), ("a", flow[1]), ("b", flow[1])]
    remove_a()
    remove_a()  # a second call does nothing
    seen.clear()
    book.apply_update(levels(("99.0", "12")), [])
    flow = tracker.track_update(book, 2.0)
    assert seen == [("b", flow[0])]
    remove_b()
    book.apply_update(levels(("99.0", "13")), [])
    assert len(tracker.track_update(book, 3.0)) == 1
    assert len(seen) == 1

    def fail(event: FlowEvent) -> None:
        raise RuntimeError("callback failed")

    tracker.on_event(fail)
    book.apply_update(levels(("99.0", "14")), [])
    with pytest.raises(RuntimeError, match="callback failed"):
        tracker.track_update(book, 4.0)
    # The state was updated before the callbacks ran.
    assert tracker.large_levels("BTC/USD")[0].qty == 14


def test_the_same_callback_registered_twice_is_removed_once_per_remover() -> None:
    book = live_book([("99.0", "1")], [])
    tracker = OrderFlowTracker(D("10"))
    seen: list[FlowEvent] = []
    first = tracker.on_event(seen.append)
    tracker.on_event(seen.append)
    first()
    first()
    book.apply_update(levels(("99.0", "11")), [])
    tracker.track_update(book, 1.0)
    assert len(seen) == 1


def test_properties_and_threshold_values() -> None:
    tracker = OrderFlowTracker(D("2.5"), track_depth=3)
    assert tracker.track_depth == 3
    assert tracker.large_order_threshold == LargeOrderThreshold(ThresholdKind.ABSOLUTE, D("2.5"))
    assert LargeOrderThreshold.absolute("2.5") == LargeOrderThreshold.absolute(D("2.50"))
    assert LargeOrderThreshold.relative(5).kind is ThresholdKind.RELATIVE
    assert LargeOrderThreshold.relative(5).value == 5


NUMBER = "a positive finite Decimal, int or numeric str between 1E-64 and 1E"
THRESHOLD = f"LargeOrderThreshold or {NUMBER}"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: OrderFlowTracker(None), "large_order_threshold must be a LargeOrderThreshold"),  # type: ignore[arg-type]
        (lambda: OrderFlowTracker(10.0), "large_order_threshold must be .* not a float"),  # type: ignore[arg-type]
        (lambda: OrderFlowTracker(D(0)), f"large_order_threshold must be a {THRESHOLD}"),
        (lambda: OrderFlowTracker(D("NaN")), f"large_order_threshold must be a {THRESHOLD}"),
        (lambda: OrderFlowTracker(D("sNaN")), f"large_order_threshold must be a {THRESHOLD}"),
        (lambda: OrderFlowTracker(D("Infinity")), f"large_order_threshold must be a {THRESHOLD}"),
        (lambda: OrderFlowTracker(D("1E+300")), "between 1E-64 and 1E"),
        (lambda: OrderFlowTracker("1E-65"), "between 1E-64 and 1E"),
        (lambda: OrderFlowTracker(D(1), track_depth=0), "track_depth must be an int >= 1"),
        (lambda: OrderFlowTracker(D(1), track_depth=True), "track_depth"),  # type: ignore[arg-type]
        (lambda: OrderFlowTracker(D(1), track_depth=2.0), "track_depth"),  # type: ignore[arg-type]
        (
            lambda: OrderFlowTracker(D(1), per_symbol={"DOGE/USD": -1}),  # type: ignore[dict-item]
            r"per_symbol\['DOGE/USD'\] must be",
        ),
        (lambda: LargeOrderThreshold.absolute(-1), f"qty must be {NUMBER}"),
        (lambda: LargeOrderThreshold.absolute("ten"), f"qty must be {NUMBER}"),
        (lambda: LargeOrderThreshold.absolute(1.5), "qty must be"),  # type: ignore[arg-type]
        (lambda: LargeOrderThreshold.absolute(True), "qty must be"),
        (lambda: LargeOrderThreshold.relative(0), f"multiple must be {NUMBER}"),
        (lambda: LargeOrderThreshold("relative", D(1)), "kind must be a ThresholdKind"),  # type: ignore[arg-type]
        (lambda: LargeOrderThreshold(ThresholdKind.RELATIVE, 2), "value must be a Decimal"),  # type: ignore[arg-type]
        (lambda: LargeOrderThreshold(ThresholdKind.RELATIVE, D(-2)), f"value must be {NUMBER}"),
    ],
)
def test_bad_arguments_name_themselves(make: Any, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        make()


@pytest.mark.parametrize("now", [float("nan"), float("inf"), "1.0", None, True])
def test_now_must_be_a_finite_number(now: Any) -> None:
    tracker = OrderFlowTracker(D(1))
    with pytest.raises(LocalProtocolError, match="now must be a finite number of seconds"):
        tracker.track_update(live_book([], []), now)


def test_now_may_be_an_int() -> None:
    tracker = OrderFlowTracker(D(1))
    (event,) = tracker.track_update(live_book([("1.0", "1")], []), 3)
    assert event.at == 3


def test_callback_must_be_callable() -> None:
    with pytest.raises(LocalProtocolError, match="callback must be callable"):
        OrderFlowTracker(D(1)).on_event(42)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- real capture


@pytest.mark.parametrize(
    ("rule", "depth"),
    [
        (LargeOrderThreshold.absolute(D("1")), 25),
        (LargeOrderThreshold.relative(D("4")), 25),
        (LargeOrderThreshold.relative(D("3")), 5),
    ],
)
def test_a_real_capture_against_the_naive_model(
    real_capture_paths: dict[str, Path], rule: LargeOrderThreshold, depth: int
) -> None:
    proto = KrakenProtocol(ClientConfig(ping_interval=None, stale_timeout=1e9), replay=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    tracker = OrderFlowTracker(rule, track_depth=depth)
    large: Large = {}
    counts = dict.fromkeys(FlowEventKind, 0)
    for line in read_capture(real_capture_paths["btcusd_sample"]):
        for update in events(proto.receive_data(line.text, line.t), BookUpdate):
            book = proto.book(update.symbol)
            assert book is not None
            flow = tracker.track_update(book, line.t)
            check_order(flow)
            large = apply_events(large, flow)
            assert large == naive_large(book, rule, depth)
            for event in flow:
                counts[event.kind] += 1
    assert all(counts.values()), counts  # every kind happens on real data


# ----------------------------------------------------------------------------- properties

PRICES = {"bid": [f"{90 + i}.0" for i in range(10)], "ask": [f"{101 + i}.0" for i in range(10)]}
QTYS = ["0", "1", "2", "5", "8", "10", "12", "20", "30"]


@st.composite
def level_lists(draw: st.DrawFn, side: str) -> list[tuple[str, str]]:
    chosen = draw(
        st.lists(
            st.tuples(st.sampled_from(PRICES[side]), st.sampled_from(QTYS), st.booleans()),
            max_size=6,
        )
    )
    # Sometimes the same value is written with other digits (the token changes, not the level).
    return [(price + "0" if longer else price, qty) for price, qty, longer in chosen]


steps = st.lists(
    st.tuples(st.booleans(), level_lists("bid"), level_lists("ask")), min_size=1, max_size=12
)
rules = st.one_of(
    st.sampled_from(["5", "10", "12"]).map(LargeOrderThreshold.absolute),
    st.sampled_from(["1", "1.5", "2", "3"]).map(LargeOrderThreshold.relative),
)


def l3_copy(book: OrderBook) -> L3Book:
    """An L3 book holding one order per level of ``book`` (at most 10 per side)."""
    l3 = L3Book(book.symbol, 10)
    bids = [L3Order(f"b{i}", level.price, level.qty) for i, level in enumerate(book.bids())]
    asks = [L3Order(f"a{i}", level.price, level.qty) for i, level in enumerate(book.asks())]
    l3.apply_snapshot(bids, asks)
    return l3


@given(steps=steps, rule=rules, track_depth=st.integers(1, 12), view_depth=st.integers(1, 10))
def test_events_reconstruct_the_large_levels(
    steps: list[tuple[bool, list[tuple[str, str]], list[tuple[str, str]]]],
    rule: LargeOrderThreshold,
    track_depth: int,
    view_depth: int,
) -> None:
    book = OrderBook("BTC/USD", 10, view_depth=view_depth)
    book.apply_snapshot([], [])
    tracker = OrderFlowTracker(rule, track_depth=track_depth)
    # The same levels as an L3 book go through the generic path: the same events.
    generic = OrderFlowTracker(rule, track_depth=min(track_depth, view_depth))
    large: Large = {}
    for now, (snapshot, bids, asks) in enumerate(steps):
        if snapshot:
            book.apply_snapshot(levels(*bids), levels(*asks))
        else:
            book.apply_update(levels(*bids), levels(*asks))
        flow = tracker.track_update(book, float(now))
        check_order(flow)
        large = apply_events(large, flow)
        assert large == naive_large(book, rule, track_depth)
        assert {
            (level.side, level.price): level.qty for level in tracker.large_levels("BTC/USD")
        } == large
        assert tracker.track_update(book, float(now)) == ()
        if view_depth == 10:
            assert generic.track_update(l3_copy(book), float(now)) == flow


# ----------------------------------------------------------------------------- edge cases


def test_a_median_of_zero_makes_no_empty_level_large() -> None:
    """A level3 window mostly of zero-quantity levels has median 0, so a relative threshold
    of 0: a level with nothing resting is still not large (it was reported as appeared)."""
    book = L3Book("BTC/USD", 10)
    book.apply_snapshot(
        [L3Order("A", D("100"), D(0)), L3Order("B", D("99"), D(0)), L3Order("C", D("98"), D(5))],
        [L3Order("D", D("101"), D(0))],
    )
    tracker = OrderFlowTracker(LargeOrderThreshold.relative(2))
    flow = tracker.track_update(book, 0.0)
    assert summary(flow) == [(APPEARED, "bid", "98", "5", "0")]
    assert flow[0].threshold == 0
    assert tracker.large_levels("BTC/USD") == (LargeLevel("bid", D(98), D(5)),)
    # The one order with quantity shrinks to nothing: the level is no longer large.
    book.apply_update([L3Order("C", D("98"), D(0), event="modify")], [])
    assert summary(tracker.track_update(book, 1.0)) == [(DISAPPEARED, "bid", "98", "0", "5")]
    assert tracker.large_levels("BTC/USD") == ()


def test_a_threshold_is_a_decimal_int_or_numeric_str() -> None:
    """The one policy of the package: a quantity is a Decimal, an int or a numeric str."""
    for value in (5, "5", D(5)):
        tracker = OrderFlowTracker(value, per_symbol={"DOGE/USD": value})
        assert tracker.large_order_threshold == LargeOrderThreshold.absolute(D(5))
        assert tracker.threshold_for("DOGE/USD") == LargeOrderThreshold.absolute(D(5))
    with pytest.raises(LocalProtocolError) as raised:
        OrderFlowTracker(2.5)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "large_order_threshold must be a LargeOrderThreshold or a positive finite Decimal, "
        "int or numeric str between 1E-64 and 1E+64, not a float (floats are inexact: write "
        "Decimal('2.5') or '2.5'), got 2.5"
    )


def test_the_book_and_per_symbol_are_checked() -> None:
    with pytest.raises(LocalProtocolError, match="book must be an OrderBook or an L3Book"):
        OrderFlowTracker(D(1)).track_update(None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="per_symbol must be None or a mapping"):
        OrderFlowTracker(D(1), per_symbol=[("BTC/USD", D(1))])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="per_symbol keys must be symbols"):
        OrderFlowTracker(D(1), per_symbol={1: D(1)})  # type: ignore[dict-item]
