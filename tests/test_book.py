"""OrderBook: real captures replayed checksum by checksum, a naive model, queries and states."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from budget import examples, sized
from frames import NaiveBook, ack
from hypothesis import given
from hypothesis import strategies as st
from loops import LOOPS, LOOPS_IN_TEST, using_loop, with_each_loop

from kraken_proto import (
    Action,
    BookResync,
    ClientConfig,
    Emit,
    KrakenProtocol,
    ProtocolError,
    Send,
)
from kraken_proto.book import _SPARE, _TRUNCATED, BookState, OrderBook, _digits, _split
from kraken_proto.checksum import book_checksum, digits, level_fragment
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.events import BookLevel, BookUpdate

# Every test here runs with the compiled L2 update loop and with the Python one: the costly
# ones (LOOPS_IN_TEST) build or draw their input once and check it with each loop themselves.
pytestmark = pytest.mark.usefixtures("book_loop")

D = Decimal
_E = TypeVar("_E")

# -- replaying the real captures -----------------------------------------------------------------

BOOK_FRAMES = {
    "btcusd_l2": 301,
    "btcusd_sample": 2052,
    "ethusd_sample": 1129,
    "xrpusd_sample": 1147,
}
PRECISIONS = {"BTC/USD": (1, 8), "ETH/USD": (2, 8), "XRP/USD": (5, 8)}


class _Envelope(msgspec.Struct):
    channel: str | None = None
    method: str | None = None
    result: dict[str, Any] | None = None


class _BookFrame(msgspec.Struct):
    channel: str
    type: str
    data: list[BookUpdate]


_envelope = msgspec.json.Decoder(_Envelope)
_book_frame = msgspec.json.Decoder(_BookFrame)


def _replay(
    path: Path,
    precise: bool,
    transform: Callable[[BookLevel], BookLevel] | None = None,
) -> tuple[int, list[tuple[int, int, int]], dict[str, OrderBook]]:
    """Feed every book frame of a capture to OrderBooks.

    Returns the number of book frames, the mismatches as (frame index, computed, wire) and
    the books. Depth comes from the subscribe ack; an unsubscribe ack sends the book back to
    awaiting a snapshot, so every later snapshot must replace it.
    """
    books: dict[str, OrderBook] = {}
    depth: int | None = None
    count = 0
    mismatches: list[tuple[int, int, int]] = []
    with path.open() as lines:
        for line in lines:
            text = json.loads(line)["text"]
            envelope = _envelope.decode(text)
            if envelope.method in ("subscribe", "unsubscribe"):
                assert envelope.result is not None
                assert envelope.result["channel"] == "book"
                symbol = envelope.result["symbol"]
                if envelope.method == "subscribe":
                    depth = envelope.result["depth"]
                elif symbol in books:
                    books[symbol].mark_awaiting_snapshot()
                continue
            if envelope.channel != "book":
                continue
            frame = _book_frame.decode(text)
            for entry in frame.data:
                bids: Sequence[BookLevel] = entry.bids
                asks: Sequence[BookLevel] = entry.asks
                if transform is not None:
                    bids = [transform(level) for level in bids]
                    asks = [transform(level) for level in asks]
                book = books.get(entry.symbol)
                if book is None:
                    assert depth is not None, "book data before its subscribe ack"
                    pp, qp = PRECISIONS[entry.symbol] if precise else (None, None)
                    book = OrderBook(entry.symbol, depth, price_precision=pp, qty_precision=qp)
                    books[entry.symbol] = book
                if frame.type == "snapshot":
                    computed = book.apply_snapshot(bids, asks)
                    assert book.is_live
                    # the snapshot replaced the book: exactly its levels, best first
                    assert book.bids() == list(bids)
                    assert book.asks() == list(asks)
                else:
                    assert frame.type == "update"
                    computed = book.apply_update(bids, asks)
                if computed != entry.checksum:
                    mismatches.append((count, computed, entry.checksum))
                assert book.checksum() == computed
                count += 1
    return count, mismatches, books


@pytest.mark.parametrize("precise", [False, True], ids=["own-digits", "precision"])
@pytest.mark.parametrize("name", sorted(BOOK_FRAMES))
def test_real_capture_every_checksum_matches(
    real_capture_paths: dict[str, Path], name: str, precise: bool
) -> None:
    count, mismatches, books = _replay(real_capture_paths[name], precise)
    assert count == BOOK_FRAMES[name]
    assert mismatches == []
    (book,) = books.values()
    assert book.is_live
    assert len(book.bids()) == len(book.asks()) == book.depth
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert best_bid is not None and best_ask is not None
    assert best_bid.price < best_ask.price


def test_real_capture_l2_snapshots_replace_the_book(real_capture_paths: dict[str, Path]) -> None:
    """btcusd_l2 has five snapshots; each is checked against its wire checksum in _replay."""
    path = real_capture_paths["btcusd_l2"]
    lines = path.read_text().splitlines()
    snapshots = sum('"type":"snapshot"' in json.loads(line)["text"] for line in lines)
    assert snapshots == 5
    count, mismatches, books = _replay(path, precise=True)
    assert (count, mismatches) == (301, [])
    assert books["BTC/USD"].depth == 10


def _reserialized(level: BookLevel) -> BookLevel:
    """The level as a float round trip prints it: the padding is gone."""
    return BookLevel.of(D(str(float(level.price))), D(str(float(level.qty))))


@pytest.mark.parametrize("name", sorted(BOOK_FRAMES))
def test_reserialized_numbers_need_the_precision(
    real_capture_paths: dict[str, Path], name: str
) -> None:
    path = real_capture_paths[name]
    count, mismatches, _ = _replay(path, precise=True, transform=_reserialized)
    assert count == BOOK_FRAMES[name]
    assert mismatches == []
    count, mismatches, _ = _replay(path, precise=False, transform=_reserialized)
    assert mismatches[0][0] == 0  # the first snapshot already fails without the precision
    assert len(mismatches) > count // 2


def test_reserialized_snapshot_set_precision_repairs_the_checksum(
    real_capture_paths: dict[str, Path],
) -> None:
    with real_capture_paths["ethusd_sample"].open() as lines:
        texts = (json.loads(line)["text"] for line in lines)
        text = next(t for t in texts if '"type":"snapshot"' in t)
    entry = _book_frame.decode(text).data[0]
    bids = [_reserialized(level) for level in entry.bids]
    asks = [_reserialized(level) for level in entry.asks]
    assert bids == list(entry.bids) and asks == list(entry.asks)  # equal values, other text
    assert [str(level.qty) for level in bids] != [str(level.qty) for level in entry.bids]
    book = OrderBook("ETH/USD", 25)
    assert book.apply_snapshot(bids, asks) != entry.checksum
    book.set_precision(2, 8)
    assert book.checksum() == entry.checksum
    assert (book.price_precision, book.qty_precision) == (2, 8)
    book.set_precision(None, None)
    assert book.checksum() != entry.checksum


# -- the documented vector through the book -----------------------------------------------------


def _doc_vector(data_dir: Path) -> tuple[list[BookLevel], list[BookLevel]]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (vector,) = [v for v in vectors if v["id"] == "book_v2_doc_guide_btcusd"]
    bids = [BookLevel.of(lv["price"], lv["qty"]) for lv in vector["input"]["bids"]]
    asks = [BookLevel.of(lv["price"], lv["qty"]) for lv in vector["input"]["asks"]]
    return bids, asks


@pytest.mark.parametrize(("pp", "qp"), [(1, 8), (None, None)])
def test_doc_vector_snapshot(data_dir: Path, pp: int | None, qp: int | None) -> None:
    bids, asks = _doc_vector(data_dir)
    book = OrderBook("BTC/USD", 10, price_precision=pp, qty_precision=qp)
    assert book.apply_snapshot(bids, asks) == 3310070434
    # the levels arrive best first; reversed input gives the same book
    book = OrderBook("BTC/USD", 10, price_precision=pp, qty_precision=qp)
    assert book.apply_snapshot(bids[::-1], asks[::-1]) == 3310070434


def test_set_precision_changes_the_checksum(data_dir: Path) -> None:
    bids, asks = _doc_vector(data_dir)
    trimmed_bids = [BookLevel.of(lv.price.normalize(), lv.qty.normalize()) for lv in bids]
    trimmed_asks = [BookLevel.of(lv.price.normalize(), lv.qty.normalize()) for lv in asks]
    book = OrderBook("BTC/USD", 10)
    trimmed = book.apply_snapshot(trimmed_bids, trimmed_asks)
    assert trimmed != 3310070434
    book.set_precision(1, 8)
    assert book.checksum() == 3310070434
    book.set_precision(2, 8)
    expected = book_checksum(
        [(lv.price, lv.qty) for lv in asks], [(lv.price, lv.qty) for lv in bids], 2, 8
    )
    assert book.checksum() == expected != 3310070434
    book.set_precision(None, None)
    assert book.checksum() == trimmed
    # updates after a precision change use it too
    book.set_precision(1, 8)
    update = [BookLevel.of("45285.2", "0.001")]  # same qty, trimmed
    assert book.apply_update([], update) == 3310070434


# -- hand-built book: queries --------------------------------------------------------------------


def _levels(*pairs: tuple[str, str]) -> list[BookLevel]:
    return [BookLevel.of(price, qty) for price, qty in pairs]


BIDS = _levels(("99.5", "3"), ("99.0", "0.75"), ("98.0", "10"), ("97.5", "0.125"))
ASKS = _levels(("100.5", "1.25"), ("101.0", "2"), ("102.25", "0.5"), ("103", "4"))


def _book(depth: int = 10, view_depth: int | None = None) -> OrderBook:
    book = OrderBook("TST/USD", depth, view_depth=view_depth)
    book.apply_snapshot(BIDS, ASKS)
    return book


def test_queries_exact_values() -> None:
    book = _book()
    assert book.best_bid() == BookLevel.of("99.5", "3")
    assert book.best_ask() == BookLevel.of("100.5", "1.25")
    spread = book.spread()
    assert spread == D("1.0") and str(spread) == "1.0"
    mid = book.mid_price()
    assert mid == D("100") and str(mid) == "100.0"
    assert book.bid_volume() == D("13.875")
    assert book.ask_volume() == D("7.75")
    assert str(book.ask_volume()) == "7.75"
    assert book.bids() == BIDS
    assert book.asks() == ASKS
    assert book.bids(2) == BIDS[:2]
    assert book.asks(3) == ASKS[:3]
    assert book.bids(0) == [] and book.asks(0) == []
    assert book.bids(100) == BIDS and book.asks(100) == ASKS


def test_mid_price_is_exact_on_an_odd_tick_sum() -> None:
    book = OrderBook("TST/USD", 10)
    book.apply_snapshot(_levels(("99.4", "1")), _levels(("100.5", "1")))
    assert book.mid_price() == D("99.95")
    assert book.spread() == D("1.1")
    book.apply_snapshot(_levels(("0.00000001", "1")), _levels(("0.00000002", "1")))
    assert book.mid_price() == D("0.000000015")


def test_view_depth_limits_every_query() -> None:
    book = _book(depth=10, view_depth=2)
    assert book.view_depth == 2 and book.depth == 10
    assert book.bids() == BIDS[:2]
    assert book.asks() == ASKS[:2]
    assert book.bids(3) == BIDS[:2]
    assert book.asks(1) == ASKS[:1]
    assert book.bid_volume() == D("3.75")
    assert book.ask_volume() == D("3.25")
    # the checksum still covers every held level (view_depth is only what the user sees)
    expected = book_checksum(
        [(lv.price, lv.qty) for lv in ASKS], [(lv.price, lv.qty) for lv in BIDS], None, None
    )
    assert book.checksum() == expected


def test_empty_sides() -> None:
    book = OrderBook("TST/USD", 10)
    assert book.apply_snapshot([], []) == 0
    assert book.best_bid() is None and book.best_ask() is None
    assert book.spread() is None and book.mid_price() is None
    assert book.bid_volume() == D(0) and isinstance(book.bid_volume(), Decimal)
    assert book.ask_volume() == D(0) and isinstance(book.ask_volume(), Decimal)
    assert book.bids() == [] and book.asks() == []
    book.apply_update(BIDS[:1], [])
    assert book.spread() is None and book.mid_price() is None
    assert book.best_bid() == BIDS[0] and book.best_ask() is None
    book.apply_update([], ASKS[:1])
    assert book.spread() == D("1.0")


def test_negative_n_is_refused() -> None:
    book = _book()
    with pytest.raises(LocalProtocolError, match="n must be"):
        book.bids(-1)
    with pytest.raises(LocalProtocolError, match="n must be"):
        book.asks(-3)


# -- states --------------------------------------------------------------------------------------

QUERIES: list[Callable[[OrderBook], object]] = [
    OrderBook.best_bid,
    OrderBook.best_ask,
    OrderBook.spread,
    OrderBook.mid_price,
    OrderBook.bids,
    OrderBook.asks,
    OrderBook.bid_volume,
    OrderBook.ask_volume,
    lambda book: book.bids(3),
    lambda book: book.asks(3),
]


@pytest.mark.parametrize("query", QUERIES)
def test_queries_refuse_unless_live(query: Callable[[OrderBook], object]) -> None:
    book = OrderBook("TST/USD", 10)
    assert book.state is BookState.AWAITING_SNAPSHOT and not book.is_live
    with pytest.raises(BookNotLiveError) as caught:
        query(book)
    assert (caught.value.symbol, caught.value.state) == ("TST/USD", "awaiting_snapshot")
    book.apply_snapshot(BIDS, ASKS)
    query(book)
    for mark, state in [
        (book.mark_resyncing, BookState.RESYNCING),
        (book.mark_failed, BookState.FAILED),
        (book.mark_awaiting_snapshot, BookState.AWAITING_SNAPSHOT),
    ]:
        mark()
        assert book.state is state and not book.is_live
        with pytest.raises(BookNotLiveError) as caught:
            query(book)
        assert caught.value.state == state.value
        assert "TST/USD" in str(caught.value)


def test_apply_update_before_snapshot_raises() -> None:
    book = OrderBook("TST/USD", 10)
    with pytest.raises(LocalProtocolError, match="apply a snapshot"):
        book.apply_update(BIDS, ASKS)
    book.apply_snapshot(BIDS, ASKS)
    book.mark_resyncing()
    with pytest.raises(LocalProtocolError, match="resyncing"):
        book.apply_update(BIDS, [])
    # levels are kept while not live, and the checksum can still be computed
    assert book.checksum() == _book().checksum()
    assert book.apply_snapshot(BIDS[:1], ASKS[:1]) == book.checksum()
    assert book.state is BookState.LIVE
    assert book.bids() == BIDS[:1]


@pytest.mark.parametrize("mark", ["mark_resyncing", "mark_failed", "mark_awaiting_snapshot"])
def test_a_snapshot_makes_the_book_live_from_any_state(mark: str) -> None:
    book = _book()
    getattr(book, mark)()
    assert not book.is_live
    book.apply_snapshot(BIDS[:2], ASKS[:2])
    assert book.state is BookState.LIVE and book.is_live
    assert book.asks() == ASKS[:2]


def test_repr() -> None:
    book = OrderBook("TST/USD", 10)
    assert repr(book) == "<OrderBook TST/USD awaiting_snapshot bid=None ask=None levels=0/0>"
    book.apply_snapshot(BIDS, ASKS)
    assert repr(book) == "<OrderBook TST/USD live bid=99.5 ask=100.5 levels=4/4>"
    book.mark_failed()
    assert "failed" in repr(book) and "bid=99.5" in repr(book)


def test_attributes_are_read_only() -> None:
    book = OrderBook("TST/USD", 25, view_depth=10, price_precision=2, qty_precision=8)
    assert (book.symbol, book.depth, book.view_depth) == ("TST/USD", 25, 10)
    assert (book.price_precision, book.qty_precision) == (2, 8)
    with pytest.raises(AttributeError):
        book.symbol = "X"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        book.depth = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"depth": 0}, "depth"),
        ({"depth": -5}, "depth"),
        ({"depth": True}, "depth"),
        ({"depth": 2.0}, "depth"),
        ({"depth": 10, "view_depth": 0}, "view_depth"),
        ({"depth": 10, "view_depth": 11}, "view_depth"),
        ({"depth": 10, "view_depth": True}, "view_depth"),
        ({"depth": 10, "price_precision": -1}, "price_precision"),
        ({"depth": 10, "price_precision": 19}, "price_precision"),
        ({"depth": 10, "price_precision": 1.0}, "price_precision"),
        ({"depth": 10, "qty_precision": 19}, "qty_precision"),
        ({"depth": 10, "qty_precision": False}, "qty_precision"),
    ],
)
def test_constructor_validation(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(LocalProtocolError, match=name):
        OrderBook("TST/USD", **kwargs)


def test_constructor_accepts_the_bounds() -> None:
    book = OrderBook("TST/USD", 1, view_depth=1, price_precision=0, qty_precision=18)
    assert (book.depth, book.view_depth, book.price_precision, book.qty_precision) == (1, 1, 0, 18)
    assert OrderBook("TST/USD", 5).view_depth == 5


def test_set_precision_validation() -> None:
    book = _book()
    with pytest.raises(LocalProtocolError, match="price_precision"):
        book.set_precision(19, 8)
    with pytest.raises(LocalProtocolError, match="qty_precision"):
        book.set_precision(1, -1)
    assert (book.price_precision, book.qty_precision) == (None, None)


# -- update semantics, deterministic -------------------------------------------------------------


def test_snapshot_applies_in_order_and_truncates() -> None:
    bids = _levels(("1", "1"), ("3", "1"), ("2", "1"), ("3", "0"), ("4", "2"), ("2", "5"))
    asks = _levels(("9", "1"), ("7", "1"), ("8", "0"), ("8", "1"), ("6", "1"), ("7", "0"))
    book = OrderBook("TST/USD", 2)
    book.apply_snapshot(bids, asks)
    # bids: {1:1, 2:5, 4:2} -> highest two; asks: {9:1, 8:1, 6:1} -> lowest two
    assert book.bids() == _levels(("4", "2"), ("2", "5"))
    assert book.asks() == _levels(("6", "1"), ("8", "1"))


def test_update_semantics() -> None:
    book = OrderBook("TST/USD", 3)
    book.apply_snapshot(_levels(("10", "1"), ("9", "1"), ("8", "1")), _levels(("11", "1")))
    before = book.checksum()
    assert book.apply_update(_levels(("5", "0")), _levels(("50", "0"))) == before  # absent
    assert book.apply_update([], []) == before
    # a price repeated within one message: the last entry wins, deletes in between count
    book.apply_update(_levels(("9", "2"), ("9", "0"), ("9.5", "1"), ("9.5", "3")), [])
    assert book.bids() == _levels(("10", "1"), ("9.5", "3"), ("8", "1"))
    # inserting above the best pushes the worst out (truncation, no delete on the wire)
    book.apply_update(_levels(("10.5", "1")), _levels(("10.75", "2"), ("12", "1"), ("13", "1")))
    assert book.bids() == _levels(("10.5", "1"), ("10", "1"), ("9.5", "3"))
    assert book.asks() == _levels(("10.75", "2"), ("11", "1"), ("12", "1"))
    # an insert below the worst level is truncated away at once
    book.apply_update(_levels(("1", "1")), _levels(("99", "1")))
    assert book.bids()[-1].price == D("9.5") and book.asks()[-1].price == D("12")


def _expected(book_asks: list[BookLevel], book_bids: list[BookLevel], pp: Any, qp: Any) -> int:
    return book_checksum(
        [(lv.price, lv.qty) for lv in book_asks], [(lv.price, lv.qty) for lv in book_bids], pp, qp
    )


@pytest.mark.parametrize(("pp", "qp"), [(2, 8), (None, None)])
def test_deep_levels_rise_into_the_checksum(pp: int | None, qp: int | None) -> None:
    """Depth 30: changes below the top 10 leave the checksum alone until a level rises."""
    asks = [BookLevel.of(D(100 + i).scaleb(-2) + 1, "1.00000000") for i in range(30)]
    bids = [BookLevel.of(D(99 - i).scaleb(-2), "2.00000000") for i in range(30)]
    book = OrderBook("TST/USD", 30, price_precision=pp, qty_precision=qp)
    book.apply_snapshot(bids, asks)
    assert book.checksum() == _expected(asks, bids, pp, qp)

    def check() -> None:
        assert book.checksum() == _expected(book.asks(), book.bids(), pp, qp)

    top = book.checksum()
    # modify, insert and delete deep levels: the checksum does not move
    deep_ask, deep_bid = asks[20], bids[20]
    assert (
        book.apply_update([BookLevel.of(deep_bid.price, "7")], [BookLevel.of(deep_ask.price, "7")])
        == top
    )
    assert (
        book.apply_update(
            [BookLevel.of(deep_bid.price - D("0.001"), "1")],
            [BookLevel.of(deep_ask.price + D("0.001"), "1")],
        )
        == top
    )
    assert (
        book.apply_update([BookLevel.of(deep_bid.price, 0)], [BookLevel.of(deep_ask.price, 0)])
        == top
    )
    # delete in the top 10: the 11th level rises (its fragment was never computed)
    book.apply_update([BookLevel.of(bids[0].price, 0)], [BookLevel.of(asks[0].price, 0)])
    check()
    # modify the level that just rose, then delete again so a computed one rises
    book.apply_update(
        [BookLevel.of(bids[10].price, "3.5"), BookLevel.of(D("0.995"), "1")],
        [BookLevel.of(asks[10].price, "3.5"), BookLevel.of(D("1.9995"), "1")],
    )
    check()
    book.apply_update([BookLevel.of(bids[1].price, 0)], [BookLevel.of(asks[1].price, 0)])
    check()
    for _ in range(25):  # empty the book from the top, one level per side per message
        best_bid, best_ask = book.best_bid(), book.best_ask()
        assert best_bid is not None and best_ask is not None
        book.apply_update([BookLevel.of(best_bid.price, 0)], [BookLevel.of(best_ask.price, 0)])
        check()
    # 30 levels, +1 -1 (deep insert, truncated), -1 deep, -1 top, +1, -1 top, -25
    assert [lv.price for lv in book.asks()] == [D("2.26"), D("2.27"), D("2.28")]
    assert [lv.price for lv in book.bids()] == [D("0.73"), D("0.72"), D("0.71")]


# -- odd tokens, rescaling, garbage --------------------------------------------------------------


def _raw_levels(*pairs: tuple[bytes, bytes]) -> list[BookLevel]:
    return [BookLevel(msgspec.Raw(price), msgspec.Raw(qty)) for price, qty in pairs]


def _reference(book: OrderBook) -> int:
    return _expected(book.asks(), book.bids(), book.price_precision, book.qty_precision)


@pytest.mark.parametrize(("pp", "qp"), [(None, None), (1, 8), (0, 0), (None, 2)])
def test_odd_tokens_give_the_checksum_of_their_values(pp: int | None, qp: int | None) -> None:
    book = OrderBook("TST/USD", 10, price_precision=pp, qty_precision=qp)
    bids = _raw_levels((b"99.5", b"1.00000000"), (b"99", b"2"), (b'"98.5"', b"3.5e0"))
    asks = _raw_levels((b"100.5", b'"0.50"'), (b"1.01e2", b"1E-8"), (b"102", b"0.0"))
    assert book.apply_snapshot(bids, asks) == _reference(book)
    assert [lv.price for lv in book.asks()] == [D("100.5"), D("101")]
    # a price with more decimals than the book's scale rescales every key
    update = _raw_levels((b"99.25", b"1"), (b"99.250", b"4"), (b"9.925E1", b"5"))
    assert book.apply_update(update, _raw_levels((b"100.75", b"2"))) == _reference(book)
    assert [(lv.price, lv.qty) for lv in book.bids()] == [
        (D("99.5"), D(1)),
        (D("99.25"), D(5)),
        (D(99), D(2)),
        (D("98.5"), D("3.5")),
    ]
    assert [lv.price for lv in book.asks()] == [D("100.5"), D("100.75"), D(101)]
    # zero in any form deletes; prices seen before in another form find their level
    zeros = _raw_levels((b"99.50", b"0E-8"), (b'"99"', b'"0"'), (b"9.85e1", b"-0.0"))
    assert book.apply_update(zeros, _raw_levels((b"100.500", b"0.00"))) == _reference(book)
    assert [lv.price for lv in book.bids()] == [D("99.25")]
    assert [lv.price for lv in book.asks()] == [D("100.75"), D(101)]
    for precision in ((1, 8), (None, None), (3, 3)):
        book.set_precision(*precision)
        assert book.checksum() == _reference(book)
        assert book.apply_update(_raw_levels((b"99.125", b"1.5")), []) == _reference(book)


@pytest.mark.parametrize(
    ("price", "qty", "error"),
    [
        (b"true", b"1", ValueError),
        (b'"abc"', b"1", ValueError),
        (b"[1.5]", b"1", ValueError),
        (b"null", b"1", ValueError),
        (b'"NaN"', b"1", ArithmeticError),
        (b'"-Infinity"', b"1", ArithmeticError),
        (b"1e999999999", b"1", ArithmeticError),
        (b"1e-70", b"1", ArithmeticError),
        (b"1." + b"0" * 69 + b"1", b"1", ArithmeticError),  # 70 decimals: too many
        (b"63000.0", b"{}", ValueError),
        (b"63000.0", b'"x"', ValueError),
        (b"63000.0", b'"sNaN"', ArithmeticError),
        (b"63000.0", b"1e99999999", ArithmeticError),
    ],
)
def test_tokens_that_are_no_usable_number_are_refused(
    price: bytes, qty: bytes, error: type[Exception]
) -> None:
    book = _book()
    before = (book.bids(), book.asks(), book.checksum())
    bad = _raw_levels((price, qty))
    with pytest.raises(error):
        book.apply_snapshot(bad, ASKS)
    assert (book.bids(), book.asks(), book.checksum()) == before  # a snapshot is all or nothing
    with pytest.raises(error):
        book.apply_update(bad, [])
    with pytest.raises(error):
        book.apply_update([], bad)


# Prices are positive and quantities not negative, as Kraken's always are: anything else is
# refused the way an unusable number is, with an error naming the field and the token.
SIGNED = [
    (b"-100.50", b"1", "price"),  # written at the book's scale: the fast paths' form
    (b"-100.5", b"1", "price"),
    (b"-1", b"1", "price"),
    (b'"-100.5"', b"1", "price"),
    (b"-1.005e2", b"1", "price"),
    (b"0.00", b"1", "price"),  # zero, at the book's scale too: Kraken never quotes it
    (b"0", b"1", "price"),
    (b"-0.00", b"1", "price"),
    (b'"0E-8"', b"1", "price"),
    (b"100.50", b"-0.5", "qty"),
    (b"100.50", b"-1.00000000", "qty"),
    (b"100.50", b"-1", "qty"),
    (b"100.50", b'"-0.5"', "qty"),
    (b"100.50", b"-5e-1", "qty"),
]


@pytest.mark.parametrize(("price", "qty", "field"), SIGNED)
def test_prices_not_positive_and_negative_quantities_are_refused(
    price: bytes, qty: bytes, field: str
) -> None:
    book = _book()
    before = (book.bids(), book.asks(), book.checksum(), book._scale)
    bad = _raw_levels((price, qty))
    token = price if field == "price" else qty
    problem = "is not positive" if field == "price" else "is negative"
    match = re.escape(f"{field} {token!r} {problem}")
    for bids, asks in ((bad, ASKS), (BIDS, bad), (BIDS + bad, ASKS + bad)):
        with pytest.raises(ValueError, match=match):
            book.apply_snapshot(bids, asks)
        assert (book.bids(), book.asks(), book.checksum(), book._scale) == before
    for bids, asks in ((bad, []), ([], bad), (bad, bad)):
        with pytest.raises(ValueError, match=match):
            book.apply_update(bids, asks)
        assert (book.bids(), book.asks(), book.checksum(), book._scale) == before
        assert book.is_live  # the book does not resync by itself: the caller does
    # refused mid-message: the levels before it are applied, as for any refused token
    with pytest.raises(ValueError, match=match):
        book.apply_update(_raw_levels((b"99.75", b"1"), (price, qty), (b"99.25", b"1")), [])
    assert [lv.price for lv in book.bids()] == [D("99.75"), D("99.5"), D("99"), D(98), D("97.5")]


@pytest.mark.parametrize("zero", [b"-0", b"-0.0", b"-0.00000000", b'"-0.0"', b"-0E-8"])
def test_a_negative_zero_quantity_is_zero_and_deletes(zero: bytes) -> None:
    book = _book()
    gone = _raw_levels((b"99.5", zero), (b"96", zero))
    book.apply_snapshot(BIDS + gone, ASKS + _raw_levels((b"100.50", zero)))
    assert book.bids() == BIDS[1:] and book.asks() == ASKS[1:]
    assert book.checksum() == _reference(book)
    book.apply_snapshot(BIDS, ASKS)
    update = _raw_levels((b"99.50", zero), (b"99.0", zero), (b"50.00", zero))
    assert book.apply_update(update, _raw_levels((b"100.50", zero))) == _reference(book)
    assert book.bids() == BIDS[2:] and book.asks() == ASKS[1:]


def _live_protocol(*symbols: str) -> tuple[KrakenProtocol, dict[str, NaiveBook]]:
    """A protocol with live, checksum-verified depth-10 books for ``symbols``."""
    proto = KrakenProtocol(ClientConfig(ping_interval=None))
    proto.subscribe("book", list(symbols), 0.0)
    proto.connect(0.0)
    (request,) = [json.loads(a.text) for a in proto.connection_made(0.0) if isinstance(a, Send)]
    books = {}
    for symbol in symbols:
        proto.receive_data(ack("book", symbol, request["req_id"], depth=10, snapshot=True), 0.1)
        books[symbol] = NaiveBook(symbol)
        proto.receive_data(books[symbol].snapshot(), 0.2)
        book = proto.book(symbol)
        assert book is not None and book.is_live
    return proto, books


def _emitted(actions: list[Action], kind: type[_E]) -> list[_E]:
    return [a.event for a in actions if isinstance(a, Emit) and isinstance(a.event, kind)]


@pytest.mark.parametrize(
    ("bids", "asks", "field", "token"),
    [
        ([("99.5", "-0.5")], [], "qty", "-0.50000000"),
        ([], [("101.0", "-2")], "qty", "-2.00000000"),
        ([], [("-100.5", "1")], "price", "-100.5"),  # would be the best ask
        ([("-1.0", "1")], [], "price", "-1.0"),
        ([], [("0", "1")], "price", "0.0"),
    ],
)
def test_the_protocol_reports_a_signed_number_and_resyncs_only_that_book(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], field: str, token: str
) -> None:
    """A hostile server's levels, with the checksum they would give: refused all the same."""
    proto, books = _live_protocol("BTC/USD", "ETH/USD")
    btc = proto.book("BTC/USD")
    assert btc is not None
    before = (btc.bids(), btc.asks())
    actions = proto.receive_data(books["BTC/USD"].frame(bids, asks), 1.0)
    assert _emitted(actions, BookUpdate) == []
    (error,) = _emitted(actions, ProtocolError)
    assert error.error.startswith("unusable number in the BTC/USD book: ")
    assert f"{field} b'{token}'" in error.error
    assert [r.symbol for r in _emitted(actions, BookResync)] == ["BTC/USD"]
    assert btc.state is BookState.RESYNCING
    # ETH/USD goes on; the new BTC/USD snapshot is refused just the same, then a good one
    # makes the book live again with none of the refused levels.
    eth = proto.receive_data(books["ETH/USD"].frame([("98.0", "7")], [("102.0", "9")]), 1.1)
    assert [u.symbol for u in _emitted(eth, BookUpdate)] == ["ETH/USD"]
    bad = NaiveBook("BTC/USD")
    snapshot = proto.receive_data(bad.frame(bids, asks, snapshot=True), 1.2)
    (error,) = _emitted(snapshot, ProtocolError)
    assert f"{field} b'{token}'" in error.error
    assert _emitted(snapshot, BookUpdate) == [] and not btc.is_live
    done = proto.receive_data(NaiveBook("BTC/USD").snapshot(), 1.3)
    assert _emitted(done, BookUpdate)[0].snapshot
    assert btc.is_live and (btc.bids(), btc.asks()) == before


