"""The books' cheap accessors: OrderBook.top_tokens and L3Book.top_totals.

``top_tokens(n)`` must list exactly the levels ``bids(n)``/``asks(n)`` list, as the tokens
they hold, whatever updates and truncations the book went through (this module runs once
with each L2 update loop, compiled and Python); ``top_totals(n)`` must list exactly what
``bids(n)``/``asks(n)`` of a level3 book show, summed exactly, and follow every change.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kraken_proto.book import BookState, OrderBook
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.events import BookLevel
from kraken_proto.level3 import L3Book, L3Order

pytestmark = pytest.mark.usefixtures("book_loop")

D = Decimal
EXACT = Context(prec=500, traps=[InvalidOperation, Inexact])


def raw(price: bytes, qty: bytes) -> BookLevel:
    return BookLevel(msgspec.Raw(price), msgspec.Raw(qty))


def tokens(levels: list[BookLevel]) -> list[tuple[bytes, bytes]]:
    return [(bytes(level.price_text), bytes(level.qty_text)) for level in levels]


def assert_same_levels(book: OrderBook) -> None:
    """top_tokens(n) is bids(n)/asks(n) as tokens, for every n around the depths."""
    for n in [None, *range(book.view_depth + 3)]:
        bids, asks = book.top_tokens(n)
        assert bids == tokens(book.bids(n))
        assert asks == tokens(book.asks(n))
        assert all(type(token) is bytes for pair in bids + asks for token in pair)


# -- OrderBook.top_tokens -----------------------------------------------------------------------


def test_top_tokens_are_the_wire_text_best_first() -> None:
    book = OrderBook("BTC/USD", 10)
    book.apply_snapshot(
        [raw(b"100.5", b"1.50"), raw(b"100", b"2"), raw(b"99.0", b"1.5E-3")],
        [raw(b"101", b'"0.5"'), raw(b"102.25", b"3.00000000")],
    )
    assert book.top_tokens() == (
        [(b"100.5", b"1.50"), (b"100", b"2"), (b"99.0", b"1.5E-3")],
        [(b"101", b'"0.5"'), (b"102.25", b"3.00000000")],
    )
    assert book.top_tokens(1) == ([(b"100.5", b"1.50")], [(b"101", b'"0.5"')])
    assert book.top_tokens(0) == ([], [])
    assert book.top_tokens(10**30) == book.top_tokens(None)
    first, second = book.top_tokens(2), book.top_tokens(2)
    assert first == second and first[0] is not second[0]  # new lists every call
    assert_same_levels(book)


def test_top_tokens_stop_at_the_view_depth() -> None:
    book = OrderBook("BTC/USD", 10, view_depth=3)
    book.apply_snapshot(
        [BookLevel.of(100 - i, 1 + i) for i in range(8)],
        [BookLevel.of(101 + i, 1) for i in range(2)],
    )
    bids, asks = book.top_tokens()
    assert [price for price, _ in bids] == [b"100", b"99", b"98"]
    assert len(asks) == 2
    assert book.top_tokens(5) == book.top_tokens(3) == book.top_tokens(None)
    assert_same_levels(book)


def test_top_tokens_after_truncation_and_deletes() -> None:
    """Updates that push levels beyond the depth leave truncated entries in the side's
    lists (dropped in batches): they are never shown."""
    book = OrderBook("BTC/USD", 3)
    book.apply_snapshot(
        [BookLevel.of(D(100) - i, 1) for i in range(3)],
        [BookLevel.of(D(101) + i, 1) for i in range(3)],
    )
    for step in range(1, 80):
        book.apply_update(
            [BookLevel.of(D(100) + step, step)], [BookLevel.of(D(101) - D(step) / 1000, 2)]
        )
        assert_same_levels(book)
    book.apply_update([BookLevel.of(D(100) + 79, 0)], [BookLevel.of(D("100.921"), 0)])
    assert_same_levels(book)
    bids, asks = book.top_tokens()
    assert len(bids) == len(asks) == 2


def test_top_tokens_of_an_empty_and_a_one_sided_book() -> None:
    book = OrderBook("BTC/USD", 5)
    book.apply_snapshot([], [])
    assert book.top_tokens() == ([], [])
    book.apply_update([BookLevel.of("1.5", "2")], [])
    assert book.top_tokens(3) == ([(b"1.5", b"2")], [])


@pytest.mark.parametrize(
    "mark", ["never", "mark_resyncing", "mark_failed", "mark_awaiting_snapshot"]
)
def test_top_tokens_refuse_a_book_that_is_not_live(mark: str) -> None:
    book = OrderBook("BTC/USD", 5)
    if mark != "never":
        book.apply_snapshot([BookLevel.of(1, 1)], [BookLevel.of(2, 1)])
        getattr(book, mark)()
    with pytest.raises(BookNotLiveError) as own:
        book.bids(1)
    with pytest.raises(BookNotLiveError) as raised:
        book.top_tokens(1)
    assert str(raised.value) == str(own.value)
    with pytest.raises(BookNotLiveError):
        book.top_tokens(-1)  # not live comes first


def test_top_tokens_refuse_a_negative_n() -> None:
    book = OrderBook("BTC/USD", 5)
    book.apply_snapshot([BookLevel.of(1, 1)], [])
    with pytest.raises(LocalProtocolError, match=r"^n must be None or >= 0, got -1$"):
        book.top_tokens(-1)


@st.composite
def update_runs(draw: st.DrawFn) -> tuple[int, int, list[list[tuple[int, int]]]]:
    depth = draw(st.integers(1, 6))
    view = draw(st.integers(1, depth))
    price = st.integers(1, 30)
    qty = st.integers(0, 3)
    steps = draw(st.lists(st.lists(st.tuples(price, qty), max_size=8), max_size=25))
    return depth, view, steps


@settings(max_examples=80)
@given(run=update_runs())
def test_top_tokens_follow_any_run_of_updates(
    run: tuple[int, int, list[list[tuple[int, int]]]],
) -> None:
    depth, view, steps = run
    book = OrderBook("BTC/USD", depth, view_depth=view)
    book.apply_snapshot([], [])
    for step in steps:
        # bids at prices 1-15, asks at 16-30: one update moves both sides
        bids = [BookLevel.of(p, q) for p, q in step if p <= 15]
        asks = [BookLevel.of(p, q) for p, q in step if p > 15]
        book.apply_update(bids, asks)
        assert_same_levels(book)


# -- L3Book.top_totals --------------------------------------------------------------------------


def l3(order_id: str, price: str, qty: str, event: str | None = None) -> L3Order:
    return L3Order(order_id, D(price), D(qty), None, event)


def expected_totals(book: L3Book, n: int | None) -> tuple[list[tuple[Decimal, Decimal, int]], ...]:
    """What bids(n)/asks(n) show, totalled exactly here."""
    return tuple(
        [
            (level.price, sum_exact(order.order_qty for order in level.orders), len(level.orders))
            for level in levels
        ]
        for levels in (book.bids(n), book.asks(n))
    )


def sum_exact(values: object) -> Decimal:
    total = D(0)
    for value in values:  # type: ignore[attr-defined]
        total = EXACT.add(total, value)
    return total


def live_l3() -> L3Book:
    book = L3Book("BTC/USD", 10)
    book.apply_snapshot(
        [l3("b1", "100", "1.5"), l3("b2", "100", "0.25"), l3("b3", "99.5", "2")],
        [l3("a1", "101", "0.00005100"), l3("a2", "102", "3"), l3("a3", "102", "1E+2")],
    )
    return book


def test_top_totals_sum_each_level_exactly() -> None:
    book = live_l3()
    assert book.top_totals() == (
        [(D(100), D("1.75"), 2), (D("99.5"), D(2), 1)],
        [(D(101), D("0.00005100"), 1), (D(102), D(103), 2)],
    )
    assert book.top_totals(1) == ([(D(100), D("1.75"), 2)], [(D(101), D("0.00005100"), 1)])
    assert book.top_totals(0) == ([], [])
    assert str(book.top_totals()[1][0][1]) == "0.00005100"  # the digits sent
    for n in (None, 0, 1, 2, 3, 10**30):
        assert book.top_totals(n) == expected_totals(book, n)


def test_top_totals_ignore_the_thread_context() -> None:
    book = L3Book("BTC/USD", 10)
    many = "123456789012345678901234567890.123456789"
    book.apply_snapshot([l3("b1", "100", many), l3("b2", "100", "1E-30")], [])
    with localcontext(Context(prec=3, traps=[Inexact])):
        (level,), _ = book.top_totals()
    assert level[1] == EXACT.add(D(many), D("1E-30"))


def test_top_totals_follow_every_change() -> None:
    book = live_l3()
    before = book.top_totals()
    again = book.top_totals()
    assert again == before
    assert again[0][0] is before[0][0]  # an unchanged level keeps its tuple
    steps: list[tuple[list[L3Order], list[L3Order]]] = [
        ([l3("b4", "100", "1", "add")], []),  # a new order on a level
        ([l3("b1", "100", "0.5", "modify")], []),  # a partial fill
        ([l3("b2", "100", "0.25", "delete")], []),  # an order leaves, the level stays
        ([l3("b3", "99.5", "2", "delete")], []),  # a level goes
        ([l3("b1", "98", "0.5", "modify")], []),  # an order moves to a new level
        ([], [l3("a4", "101.5", "7", "add")]),  # a new level
        ([], [l3("a1", "101", "0", "modify")]),  # a zero quantity rests
    ]
    for bids, asks in steps:
        book.apply_update(bids, asks)
        for n in (None, 1, 2):
            assert book.top_totals(n) == expected_totals(book, n)
    assert book.top_totals()[1][0] == (D(101), D(0), 1)


def test_top_totals_after_truncation() -> None:
    book = L3Book("BTC/USD", 10)
    book.apply_snapshot([l3(f"b{i}", str(100 - i), "1") for i in range(10)], [])
    book.apply_update([l3(f"n{i}", str(200 + i), "2", "add") for i in range(5)], [])
    bids, asks = book.top_totals()
    assert [price for price, _, _ in bids] == [D(204 - i) for i in range(5)] + [
        D(100 - i) for i in range(5)
    ]
    assert asks == []
    assert book.top_totals() == expected_totals(book, None)


def test_top_totals_after_a_new_snapshot_and_new_precisions() -> None:
    book = live_l3()
    book.top_totals()
    book.set_precision(1, 8)
    assert book.top_totals() == expected_totals(book, None)
    book.apply_snapshot([l3("x", "5", "1")], [])
    assert book.top_totals() == ([(D(5), D(1), 1)], [])


@pytest.mark.parametrize("n", [-1, True, 1.0, "2", D(1)], ids=repr)
def test_top_totals_refuse_a_bad_n(n: object) -> None:
    with pytest.raises(LocalProtocolError) as raised:
        live_l3().top_totals(n)  # type: ignore[arg-type]
    assert str(raised.value) == f"n must be None or an int >= 0, got {n!r}"


def test_top_totals_refuse_a_book_that_is_not_live() -> None:
    book = L3Book("BTC/USD", 10)
    with pytest.raises(BookNotLiveError):
        book.top_totals()
    book = live_l3()
    book.mark_resyncing()
    with pytest.raises(BookNotLiveError) as own:
        book.bids()
    with pytest.raises(BookNotLiveError) as raised:
        book.top_totals(-1)  # not live comes first
    assert str(raised.value) == str(own.value)
    assert book.state is BookState.RESYNCING
