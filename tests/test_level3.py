"""L3Book: the documented checksum, queue semantics, truncation, a naive model, errors."""

from __future__ import annotations

import json
import random
import zlib
from bisect import insort
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from budget import examples, sized
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.book import _SPARE, BookState
from kraken_proto.errors import BookNotLiveError, LocalProtocolError
from kraken_proto.level3 import L3Book, L3Level, L3Order, L3Update, Level3Frame

D = Decimal
DOC_CHECKSUM = 1063832831


def order(
    order_id: str,
    price: str,
    qty: str,
    event: str | None = None,
    timestamp: str | None = None,
) -> L3Order:
    return L3Order(order_id, D(price), D(qty), timestamp, event)


def add(order_id: str, price: str, qty: str) -> L3Order:
    return order(order_id, price, qty, "add")


def modify(order_id: str, price: str, qty: str) -> L3Order:
    return order(order_id, price, qty, "modify")


def delete(order_id: str, price: str, qty: str) -> L3Order:
    return order(order_id, price, qty, "delete")


def ids(orders: tuple[L3Order, ...]) -> list[str]:
    return [o.order_id for o in orders]


def layout(levels: tuple[L3Level, ...]) -> list[tuple[Decimal, list[tuple[str, Decimal]]]]:
    return [(lv.price, [(o.order_id, o.order_qty) for o in lv.orders]) for lv in levels]


def t(value: Decimal, precision: int | None) -> str:
    """T(x), written out independently of kraken_proto.checksum."""
    if precision is not None:
        value = value.quantize(D(1).scaleb(-precision))
    return format(value, "f").replace(".", "").lstrip("0")


def live_book(
    bids: list[L3Order] | None = None,
    asks: list[L3Order] | None = None,
    *,
    depth: int = 10,
    precision: tuple[int, int] | None = (1, 8),
) -> L3Book:
    pp, qp = precision if precision is not None else (None, None)
    book = L3Book("BTC/USD", depth, price_precision=pp, qty_precision=qp)
    book.apply_snapshot(bids or [], asks or [])
    return book


# -- the documented vector ------------------------------------------------------------------------


@pytest.fixture
def doc_vector(data_dir: Path) -> dict[str, Any]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (vector,) = [v for v in vectors if v["id"] == "l3_v2_doc_guide_btcusd"]
    assert vector["expected"] == DOC_CHECKSUM
    return dict(vector["input"])


def _doc_orders(entries: list[dict[str, str]]) -> list[L3Order]:
    return [
        L3Order(e["order_id"], D(e["limit_price"]), D(e["order_qty"]), e["timestamp"])
        for e in entries
    ]


@pytest.mark.parametrize("precision", [(1, 8), None])
def test_doc_vector_snapshot(doc_vector: dict[str, Any], precision: tuple[int, int] | None) -> None:
    bids, asks = _doc_orders(doc_vector["bids"]), _doc_orders(doc_vector["asks"])
    book = L3Book(
        "BTC/USD",
        10,
        price_precision=precision[0] if precision else None,
        qty_precision=precision[1] if precision else None,
    )
    assert book.apply_snapshot(bids, asks) == DOC_CHECKSUM
    assert book.checksum() == DOC_CHECKSUM
    assert book.is_live
    # 21 bid orders and 14 ask orders over 10 price levels per side.
    assert len(book.bids()) == 10
    assert book.order_count("bid") == 21
    assert len(book.asks()) == 10
    assert book.order_count("ask") == 14
    assert ids(book.orders_at("ask", D("44959.6"))) == [
        "OOF2V5-RYOHC-GLRNPM",
        "OTVOVS-QLST3-3JG7JI",
    ]
    best_bid = book.best_bid()
    assert best_bid is not None
    assert best_bid.price == D("44939.4")
    assert ids(best_bid.orders)[:3] == [
        "OTCFZG-YOE2Q-LQKNM3",
        "OFGP5R-B3E7G-54EZD6",
        "OMPHVY-IZPJ4-KOKA3P",
    ]
    assert best_bid.qty == D("3.55788870")
    # The intermediate strings of the guide, built the naive way from the book's levels.
    asks_text = "".join(
        t(o.limit_price, 1) + t(o.order_qty, 8) for lv in book.asks() for o in lv.orders
    )
    bids_text = "".join(
        t(o.limit_price, 1) + t(o.order_qty, 8) for lv in book.bids() for o in lv.orders
    )
    assert asks_text == doc_vector["asks_string"]
    assert bids_text == doc_vector["bids_string"]