def test_known_prices_are_forgotten_when_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kraken_proto.book._KNOWN_PRICES", 3)
    book = OrderBook("TST/USD", 5, price_precision=2, qty_precision=8)
    book.apply_snapshot([], [])
    for step in range(40):
        price = f"{100 + step % 9}.{step % 7}0".encode()
        qty = b"0.00000000" if step % 4 == 3 else f"{step}.00000001".encode()
        side = _raw_levels((price, qty))
        book.apply_update(side, side)
        assert book.checksum() == _reference(book)


def test_deep_inserts_reuse_truncated_slots_and_are_dropped_in_batches() -> None:
    """Depth 3: every message inserts a new worst level that truncation then drops."""
    book = OrderBook("TST/USD", 3, price_precision=2, qty_precision=1)
    book.apply_snapshot(_levels(("9.00", "1.0")), _levels(("11.00", "1.0")))
    model = _Model(3)
    model.apply(_levels(("9.00", "1.0")), _levels(("11.00", "1.0")), snapshot=True)
    for step in range(200):
        bids = _levels((f"{8 - step / 100:.2f}", "2.0"), (f"{9 + step / 1000:.3f}", "1.5"))
        asks = _levels((f"{12 + step / 100:.2f}", "2.0"), (f"{11 - step / 1000:.3f}", "0"))
        model.apply(bids, asks, snapshot=False)
        assert book.apply_update(bids, asks) == model.checksum(2, 1)
        assert book.bids() == model.best_bids() and book.asks() == model.best_asks()


# -- token digits and values equal those of the Decimals -------------------------------------------

PRECISIONS_ST = st.one_of(st.none(), st.integers(0, 18))
DECIMALS = st.one_of(
    st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=None),
    st.builds(lambda n, e: D(n).scaleb(e), st.integers(0, 10**12), st.integers(-20, 6)),
    st.builds(lambda n, p: D(f"{n / 10**p:.{p}f}"), st.integers(0, 10**9), st.integers(0, 18)),
)
FORMS = ["plain", "exponent", "quoted"]


def _token(value: Decimal, form: str) -> bytes:
    """A JSON token of ``value``: positional, in exponent form, or a quoted number."""
    if form == "exponent":
        return f"{value:e}".encode()  # keeps the digits: 0.00005100 -> 5.100e-5
    text = format(value, "f")
    return f'"{text}"'.encode() if form == "quoted" else text.encode()


@LOOPS_IN_TEST  # no update loop involved
@sized(200, 500)
@given(value=DECIMALS, form=st.sampled_from(FORMS), precision=PRECISIONS_ST)
def test_token_digits_and_value_equal_the_decimals(
    value: Decimal, form: str, precision: int | None
) -> None:
    token = _token(value, form)
    assert _digits(token, precision) == digits(value, precision).encode()
    if value:
        n, d = _split(token)
        assert D(f"{n}E-{d}") == value  # exact (scaleb would round to 28 digits)
    else:
        with pytest.raises(ValueError, match="is not positive"):
            _split(token)
    assert BookLevel(msgspec.Raw(token), msgspec.Raw(token)).price == value