def test_doc_vector_through_a_decoded_frame(doc_vector: dict[str, Any]) -> None:
    def side(entries: list[dict[str, str]]) -> str:
        return ",".join(
            f'{{"order_id":"{e["order_id"]}","limit_price":{e["limit_price"]},'
            f'"order_qty":{e["order_qty"]},"timestamp":"{e["timestamp"]}"}}'
            for e in entries
        )

    text = (
        '{"channel":"level3","type":"snapshot","data":[{"symbol":"BTC/USD",'
        f'"checksum":{DOC_CHECKSUM},"timestamp":"2024-01-08T12:26:45.066096694Z",'
        f'"bids":[{side(doc_vector["bids"])}],"asks":[{side(doc_vector["asks"])}]}}]}}'
    )
    frame = msgspec.json.decode(text, type=Level3Frame)
    assert frame.type == "snapshot"
    (update,) = frame.data
    assert update.symbol == "BTC/USD"
    assert update.checksum == DOC_CHECKSUM
    assert update.timestamp == "2024-01-08T12:26:45.066096694Z"
    assert not update.snapshot
    assert update.received_at == 0.0
    assert update.bids[1].order_qty == D("0.45210000")  # the wire digits are kept
    assert str(update.bids[1].order_qty) == "0.45210000"
    assert update.bids[0].event is None
    # Without any precision the wire digits alone reproduce the documented checksum.
    book = L3Book("BTC/USD", 10)
    assert book.apply_snapshot(update.bids, update.asks) == update.checksum


def test_update_frame_decodes_events_and_ignores_unknown_keys() -> None:
    text = (
        b'{"channel":"level3","type":"update","sequence":7,"data":[{"symbol":"BTC/USD",'
        b'"checksum":123,"timestamp":"2024-01-08T12:26:45.066096694Z","bids":[{"event":'
        b'"add","order_id":"A","limit_price":63000.0,"order_qty":0.00005100,'
        b'"timestamp":"2024-01-08T12:26:45.066096694Z"}],"asks":[]}]}'
    )
    frame = msgspec.json.decode(text, type=Level3Frame)
    assert frame.type == "update"
    (update,) = frame.data
    assert update.asks == ()
    (bid,) = update.bids
    assert bid == L3Order(
        "A", D("63000.0"), D("0.00005100"), "2024-01-08T12:26:45.066096694Z", "add"
    )
    assert str(bid.limit_price) == "63000.0"
    assert str(bid.order_qty) == "0.00005100"


def test_l3update_checksum_is_required() -> None:
    with pytest.raises(msgspec.ValidationError, match="checksum"):
        msgspec.json.decode(b'{"symbol":"BTC/USD","bids":[],"asks":[]}', type=L3Update)
    update = L3Update(symbol="BTC/USD", checksum=5)
    assert (update.bids, update.asks, update.snapshot) == ((), (), False)
    with pytest.raises(TypeError):
        L3Update(symbol="BTC/USD")  # type: ignore[call-arg]


def test_level3_frame_round_trips_decimal_numbers() -> None:
    frame = Level3Frame(
        "snapshot",
        (L3Update(symbol="X/Y", checksum=1, bids=(order("a", "1.50", "0.00000005"),)),),
    )
    encoded = msgspec.json.Encoder(decimal_format="number").encode(frame)
    assert b'"channel":"level3"' in encoded
    assert b'"limit_price":1.50' in encoded
    assert msgspec.json.decode(encoded, type=Level3Frame) == frame


# -- queue semantics ------------------------------------------------------------------------------


def test_add_appends_to_the_back_of_its_level() -> None:
    book = live_book([order("a", "100.0", "1.00000000"), order("b", "100.0", "2.00000000")])
    book.apply_update([add("c", "100.0", "3.00000000"), add("d", "99.0", "1.00000000")], [])
    assert ids(book.orders_at("bid", D("100.0"))) == ["a", "b", "c"]
    assert layout(book.bids()) == [
        (D("100.0"), [("a", D(1)), ("b", D(2)), ("c", D(3))]),
        (D("99.0"), [("d", D(1))]),
    ]
    held = book.order("c")
    assert held == L3Order("c", D("100.0"), D("3.00000000"))
    assert held is not None
    assert held.event is None


def test_modify_keeps_the_queue_position() -> None:
    book = live_book(asks=[order(x, "101.0", "1.00000000") for x in "abc"])
    checksum = book.apply_update([], [modify("a", "101.0", "0.40000000")])
    assert layout(book.asks()) == [(D("101.0"), [("a", D("0.4")), ("b", D(1)), ("c", D(1))])]
    text = "1010" + "40000000" + ("1010" + "100000000") * 2
    assert checksum == zlib.crc32(text.encode())