@LOOPS_IN_TEST  # no update loop involved
@sized(120, 300)
@given(
    price=DECIMALS,
    qty=DECIMALS,
    forms=st.tuples(st.sampled_from(FORMS), st.sampled_from(FORMS)),
    pp=PRECISIONS_ST,
    qp=PRECISIONS_ST,
)
def test_level_fragment_from_tokens_equals_level_fragment(
    price: Decimal, qty: Decimal, forms: tuple[str, str], pp: int | None, qp: int | None
) -> None:
    book = OrderBook("TST/USD", 10, price_precision=pp, qty_precision=qp)
    fragment = book._fragment(_token(price, forms[0]), _token(qty, forms[1]))
    assert fragment == level_fragment(price, qty, pp, qp).encode()


@pytest.mark.parametrize(
    ("token", "precision", "expected"),
    [
        (b"63000.0", 1, b"630000"),  # padded: the token's digits
        (b"63000", 1, b"630000"),  # unpadded: quantized
        (b"0.00000005", 8, b"5"),
        (b"5e-8", 8, b"5"),  # exponent form
        (b'"0.5"', 1, b"5"),  # quoted
        (b"5", 8, b"500000000"),  # shorter than the precision
        (b"0.5", None, b"5"),  # own digits
        (b"5E-8", None, b"5"),
        (b"-1.5", 1, b"-15"),
    ],
)
def test_token_digits(token: bytes, precision: int | None, expected: bytes) -> None:
    assert _digits(token, precision) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"63000.0", (630000, 1)),
        (b"12", (12, 0)),
        (b"1.25E+2", (125, 0)),
        (b"5e+2", (500, 0)),
        (b"5.1e-05", (51, 6)),
        (b'"0.010"', (1, 2)),  # the slow path drops trailing zeros
    ],
)
def test_split(token: bytes, expected: tuple[int, int]) -> None:
    assert _split(token) == expected


@pytest.mark.parametrize(
    "token", [b"-1.50", b"-0.0", b"0.00", b"0", b'"0E-8"', b'"-2.5e1"', b"-1E+2", b'"-0"']
)
def test_split_refuses_a_price_that_is_not_positive(token: bytes) -> None:
    with pytest.raises(ValueError, match=re.escape(f"price {token!r} is not positive")):
        _split(token)


# -- the book against a naive model --------------------------------------------------------------

TICK_PRICES = st.one_of(
    st.builds(
        lambda tick, padded: D(tick).scaleb(-2) if padded else D(tick).scaleb(-2).normalize(),
        st.integers(1, 60),
        st.booleans(),
    ),
    # more decimals than the book's scale (which then grows); 0.010 is the level of 0.01
    st.builds(lambda tick: D(tick).scaleb(-3), st.integers(1, 600)),
)
QTYS = st.one_of(
    st.sampled_from([D("0"), D("0.00000000"), D("0E-8"), D("0.0")]),
    st.builds(lambda n, e: D(n).scaleb(-e), st.integers(1, 10**7), st.integers(0, 9)),
)
TOKEN_FORMS = st.sampled_from(["plain"] * 6 + ["exponent", "quoted"])
LEVEL = st.builds(
    lambda price, qty, price_form, qty_form: BookLevel(
        msgspec.Raw(_token(price, price_form)), msgspec.Raw(_token(qty, qty_form))
    ),
    TICK_PRICES,
    QTYS,
    TOKEN_FORMS,
    TOKEN_FORMS,
)
LEVELS = st.lists(LEVEL, max_size=8)
STEP = st.one_of(
    st.tuples(st.just("update"), LEVELS, LEVELS),
    st.tuples(st.just("update"), LEVELS, LEVELS),
    st.tuples(st.just("update"), LEVELS, LEVELS),
    st.tuples(st.just("snapshot"), LEVELS, LEVELS),
    st.tuples(
        st.just("precision"),
        PRECISIONS_ST.filter(lambda p: p is None or p <= 9),
        st.sampled_from([None, 0, 3, 8]),
    ),
)
BOOK_PRECISIONS = st.sampled_from([(None, None), (2, 8), (2, 4), (0, 0), (None, 8), (3, 9)])