def test_modify_with_a_new_price_moves_the_order_to_the_back() -> None:
    book = live_book(
        bids=[order("a", "100.0", "1.00000000"), order("b", "99.0", "1.00000000")],
    )
    book.apply_update([modify("a", "99.0", "0.50000000")], [])
    assert layout(book.bids()) == [(D("99.0"), [("b", D(1)), ("a", D("0.5"))])]
    entry = book.order("a")
    assert entry is not None
    assert entry.limit_price == D("99.0")
    assert book.orders_at("bid", D("100.0")) == ()


def test_delete_removes_by_id_and_empties_levels() -> None:
    book = live_book(
        bids=[order("a", "100.0", "1.00000000"), order("b", "100.0", "2.00000000")],
        asks=[order("c", "101.0", "1.00000000")],
    )
    # The price and qty a delete carries are not used to find the order.
    book.apply_update([delete("a", "100.0", "0.00000000")], [delete("c", "1.0", "9.0")])
    assert layout(book.bids()) == [(D("100.0"), [("b", D(2))])]
    assert book.asks() == ()
    assert book.best_ask() is None
    assert book.spread() is None
    assert book.mid_price() is None
    assert book.order("a") is None
    assert book.order_count("ask") == 0
    assert book.volume("ask") == 0


def test_one_message_may_touch_an_order_several_times() -> None:
    book = live_book(asks=[order("a", "101.0", "1.00000000")])
    book.apply_update(
        [],
        [
            delete("a", "101.0", "1.00000000"),
            add("a", "102.0", "2.00000000"),
            modify("a", "102.0", "1.50000000"),
            add("b", "101.0", "1.00000000"),
        ],
    )
    assert layout(book.asks()) == [
        (D("101.0"), [("b", D(1))]),
        (D("102.0"), [("a", D("1.5"))]),
    ]


def test_snapshot_replaces_the_book_and_keeps_the_given_queue_order() -> None:
    book = live_book(bids=[order("old", "50.0", "1.00000000")])
    checksum = book.apply_snapshot(
        [
            order("x", "100.0", "1.00000000"),
            order("y", "100.5", "2.00000000"),
            order("z", "100.0", "3.00000000", event="add"),  # an event is ignored here
        ],
        [order("w", "101.0", "4.00000000")],
    )
    assert book.order("old") is None
    assert layout(book.bids()) == [
        (D("100.5"), [("y", D(2))]),
        (D("100.0"), [("x", D(1)), ("z", D(3))]),
    ]
    z = book.order("z")
    assert z is not None
    assert z.event is None
    text = "1010400000000" + "1005200000000" + "1000100000000" + "1000300000000"
    assert checksum == zlib.crc32(text.encode())


def test_queries() -> None:
    book = live_book(
        bids=[
            order("b1", "100.0", "1.00000000"),
            order("b2", "99.5", "2.00000000"),
            order("b3", "99.5", "0.50000000"),
        ],
        asks=[order("a1", "101.0", "0.25000000"), order("a2", "102.0", "1.00000000")],
    )
    best_ask, best_bid = book.best_ask(), book.best_bid()
    assert best_ask is not None
    assert best_bid is not None
    assert (best_ask.price, best_ask.qty) == (D("101.0"), D("0.25000000"))
    assert best_bid.price == D("100.0")
    assert book.spread() == D("1.0")
    assert book.mid_price() == D("100.5")
    assert [lv.price for lv in book.bids(1)] == [D("100.0")]
    assert [lv.price for lv in book.bids(5)] == [D("100.0"), D("99.5")]
    assert book.bids(0) == ()
    assert [lv.price for lv in book.asks()] == [D("101.0"), D("102.0")]
    assert book.bids()[1].qty == D("2.5")
    assert book.order_count("bid") == 3
    assert book.order_count("ask") == 2
    assert book.volume("bid") == D("3.5")
    assert book.volume("ask") == D("1.25")
    assert book.order("nope") is None
    # Prices are matched by value, whatever their digits or type.
    assert ids(book.orders_at("bid", D("99.50"))) == ["b2", "b3"]
    assert ids(book.orders_at("bid", "99.5")) == ["b2", "b3"]
    assert ids(book.orders_at("bid", 100)) == ["b1"]
    assert book.orders_at("ask", 100) == ()
    assert repr(book) == "<L3Book BTC/USD live bid=100.0 ask=101.0 orders=3/2>"
    assert book.symbol == "BTC/USD"
    assert book.depth == 10
    assert (book.price_precision, book.qty_precision) == (1, 8)