class _Model:
    """The obvious book: dicts, sorted on every read, truncated after every message."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, BookLevel] = {}
        self.asks: dict[Decimal, BookLevel] = {}

    def apply(self, bids: list[BookLevel], asks: list[BookLevel], snapshot: bool) -> None:
        if snapshot:
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for level in levels:
                if level.qty:
                    side[level.price] = level
                else:
                    side.pop(level.price, None)
        for level in self.best_bids()[self.depth :]:
            del self.bids[level.price]
        for level in self.best_asks()[self.depth :]:
            del self.asks[level.price]

    def best_bids(self) -> list[BookLevel]:
        return [self.bids[p] for p in sorted(self.bids, reverse=True)]

    def best_asks(self) -> list[BookLevel]:
        return [self.asks[p] for p in sorted(self.asks)]

    def checksum(self, pp: int | None, qp: int | None) -> int:
        return _expected(self.best_asks(), self.best_bids(), pp, qp)


@LOOPS_IN_TEST
@sized(80, 300)
@given(
    depth=st.sampled_from([1, 3, 10, 11, 25]),
    view_cut=st.integers(0, 30),
    precisions=BOOK_PRECISIONS,
    first=st.tuples(LEVELS, LEVELS),
    steps=st.lists(STEP, max_size=25),
)
def test_book_matches_naive_model(
    depth: int,
    view_cut: int,
    precisions: tuple[int | None, int | None],
    first: tuple[list[BookLevel], list[BookLevel]],
    steps: list[tuple[Any, ...]],
) -> None:
    with_each_loop(_matches_naive_model, depth, view_cut, precisions, first, steps)


def _matches_naive_model(
    depth: int,
    view_cut: int,
    precisions: tuple[int | None, int | None],
    first: tuple[list[BookLevel], list[BookLevel]],
    steps: list[tuple[Any, ...]],
) -> None:
    pp, qp = precisions
    view_depth = max(1, depth - view_cut)
    book = OrderBook("TST/USD", depth, price_precision=pp, qty_precision=qp)
    view = OrderBook("TST/USD", depth, view_depth=view_depth, price_precision=pp, qty_precision=qp)
    model = _Model(depth)
    model.apply(*first, snapshot=True)
    assert book.apply_snapshot(*first) == view.apply_snapshot(*first) == model.checksum(pp, qp)
    for kind, a, b in steps:
        if kind == "precision":
            pp, qp = a, b
            book.set_precision(pp, qp)
            view.set_precision(pp, qp)
            assert book.checksum() == model.checksum(pp, qp)
            continue
        model.apply(a, b, snapshot=kind == "snapshot")
        if kind == "snapshot":
            book.mark_resyncing()
            computed = book.apply_snapshot(a, b)
            assert view.apply_snapshot(a, b) == computed
        else:
            computed = book.apply_update(a, b)
            assert view.apply_update(a, b) == computed
        assert computed == book.checksum() == model.checksum(pp, qp)
        bids, asks = book.bids(), book.asks()
        assert bids == model.best_bids()
        assert asks == model.best_asks()
        assert len(bids) <= depth and len(asks) <= depth
        assert all(x.price > y.price for x, y in pairwise(bids))
        assert all(x.price < y.price for x, y in pairwise(asks))
        # the view-limited book holds the same levels but shows only view_depth of them
        assert view.bids() == bids[:view_depth]
        assert view.asks() == asks[:view_depth]
        assert view.bids(2) == bids[: min(2, view_depth)]
        assert view.bid_volume() == sum((lv.qty for lv in bids[:view_depth]), D(0))
        assert view.ask_volume() == sum((lv.qty for lv in asks[:view_depth]), D(0))
        assert view.best_bid() == (bids[0] if bids else None)
        assert view.best_ask() == (asks[0] if asks else None)


# -- large messages ------------------------------------------------------------------------------
#
# A side lists at most depth + _SPARE levels during a message and keeps the worse ones in
# ``deep`` (see OrderBook._update_side_py): one message costs time linear in its length.

LARGE = examples(8_000, 30_000)  # levels per side of one large update


def _tick_level(tick: int, qty: str) -> BookLevel:
    """The level at ``tick`` tenths, the quantity as given (unpadded: the slow path)."""
    return _raw_levels((f"{tick // 10}.{tick % 10}".encode(), qty.encode()))[0]


def _large_side(pattern: str, best: int, sign: int) -> list[BookLevel]:
    """LARGE levels of one side whose snapshot's best level is at tick ``best``.

    ``sign`` is +1 for asks (worse = higher), -1 for bids. ``worse``: each level worse than
    all before it; ``better``: each a new best; ``lifted``: distinct deep prices in random
    order, a third of them deleted again later on, then the snapshot's 10 levels deleted,
    so that deep levels make the top.
    """
    if pattern == "worse":
        return [_tick_level(best + sign * (10 + k), f"{k + 1}.5") for k in range(LARGE)]
    if pattern == "better":
        return [_tick_level(best - sign * (1 + k), f"{k + 1}.5") for k in range(LARGE)]
    rng = random.Random(LARGE)
    ticks = [best + sign * (10 + k) for k in range(LARGE)]
    rng.shuffle(ticks)
    levels = []
    for k, tick in enumerate(ticks):
        levels.append(_tick_level(tick, f"{k + 1}.5"))
        if k % 3 == 2:
            levels.append(_tick_level(ticks[rng.randrange(k + 1)], "0"))
    return levels + [_tick_level(best + sign * k, "0.00000000") for k in range(10)]


@LOOPS_IN_TEST
@pytest.mark.parametrize("depth", [10, 25])
@pytest.mark.parametrize("pattern", ["worse", "better", "lifted"])
def test_one_large_update_lists_few_levels_and_ends_as_the_model(
    monkeypatch: pytest.MonkeyPatch, pattern: str, depth: int
) -> None:
    """Issue 9: one update of LARGE levels per side (30k when thorough), which once cost
    time quadratic in that.

    The book must end as the model's; during the message the lists never hold more than
    ``depth + _SPARE`` live levels plus at most ``_TRUNCATED`` truncated ones (they held
    every level of the message before, the cause of the quadratic cost). The message and
    the model's book are built once, then applied with each loop.
    """
    model = _Model(depth)
    snapshot = (
        [_tick_level(40_000 - k, "1.00000000") for k in range(depth)],
        [_tick_level(50_000 + k, "2.00000000") for k in range(depth)],
    )
    model.apply(*snapshot, snapshot=True)
    # The worst bids stay above 0 (a price that is not positive is refused).
    bids, asks = _large_side(pattern, 40_000, -1), _large_side(pattern, 50_000, 1)
    model.apply(bids, asks, snapshot=False)
    checksum, best_bids, best_asks = model.checksum(1, 8), model.best_bids(), model.best_asks()
    # Every unpadded quantity goes through _qty_fragment, in both loops: it watches the lists.
    longest = [0]
    qty_fragment = OrderBook._qty_fragment

    def watching(self: OrderBook, price_digits: bytes, qty: bytes) -> bytes | None:
        longest[0] = max(longest[0], len(self._asks.keys), len(self._bids.keys))
        return qty_fragment(self, price_digits, qty)

    monkeypatch.setattr(OrderBook, "_qty_fragment", watching)
    for loop in LOOPS.values():
        book = OrderBook("TST/USD", depth, price_precision=1, qty_precision=8)
        book.apply_snapshot(*snapshot)
        longest[0] = 0
        with using_loop(loop):
            assert book.apply_update(bids, asks) == checksum
        assert book.bids() == best_bids
        assert book.asks() == best_asks
        assert len(book.asks()) == depth
        assert depth < longest[0] <= depth + _SPARE + _TRUNCATED
        assert not book._asks.deep and not book._bids.deep


def test_deep_levels_settle_with_their_fragments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small ``_listed``: snapshot levels without fragments go deep and come back, rescaled."""
    book = OrderBook("TST/USD", 25, price_precision=None, qty_precision=None)
    snapshot = [_tick_level(1_000 + k, "1.0") for k in range(25)]  # fragments of the top 10
    book.apply_snapshot([], snapshot)
    model = _Model(25)
    model.apply([], snapshot, snapshot=True)
    book._listed = 12
    steps = [
        # 3 new best levels push the 3 worst snapshot levels deep (without fragments), 18
        # deletes from the top leave 7 listed: the deep ones rise into the top 10
        [_tick_level(999 - k, "2.0") for k in range(3)]
        + [_tick_level(999 - k, "0") for k in range(3)]
        + [_tick_level(1_000 + k, "0") for k in range(15)],
        # a deep level with more decimals than the book (a rescale while levels are deep)
        [_tick_level(5_000 + k, "3.0") for k in range(20)]
        + _raw_levels((b"500.05", b"4.0"))
        + [_tick_level(1_010 + k, "0") for k in range(13)],
        # deletes leave 10 or more listed: deep levels come back below the top 10
        [_tick_level(4_000 - k, "5.0") for k in range(14)]
        + [_tick_level(4_000 - k, "0") for k in range(2)],
    ]
    for asks in steps:
        model.apply([], asks, snapshot=False)
        assert book.apply_update([], asks) == model.checksum(None, None)
        assert book.asks() == model.best_asks()
        assert not book._asks.deep


def test_a_refused_token_keeps_the_levels_before_it_deep_or_not() -> None:
    book = OrderBook("TST/USD", 3, price_precision=1, qty_precision=1)
    book.apply_snapshot([], _levels(("10.0", "1.0"), ("10.1", "1.0"), ("10.2", "1.0")))
    book._listed = 3
    before = book.checksum()
    asks = [
        *(_tick_level(110 + k, "1.0") for k in range(5)),  # deep
        *(_tick_level(100 + k, "0") for k in range(2)),  # listed: 1 left
        *_raw_levels((b"11.7", b"1.0"), (b'"NaN"', b"1.0"), (b"9.0", b"1.0")),
    ]
    with pytest.raises(ArithmeticError):
        book.apply_update([], asks)
    # the levels up to the refused one are applied, not the truncation nor the checksum
    assert [lv.price for lv in book.asks()] == [D("10.2"), D("11.0"), D("11.1")]
    assert not book._asks.deep and book.checksum() == before


@LOOPS_IN_TEST
@sized(80, 300)
@given(
    depth=st.sampled_from([1, 3, 10, 12, 25]),
    listed=st.integers(0, 14),
    precisions=BOOK_PRECISIONS,
    snapshot=st.tuples(st.lists(LEVEL, max_size=40), st.lists(LEVEL, max_size=40)),
    messages=st.lists(
        st.tuples(st.lists(LEVEL, max_size=60), st.lists(LEVEL, max_size=60)),
        min_size=1,
        max_size=6,
    ),
)
def test_many_deep_inserts_and_deletes_match_a_model_that_keeps_everything(
    depth: int,
    listed: int,
    precisions: tuple[int | None, int | None],
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    messages: list[tuple[list[BookLevel], list[BookLevel]]],
) -> None:
    """Few levels listed (as in a large message), many deep: still the model's book.

    The model keeps every level of a message and truncates after it; half the quantities
    are zeros, so deletes often lift deep levels back.
    """
    with_each_loop(_many_deep_match_the_model, depth, listed, precisions, snapshot, messages)


def _many_deep_match_the_model(
    depth: int,
    listed: int,
    precisions: tuple[int | None, int | None],
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    messages: list[tuple[list[BookLevel], list[BookLevel]]],
) -> None:
    pp, qp = precisions
    book = OrderBook("TST/USD", depth, price_precision=pp, qty_precision=qp)
    book._listed = listed
    model = _Model(depth)
    model.apply(*snapshot, snapshot=True)
    assert book.apply_snapshot(*snapshot) == model.checksum(pp, qp)
    for bids, asks in messages:
        model.apply(bids, asks, snapshot=False)
        assert book.apply_update(bids, asks) == model.checksum(pp, qp)
        assert book.bids() == model.best_bids()
        assert book.asks() == model.best_asks()
        assert not book._asks.deep and not book._bids.deep