@pytest.mark.parametrize("price", [1.5, True, "abc", None, "NaN", D("Infinity"), D("sNaN")])
def test_orders_at_rejects_bad_prices(price: Any) -> None:
    book = live_book()
    with pytest.raises(LocalProtocolError, match="price must be"):
        book.orders_at("bid", price)


@pytest.mark.parametrize("side", ["bids", "buy", "", None])
def test_bad_side(side: Any) -> None:
    book = live_book()
    for query in (book.order_count, book.volume):
        with pytest.raises(LocalProtocolError, match="side must be 'bid' or 'ask'"):
            query(side)
    with pytest.raises(LocalProtocolError, match="side must be"):
        book.orders_at(side, 1)


@pytest.mark.parametrize("n", [-1, True, 1.5, "2"])
def test_bad_level_count(n: Any) -> None:
    book = live_book()
    with pytest.raises(LocalProtocolError, match="n must be None or an int >= 0"):
        book.bids(n)
    with pytest.raises(LocalProtocolError, match="n must be"):
        book.asks(n)


def test_empty_book_repr_and_queries() -> None:
    book = L3Book("ETH/USD", 100)
    assert repr(book) == "<L3Book ETH/USD awaiting_snapshot bid=None ask=None orders=0/0>"
    assert book.checksum() == zlib.crc32(b"")
    assert book.apply_snapshot([], []) == 0
    assert book.best_bid() is None
    assert book.bids() == ()
    assert book.spread() is None


# -- truncation -----------------------------------------------------------------------------------


def test_snapshot_and_updates_truncate_to_depth() -> None:
    bids = [order(f"b{i}", f"{100 - i}.0", "1.00000000") for i in range(12)]
    asks = [order(f"a{i}", f"{200 + i}.0", "1.00000000") for i in range(11)]
    book = live_book(bids, asks)
    assert len(book.bids()) == 10
    assert len(book.asks()) == 10
    assert book.order("b10") is None
    assert book.order("a10") is None
    assert book.order_count("bid") == 10
    # A better ask pushes the worst one out; no delete is sent for it.
    book.apply_update([], [add("new", "199.0", "1.00000000"), add("new2", "199.0", "2.00000000")])
    assert book.asks()[0].price == D("199.0")
    assert book.asks()[-1].price == D("208.0")
    assert book.order("a9") is None
    assert book.order_count("ask") == 11
    # A level added beyond the depth is dropped at once; the id may come back later.
    book.apply_update([add("deep", "50.0", "1.00000000")], [])
    assert book.order("deep") is None
    assert book.order_count("bid") == 10
    # When a level in range empties, Kraken sends the next level's orders as adds.
    book.apply_update(
        [delete("b0", "100.0", "1.00000000"), add("b10", "90.0", "3.00000000")],
        [],
    )
    assert [lv.price for lv in book.bids()][-1] == D("90.0")
    assert book.order("b10") == L3Order("b10", D("90.0"), D("3.00000000"))


def test_checksum_covers_the_top_ten_price_levels_of_a_deep_book() -> None:
    bids = [order(f"b{i}", f"{100 - i}.0", "1.00000000") for i in range(30)]
    bids.append(order("b0bis", "100.0", "2.00000000"))
    book = live_book(bids, depth=100)
    assert len(book.bids()) == 30
    text = "1000100000000" + "1000200000000"
    text += "".join(f"{100 - i}0100000000" for i in range(1, 10))
    assert book.checksum() == zlib.crc32(text.encode())


# -- precision and wire digits --------------------------------------------------------------------


def test_wire_digits_fallback_and_precision() -> None:
    orders = [order("a", "100.50", "0.5"), order("b", "100.5", "0.00000005")]
    book = L3Book("X/Y", 10)
    wire = book.apply_snapshot([], orders)
    # Without precision each order's own digits count (format "f", never str's 5E-8).
    assert wire == zlib.crc32(b"10050" + b"5" + b"1005" + b"000000005".lstrip(b"0"))
    book.set_precision(2, 8)
    assert book.checksum() == zlib.crc32(b"1005050000000" + b"100505")
    book.set_precision(None, None)
    assert book.checksum() == wire
    with pytest.raises(LocalProtocolError, match="qty_precision must be between 0 and 18"):
        book.set_precision(1, 19)
    with pytest.raises(LocalProtocolError, match="price_precision must be None or an int"):
        book.set_precision(True, 8)


def test_exponent_forms_are_written_out() -> None:
    book = L3Book("X/Y", 10)
    frame = msgspec.json.decode(
        b'{"channel":"level3","type":"snapshot","data":[{"symbol":"X/Y","checksum":0,'
        b'"bids":[{"order_id":"a","limit_price":1e2,"order_qty":5.1e-05}],"asks":[]}]}',
        type=Level3Frame,
    )
    (update,) = frame.data
    assert book.apply_snapshot(update.bids, update.asks) == zlib.crc32(b"100" + b"51")
    book.set_precision(1, 8)
    assert book.checksum() == zlib.crc32(b"1000" + b"5100")


# -- states and errors ----------------------------------------------------------------------------


def state_of(book: L3Book) -> BookState:
    """The state, read through a call (mypy would narrow ``book.state`` across calls)."""
    return book.state


def test_states() -> None:
    book = L3Book("BTC/USD", 1000)
    assert state_of(book) is BookState.AWAITING_SNAPSHOT
    assert not book.is_live
    book.apply_snapshot([order("a", "1.0", "1.0")], [])
    assert state_of(book) is BookState.LIVE
    assert book.is_live
    book.mark_resyncing()
    assert state_of(book) is BookState.RESYNCING
    with pytest.raises(LocalProtocolError, match="apply a snapshot before updates"):
        book.apply_update([add("b", "1.0", "1.0")], [])
    book.mark_failed()
    assert state_of(book) is BookState.FAILED
    book.apply_snapshot([], [order("c", "2.0", "1.0")])  # allowed in any state
    assert book.is_live
    assert book.order("a") is None
    book.mark_awaiting_snapshot()
    assert state_of(book) is BookState.AWAITING_SNAPSHOT


@pytest.mark.parametrize(
    "state", [BookState.AWAITING_SNAPSHOT, BookState.RESYNCING, BookState.FAILED]
)
def test_queries_refuse_unless_live(state: BookState) -> None:
    book = live_book([order("a", "1.0", "1.0")], [order("b", "2.0", "1.0")])
    {
        BookState.AWAITING_SNAPSHOT: book.mark_awaiting_snapshot,
        BookState.RESYNCING: book.mark_resyncing,
        BookState.FAILED: book.mark_failed,
    }[state]()
    queries: list[Callable[[], object]] = [
        book.best_bid,
        book.best_ask,
        book.spread,
        book.mid_price,
        book.bids,
        book.asks,
        lambda: book.order("a"),
        lambda: book.orders_at("bid", 1),
        lambda: book.order_count("bid"),
        lambda: book.volume("ask"),
    ]
    for query in queries:
        with pytest.raises(BookNotLiveError, match=f"book BTC/USD is {state.value}") as info:
            query()
        assert info.value.state == state.value
    # The checksum is still available, e.g. for diagnostics.
    assert book.checksum() == zlib.crc32(b"20100000000" + b"10100000000")


@pytest.mark.parametrize("depth", [0, 25, 500, True, "10", None])
def test_bad_depth(depth: Any) -> None:
    with pytest.raises(LocalProtocolError, match=r"depth must be one of \(10, 100, 1000\)"):
        L3Book("BTC/USD", depth)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"price_precision": -1}, "price_precision must be between 0 and 18, got -1"),
        ({"qty_precision": 1.0}, "qty_precision must be None or an int, got 1.0"),
    ],
)
def test_bad_precision(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        L3Book("BTC/USD", 10, **kwargs)


GARBAGE = [
    ("NaN", "1.0", "limit_price NaN is not a finite number"),
    ("Infinity", "1.0", "limit_price Infinity is not a finite number"),
    ("1.0", "-Infinity", "order_qty -Infinity is not a finite number"),
    ("sNaN", "1.0", "limit_price sNaN is not a finite number"),
    ("-1.0", "1.0", "limit_price -1.0 is negative"),
    ("1.0", "-0.5", "order_qty -0.5 is negative"),
    ("0.0", "1.0", "limit_price 0.0 is zero"),
    ("1E+999999", "1.0", "limit_price 1E\\+999999 is out of any sensible range"),
    ("1.0", "1E-70", "order_qty 1E-70 is out of any sensible range"),
]


@pytest.mark.parametrize(("price", "qty", "message"), GARBAGE)
def test_garbage_numbers_in_a_snapshot(price: str, qty: str, message: str) -> None:
    book = live_book([order("keep", "1.0", "1.0")])
    before = book.checksum()
    with pytest.raises(ValueError, match=f"level3 order 'x': {message}"):
        book.apply_snapshot([order("a", "1.0", "1.0")], [order("x", price, qty)])
    assert book.checksum() == before
    assert book.order("keep") is not None
    assert book.order("a") is None


@pytest.mark.parametrize(("price", "qty", "message"), GARBAGE)
def test_garbage_numbers_in_an_update(price: str, qty: str, message: str) -> None:
    book = live_book([order("keep", "1.0", "1.0")])
    before = book.checksum()
    with pytest.raises(ValueError, match=message):
        book.apply_update([add("a", "1.0", "1.0"), add("x", price, qty)], [])
    assert book.checksum() == before
    assert book.order("a") is None


def test_zero_quantity_is_accepted() -> None:
    book = live_book([order("a", "1.0", "1.0")])
    book.apply_update([delete("a", "1.0", "0.00000000"), add("b", "1.0", "0.00000000")], [])
    assert book.volume("bid") == 0
    assert book.order_count("bid") == 1


def test_snapshot_with_a_duplicate_order_id() -> None:
    book = live_book([order("keep", "1.0", "1.0")])
    with pytest.raises(ValueError, match="level3 snapshot of BTC/USD lists order 'a' twice"):
        book.apply_snapshot([order("a", "1.0", "1.0")], [order("a", "2.0", "1.0")])
    assert book.order("keep") is not None


@pytest.mark.parametrize(
    ("bids", "asks", "message"),
    [
        ([add("a", "1.0", "1.0")], [], "bid order 'a': add of an order the book already holds"),
        ([], [add("a", "3.0", "1.0")], r"add of an order the book already holds \(bid side\)"),
        ([modify("zz", "1.0", "2.0")], [], "modify of an order the book does not hold"),
        ([delete("zz", "1.0", "2.0")], [], "bid order 'zz': delete of an order the book does"),
        ([], [delete("a", "1.0", "1.0")], "delete of an order the book holds on the bid side"),
        ([], [modify("a", "3.0", "1.0")], "ask order 'a': modify of an order the book holds on"),
        ([order("b", "1.0", "1.0")], [], r"unknown event None \(expected add, modify or delete\)"),
        ([order("b", "1.0", "1.0", event="change")], [], "unknown event 'change'"),
        (
            [delete("a", "1.0", "1.0"), modify("a", "1.0", "2.0")],
            [],
            "modify of an order the book does not hold",
        ),
        (
            [add("n", "1.0", "1.0"), delete("n", "1.0", "1.0"), delete("n", "1.0", "1.0")],
            [],
            "'n': delete of an order the book does not hold",
        ),
        ([add("n", "1.0", "1.0"), add("n", "1.0", "1.0")], [], "'n': add of an order"),
    ],
)
def test_inconsistent_updates_leave_the_book_unchanged(
    bids: list[L3Order], asks: list[L3Order], message: str
) -> None:
    book = live_book([order("a", "1.0", "1.0"), order("c", "0.5", "1.0")], [order("d", "2.0", "1")])
    before = (book.checksum(), layout(book.bids()), layout(book.asks()))
    with pytest.raises(ValueError, match=message):
        book.apply_update([add("first", "0.9", "1.0"), *bids], asks)
    assert (book.checksum(), layout(book.bids()), layout(book.asks())) == before
    assert book.order("first") is None
    assert book.is_live


# -- a naive model --------------------------------------------------------------------------------

DEPTH = 10
BID_TICKS = range(1000, 1016)  # 16 bid prices for depth 10: truncation happens
ASK_TICKS = range(1016, 1032)
PRECISION = (1, 8)


def _price(tick: int) -> Decimal:
    return D(tick).scaleb(-1)  # padded to one decimal: 1000 -> 100.0


def _qty(units: int) -> Decimal:
    return D(units).scaleb(-8).quantize(D("1E-8"))  # padded to eight decimals


class NaiveL3:
    """Orders in a dict; levels rebuilt by sorting on price, then arrival."""

    def __init__(self) -> None:
        self.orders: dict[str, tuple[str, Decimal, Decimal, int]] = {}
        self.arrivals = 0

    def put(self, order_id: str, side: str, price: Decimal, qty: Decimal) -> None:
        self.arrivals += 1
        self.orders[order_id] = (side, price, qty, self.arrivals)

    def levels(self, side: str) -> list[tuple[Decimal, list[tuple[str, Decimal]]]]:
        mine = sorted(
            (
                (price, arrival, oid, qty)
                for oid, (s, price, qty, arrival) in self.orders.items()
                if s == side
            ),
            key=lambda item: (-item[0] if side == "bid" else item[0], item[1]),
        )
        levels: list[tuple[Decimal, list[tuple[str, Decimal]]]] = []
        for price, _, oid, qty in mine:
            if not levels or levels[-1][0] != price:
                levels.append((price, []))
            levels[-1][1].append((oid, qty))
        return levels

    def truncate(self) -> None:
        for side in ("bid", "ask"):
            for _, orders in self.levels(side)[DEPTH:]:
                for oid, _ in orders:
                    del self.orders[oid]

    def checksum(self, precision: tuple[int, int] | None) -> int:
        pp, qp = precision if precision else (None, None)
        text = ""
        for side in ("ask", "bid"):
            for price, orders in self.levels(side)[:10]:
                text += "".join(t(price, pp) + t(qty, qp) for _, qty in orders)
        return zlib.crc32(text.encode())


# The strategies the model tests draw from, made once: a strategy over a list is made anew
# at every call, which costs more than the draw.
_SIDES = st.sampled_from(["bid", "ask"])
_EVENTS = st.sampled_from(["add", "add", "modify", "delete"])
_TICKS = {"bid": st.sampled_from(BID_TICKS), "ask": st.sampled_from(ASK_TICKS)}


@st.composite
def _message(
    draw: st.DrawFn, model: NaiveL3, fresh: list[int], events: int = 8
) -> tuple[list[L3Order], list[L3Order]]:
    """Random valid events, applied to ``model`` as drawn; truncation is left to the caller."""
    bids: list[L3Order] = []
    asks: list[L3Order] = []
    for _ in range(draw(st.integers(1, events))):
        side = draw(_SIDES)
        ticks = _TICKS[side]
        held = sorted(oid for oid, entry in model.orders.items() if entry[0] == side)
        event = draw(_EVENTS if held else st.just("add"))
        qty = _qty(draw(st.integers(0, 3 * 10**8)))
        if event == "add":
            fresh[0] += 1
            oid = f"O{fresh[0]}"
            price = _price(draw(ticks))
            model.put(oid, side, price, qty)
        else:
            oid = draw(st.sampled_from(held))
            _, old_price, old_qty, arrival = model.orders[oid]
            if event == "delete":
                price, qty = old_price, old_qty
                del model.orders[oid]
            else:
                price = draw(st.sampled_from([old_price, _price(draw(ticks))]))
                if price == old_price:
                    model.orders[oid] = (side, price, qty, arrival)
                else:
                    model.put(oid, side, price, qty)
        (bids if side == "bid" else asks).append(
            L3Order(oid, price, qty, "2024-01-08T12:26:45.066096694Z", event)
        )
    return bids, asks


@sized(50, 150)
@given(st.data(), st.booleans())
def test_book_matches_a_naive_model(data: st.DataObject, with_precision: bool) -> None:
    _check_against_the_model(data, with_precision, None, 8)


@sized(30, 120)
@given(st.data(), st.booleans(), st.integers(0, 12))
def test_few_levels_listed_still_match_the_model(
    data: st.DataObject, with_precision: bool, listed: int
) -> None:
    """As in a large message: most levels of a side unlisted (deep) until the truncation."""
    _check_against_the_model(data, with_precision, listed, 40)


def _check_against_the_model(
    data: st.DataObject, with_precision: bool, listed: int | None, events: int
) -> None:
    precision = PRECISION if with_precision else None
    model = NaiveL3()
    fresh = [0]
    book = L3Book(
        "BTC/USD",
        DEPTH,
        price_precision=precision[0] if precision else None,
        qty_precision=precision[1] if precision else None,
    )
    if listed is not None:
        book._listed = listed
    snapshot: dict[str, list[L3Order]] = {"bid": [], "ask": []}
    for _ in range(data.draw(st.integers(0, 30))):
        side = data.draw(_SIDES)
        fresh[0] += 1
        oid = f"O{fresh[0]}"
        price = _price(data.draw(_TICKS[side]))
        qty = _qty(data.draw(st.integers(1, 3 * 10**8)))
        model.put(oid, side, price, qty)
        snapshot[side].append(L3Order(oid, price, qty))
    model.truncate()
    assert book.apply_snapshot(snapshot["bid"], snapshot["ask"]) == model.checksum(precision)
    for _ in range(data.draw(st.integers(1, 12))):
        bids, asks = data.draw(_message(model, fresh, events))
        model.truncate()
        assert book.apply_update(bids, asks) == model.checksum(precision)
        assert layout(book.bids()) == model.levels("bid")
        assert layout(book.asks()) == model.levels("ask")
        for side in ("bid", "ask"):
            count = sum(1 for entry in model.orders.values() if entry[0] == side)
            assert book.order_count(side) == count  # type: ignore[arg-type]
        assert not book._bids.deep and not book._asks.deep
    for oid, (_, price, qty, _) in model.orders.items():
        held = book.order(oid)
        assert held is not None
        assert (held.limit_price, held.order_qty, held.event) == (price, qty, None)


# -- large messages ------------------------------------------------------------------------------

LARGE = examples(6_000, 20_000)  # orders per side of one large update
BEST = {"bid": 30_000, "ask": 30_001}  # the snapshot's best ticks; 10 levels each
SIGN = {"bid": -1, "ask": 1}  # the direction of worse prices


def _large_orders(pattern: str, side: str, model: NaiveL3) -> list[L3Order]:
    """LARGE events on one side, applied to ``model`` as they are made.

    Each add is a new best level (``better``) or a new worst one (``worse``); or
    (``lifted``) adds at random ticks below the snapshot's, two orders a tick, a third of
    them deleted or modified (in place or to another tick) later on, then the snapshot's
    orders deleted, so that deep levels make the top.
    """
    sign, best = SIGN[side], BEST[side]
    events: list[L3Order] = []

    def put(event: str, oid: str, tick: int, units: int) -> None:
        price, qty = _price(tick), _qty(units)
        if event == "delete":
            del model.orders[oid]
        elif event == "modify" and model.orders[oid][1] == price:
            model.orders[oid] = (side, price, qty, model.orders[oid][3])
        else:
            model.put(oid, side, price, qty)
        events.append(L3Order(oid, price, qty, None, event))

    if pattern != "lifted":
        for k in range(LARGE):
            tick = best + sign * (10 + k) if pattern == "worse" else best - sign * (1 + k)
            put("add", f"{side}{k}", tick, k + 1)
        return events
    rng = random.Random(LARGE)
    ticks = [best + sign * (10 + k // 2) for k in range(LARGE)]
    rng.shuffle(ticks)
    for k, tick in enumerate(ticks):
        put("add", f"{side}{k}", tick, k + 1)
        victim = f"{side}{rng.randrange(k + 1)}"
        if k % 3 == 2 and victim in model.orders:
            now = int(model.orders[victim][1].scaleb(1))
            if rng.random() < 0.5:
                put("delete", victim, now, 0)
            else:
                put("modify", victim, rng.choice([now, ticks[rng.randrange(LARGE)]]), 7)
    for k in range(10):
        put("delete", f"S{side}{k}", best + sign * k, k + 1)
    return events


@pytest.mark.parametrize("pattern", ["worse", "better", "lifted"])
def test_one_large_update_lists_few_levels_and_ends_as_the_model(
    monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    """Issue 9: one update of LARGE orders per side (20k when thorough), which once cost
    time quadratic in that.

    The book must end as the model's; during the message a side never lists more than
    ``depth + _SPARE`` levels (it listed every level of the message before).
    """
    model = NaiveL3()
    snapshot = {
        side: [
            L3Order(f"S{side}{k}", _price(BEST[side] + SIGN[side] * k), _qty(k + 1))
            for k in range(10)
        ]
        for side in ("bid", "ask")
    }
    for side, orders in snapshot.items():
        for o in orders:
            model.put(o.order_id, side, o.limit_price, o.order_qty)
    book = live_book(snapshot["bid"], snapshot["ask"], depth=DEPTH)
    bids = _large_orders(pattern, "bid", model)
    asks = _large_orders(pattern, "ask", model)
    model.truncate()
    longest = [0]

    def watching(keys: list[Decimal], key: Decimal) -> None:
        insort(keys, key)
        longest[0] = max(longest[0], len(keys))

    monkeypatch.setattr("kraken_proto.level3.insort", watching)
    assert book.apply_update(bids, asks) == model.checksum(PRECISION)
    assert layout(book.bids()) == model.levels("bid")
    assert layout(book.asks()) == model.levels("ask")
    assert len(book.asks()) == DEPTH
    assert book.order_count("ask") == sum(1 for e in model.orders.values() if e[0] == "ask")
    assert DEPTH < longest[0] <= DEPTH + _SPARE + 1  # seen before the worst moves deep
    assert not book._bids.deep and not book._asks.deep
