"""The books part (kraken_proto.books) through KrakenProtocol: L2 and L3 books verified,
resynced and given up, precisions, reconnects."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from frames import HEARTBEAT, NaiveBook, ack, instrument
from protocols import (
    TOKEN,
    S,
    authenticated,
    cfg,
    events,
    executions_frame,
    l3_sides,
    l3_snapshot,
    l3_update,
    level3_proto,
    open_proto,
    private_cfg,
    sent,
    states,
    subscribe_executions,
    subscribed_book,
)

from kraken_proto import (
    BookNotLiveError,
    BookResync,
    BookState,
    BookUpdate,
    KrakenProtocol,
    OpenConnection,
    Precision,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    Unsubscribed,
)
from kraken_proto.events import GapDetected, L3Order, L3Update
from kraken_proto.level3 import L3Book

# Every test here runs with the compiled L2 update loop and with the Python one.
pytestmark = pytest.mark.usefixtures("book_loop")


def test_book_updates_are_verified_and_queries_are_exact() -> None:
    proto, books = subscribed_book()
    naive = books["BTC/USD"]
    actions = proto.receive_data(naive.frame([("99.0", "0")], [("101.0", "3.5")]), 1.0)
    update = events(actions, BookUpdate)[0]
    assert not update.snapshot and update.checksum == naive.checksum()
    book = proto.book("BTC/USD")
    assert book is not None and book.is_live
    assert book.best_bid().price == Decimal("98.0")  # type: ignore[union-attr]
    assert book.best_ask().qty == Decimal("3.50000000")  # type: ignore[union-attr]
    assert book.spread() == Decimal("3.0")
    assert book.mid_price() == Decimal("99.5")


def test_checksum_mismatch_resyncs_only_that_symbol() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"))
    bad = books["BTC/USD"].frame([("99.5", "1.0")], [], checksum=12345)
    actions = proto.receive_data(bad, 1.0)
    assert events(actions, BookUpdate) == []
    resync = events(actions, BookResync)
    assert [(r.symbol, r.attempt) for r in resync] == [("BTC/USD", 1)]
    assert "checksum mismatch" in resync[0].reason and "12345" in resync[0].reason
    # req_id 1 was the subscribe call, 2 its request.
    assert sent(actions) == [
        {
            "method": "unsubscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
            "req_id": 3,
        },
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
            "req_id": 4,
        },
    ]
    assert states(actions) == [("subscribed", "resyncing")]
    btc = proto.book("BTC/USD")
    assert btc is not None and btc.state is BookState.RESYNCING
    with pytest.raises(BookNotLiveError, match="resyncing"):
        btc.best_bid()
    # ETH/USD is untouched and keeps flowing; BTC/USD deltas are dropped meanwhile.
    eth = events(proto.receive_data(books["ETH/USD"].frame([], [("102.0", "9")]), 1.1), BookUpdate)
    assert [u.symbol for u in eth] == ["ETH/USD"]
    assert proto.receive_data(books["BTC/USD"].frame([("97.5", "1")], []), 1.2) == []
    # The internal acks are not reported; the new snapshot finishes the resync.
    quiet = proto.receive_data(ack("book", "BTC/USD", 3, method="unsubscribe", depth=10), 1.3)
    quiet += proto.receive_data(ack("book", "BTC/USD", 4, depth=10, snapshot=True), 1.4)
    assert events(quiet, Unsubscribed) == [] and events(quiet, Subscribed) == []
    assert events(quiet, SubscriptionResult) == []  # no call of the user's
    done = proto.receive_data(NaiveBook("BTC/USD").snapshot(mid=200), 1.5)
    assert events(done, BookUpdate)[0].snapshot
    assert states(done) == [("resyncing", "subscribed")]
    assert btc.best_bid().price == Decimal("199.0")  # type: ignore[union-attr]


def test_resync_budget_then_subscription_failed() -> None:
    proto, books = subscribed_book(config=cfg(resync_max_attempts=2, resync_window=60.0))
    first = proto.receive_data(books["BTC/USD"].frame([("99.5", "1")], [], checksum=1), 1.0)
    assert [r.attempt for r in events(first, BookResync)] == [1]
    # The snapshots that answer the resyncs are corrupt too.
    bad_snapshot = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    second = proto.receive_data(bad_snapshot, 2.0)
    assert [r.attempt for r in events(second, BookResync)] == [2]
    actions = proto.receive_data(bad_snapshot, 3.0)
    assert events(actions, BookResync) == []
    failed = events(actions, SubscriptionFailed)
    assert len(failed) == 1 and failed[0].symbol == "BTC/USD"
    assert "gave up after 2 resyncs within 60 s" in failed[0].error
    book = proto.book("BTC/USD")
    assert book is not None and book.state is BookState.FAILED
    with pytest.raises(BookNotLiveError, match="failed"):
        book.asks()
    assert sent(actions)[-1]["method"] == "unsubscribe"
    assert states(actions) == [("resyncing", "subscribed")]
    assert [i.symbol for i in proto.subscriptions.failed] == ["BTC/USD"]


def test_resync_window_resets_the_budget() -> None:
    proto, _books = subscribed_book(config=cfg(resync_max_attempts=1, resync_window=10.0))
    bad = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    assert [r.attempt for r in events(proto.receive_data(bad, 1.0), BookResync)] == [1]
    assert [r.attempt for r in events(proto.receive_data(bad, 20.0), BookResync)] == [1]
    assert events(proto.receive_data(bad, 21.0), SubscriptionFailed) != []


def test_update_before_any_snapshot_is_a_protocol_error() -> None:
    proto = open_proto()
    actions = proto.receive_data(NaiveBook("SOL/USD").frame([("1.0", "1")], []), 1.0)
    assert events(actions, ProtocolError)[0].error == "book update for SOL/USD without a snapshot"


def test_depth_headroom_subscribes_deeper_and_shows_the_users_depth() -> None:
    proto = KrakenProtocol(cfg(depth_headroom=5))
    proto.subscribe("book", ["BTC/USD"], 0.0, depth=10)
    proto.connect(0.0)
    assert sent(proto.connection_made(0.0))[0]["params"]["depth"] == 25
    proto.receive_data(ack("book", "BTC/USD", 2, depth=25, snapshot=True), 0.1)
    naive = NaiveBook("BTC/USD", depth=25)
    proto.receive_data(naive.snapshot(levels=25), 0.2)
    book = proto.book("BTC/USD")
    assert book is not None and (book.depth, book.view_depth) == (25, 10)
    assert len(book.bids()) == 10
    info = proto.subscriptions.active[0]
    assert (info.depth, info.params["depth"]) == (10, 25)


def test_precision_from_instrument_wins_over_config() -> None:
    proto = open_proto(cfg(precisions={"BTC/USD": Precision(price=2, qty=8)}))
    proto.subscribe("book", ["BTC/USD"], 0.0)
    book = proto.book("BTC/USD")
    assert book is not None and (book.price_precision, book.qty_precision) == (2, 8)
    proto.receive_data(instrument("BTC/USD", 1, 8), 0.5)
    assert (book.price_precision, book.qty_precision) == (1, 8)
    proto.subscribe("book", ["ETH/USD"], 0.6)
    proto.receive_data(instrument("ETH/USD", 2, 8), 0.7)
    eth = proto.book("ETH/USD")
    assert eth is not None and eth.price_precision == 2
    # An unpadded (re-serialized) snapshot verifies thanks to the precision.
    proto.receive_data(ack("book", "BTC/USD", 1, depth=10, snapshot=True), 0.8)
    naive = NaiveBook("BTC/USD")
    naive.snapshot()
    trimmed = (
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":'
        + json.dumps(
            [
                {"price": float(p), "qty": float(q)}
                for p, q in sorted(naive.bids.items(), reverse=True)
            ]
        )
        + ',"asks":'
        + json.dumps([{"price": float(p), "qty": float(q)} for p, q in sorted(naive.asks.items())])
        + f',"checksum":{naive.checksum()}}}]}}'
    )
    assert events(proto.receive_data(trimmed, 0.9), BookUpdate) != []


def test_reconnect_invalidates_books_until_their_new_snapshot() -> None:
    proto, _books = subscribed_book()
    actions = proto.connection_lost(5.0, ConnectionResetError("peer reset"))
    change = events(actions, StateChanged)[0]
    assert (change.old, change.new, change.retry, change.delay) == (
        "subscribed",
        "degraded",
        1,
        0.1,
    )
    assert change.reason == "connection lost: ConnectionResetError: peer reset"
    book = proto.book("BTC/USD")
    assert book is not None and book.state is BookState.AWAITING_SNAPSHOT
    with pytest.raises(BookNotLiveError, match="awaiting_snapshot"):
        book.spread()
    assert proto.receive_data(HEARTBEAT, 5.01) == []  # late frames are ignored
    assert proto.next_deadline() == pytest.approx(5.1)
    reconnect = proto.handle_timer(5.1)
    assert states(reconnect) == [("degraded", "connecting")]
    assert reconnect[-1] == OpenConnection("wss://ws.kraken.com/v2")
    requests = sent(proto.connection_made(5.2))
    assert requests == [
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
            "req_id": 3,
        }
    ]
    proto.receive_data(ack("book", "BTC/USD", 3, depth=10, snapshot=True), 5.3)
    proto.receive_data(NaiveBook("BTC/USD").snapshot(mid=300), 5.4)
    assert book.best_ask().price == Decimal("301.0")  # type: ignore[union-attr]


def test_a_resync_during_subscribing_shows_once_settled() -> None:
    proto = KrakenProtocol(cfg())
    proto.subscribe("book", ["BTC/USD"], 0.0)
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    proto.receive_data(ack("book", "BTC/USD", 3, depth=10), 0.1)
    bad = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    assert states(proto.receive_data(bad, 0.2)) == []
    actions = proto.receive_data(ack("trade", "BTC/USD", 4), 0.3)
    assert states(actions) == [("subscribing", "subscribed"), ("subscribed", "resyncing")]


def test_resyncing_lasts_until_the_last_book_is_back() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"))
    for n, symbol in enumerate(("BTC/USD", "ETH/USD")):
        proto.receive_data(books[symbol].frame([("99.5", "1")], [], checksum=n), 1.0)
    assert proto.state is S.RESYNCING
    assert states(proto.receive_data(NaiveBook("BTC/USD").snapshot(), 2.0)) == []
    assert proto.state is S.RESYNCING
    done = proto.receive_data(NaiveBook("ETH/USD").snapshot(), 2.1)
    assert states(done) == [("resyncing", "subscribed")]


def test_instrument_precision_is_used_for_books_subscribed_later() -> None:
    proto = open_proto(cfg(precisions={"BTC/USD": Precision(price=3, qty=3)}))
    proto.receive_data(instrument("BTC/USD", 1, 8), 0.1)
    proto.receive_data(instrument("SOL/USD", 2, 8), 0.1)  # no book for it: just remembered
    proto.subscribe("book", ["BTC/USD", "SOL/USD"], 0.2)
    btc, sol = proto.book("BTC/USD"), proto.book("SOL/USD")
    assert btc is not None and (btc.price_precision, btc.qty_precision) == (1, 8)
    assert sol is not None and (sol.price_precision, sol.qty_precision) == (2, 8)


def test_level3_book_is_verified_and_resynced_on_mismatch(data_dir: Path) -> None:
    config = private_cfg(precisions={"BTC/USD": Precision(price=1, qty=8)})
    proto = authenticated(config, level3=True)
    (request,) = sent(proto.subscribe("level3", ["BTC/USD"], 0.0)[1])
    proto.receive_data(ack("level3", "BTC/USD", request["req_id"], depth=10), 0.0)
    snapshot, checksum = l3_snapshot(data_dir)
    (update,) = events(proto.receive_data(snapshot, 0.5), L3Update)
    assert update.snapshot and update.checksum == checksum
    book = proto.l3_book("BTC/USD")
    assert book is not None and book.is_live
    best = book.best_bid()
    assert best is not None and best.orders
    # A delete that leaves the book with a different checksum than Kraken's: resync.
    victim = best.orders[0]
    bad = {
        "channel": "level3",
        "type": "update",
        "data": [
            {
                "symbol": "BTC/USD",
                "checksum": checksum,
                "bids": [
                    {
                        "event": "delete",
                        "order_id": victim.order_id,
                        "limit_price": float(victim.limit_price),
                        "order_qty": float(victim.order_qty),
                    }
                ],
                "asks": [],
            }
        ],
    }
    actions = proto.receive_data(json.dumps(bad), 0.6)
    (resync,) = events(actions, BookResync)
    assert resync.symbol == "BTC/USD" and "checksum mismatch" in resync.reason
    assert states(actions) == [("subscribed", "resyncing")]
    assert [r["method"] for r in sent(actions)] == ["unsubscribe", "subscribe"]
    assert not book.is_live
    # The fresh snapshot brings it back.
    actions = proto.receive_data(snapshot, 0.9)
    assert events(actions, L3Update) and states(actions) == [("resyncing", "subscribed")]


def test_level3_message_for_an_unknown_symbol_is_reported() -> None:
    proto = authenticated(level3=True)
    frame = '{"channel":"level3","type":"snapshot","data":[{"symbol":"X/Y","checksum":0}]}'
    (problem,) = events(proto.receive_data(frame, 0.1), ProtocolError)
    assert "not subscribed" in problem.error


def test_level3_updates_apply_and_bad_ones_resync(data_dir: Path) -> None:
    proto, snapshot, _ = level3_proto(data_dir, silent_subscription_timeout=30.0)
    book = proto.l3_book("BTC/USD")
    assert book is not None
    best = book.best_bid()
    assert best is not None
    added = {
        "event": "add",
        "order_id": "NEW-ORDER",
        "limit_price": float(best.price),
        "order_qty": 0.5,
        "timestamp": "2026-08-01T02:53:53.184174000Z",
    }
    model = L3Book("BTC/USD", 10, price_precision=1, qty_precision=8)
    model.apply_snapshot(*l3_sides(snapshot))
    expected = model.apply_update(
        (L3Order("NEW-ORDER", best.price, Decimal("0.5"), None, "add"),), ()
    )
    (update,) = events(proto.receive_data(l3_update(expected, added), 0.2), L3Update)
    assert not update.snapshot and update.bids[0].order_id == "NEW-ORDER"
    assert book.order("NEW-ORDER") is not None
    # Deleting an order the book does not hold: the message is unusable, the book resyncs.
    ghost = {**added, "event": "delete", "order_id": "GHOST"}
    actions = proto.receive_data(l3_update(expected, ghost), 0.3)
    (problem,) = events(actions, ProtocolError)
    assert "unusable level3 message" in problem.error
    assert events(actions, BookResync)
    # Deltas meanwhile are dropped, not applied.
    assert proto.receive_data(l3_update(expected, added), 0.4) == []
    # A reconnect invalidates the book until its next snapshot.
    proto.connection_lost(0.5)
    assert not book.is_live


def test_level3_ack_without_a_request_is_adopted_in_replay_and_unsubscribe_forgets(
    data_dir: Path,
) -> None:
    proto = authenticated(level3=True, replay=True)
    proto.receive_data(ack("level3", "ETH/USD", None, depth=100), 0.0)
    adopted = proto.l3_book("ETH/USD")
    assert adopted is not None and adopted.depth == 100
    (request,) = sent(proto.unsubscribe("level3", ["ETH/USD"], 0.1)[1])
    assert request["params"]["depth"] == 100
    proto.receive_data(ack("level3", "ETH/USD", request["req_id"], method="unsubscribe"), 0.2)
    assert proto.l3_book("ETH/USD") is None


def test_invalid_level3_frame_resyncs_the_live_book(data_dir: Path) -> None:
    proto, _, _ = level3_proto(data_dir)
    broken = '{"channel":"level3","type":"update","data":[{"symbol":"BTC/USD","checksum":"x"}]}'
    actions = proto.receive_data(broken, 0.2)
    assert events(actions, ProtocolError) and events(actions, BookResync)


def test_reconnect_restarts_sequence_gates_and_keeps_failed_l3_books_failed(
    data_dir: Path,
) -> None:
    proto = authenticated()
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.receive_data(executions_frame(2), 1.1)
    proto.connection_lost(1.2)
    retry_at = proto.next_deadline()
    assert retry_at is not None
    proto.handle_timer(retry_at)
    proto.connection_made(retry_at)
    proto.token_received(TOKEN, retry_at)
    # The new subscription numbers from 1 again: no gap is reported.
    actions = proto.receive_data(executions_frame(1, snapshot=True), retry_at + 0.1)
    assert not events(actions, GapDetected)

    l3, _, checksum = level3_proto(data_dir, resync_max_attempts=1)
    bad = l3_update(checksum + 1)
    l3.receive_data(bad, 0.2)  # first mismatch: resync
    book = l3.l3_book("BTC/USD")
    assert book is not None
    snapshot, _ = l3_snapshot(data_dir)
    l3.receive_data(snapshot, 0.3)
    l3.receive_data(bad, 0.4)  # second mismatch within the window: failed
    assert book.state.value == "failed"
    l3.connection_lost(0.5)
    assert book.state.value == "failed"


# --------------------------------------------------------------------------- one place, one count


def test_unsubscribing_a_resyncing_book_ends_the_resyncing_state() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"))
    proto.receive_data(books["BTC/USD"].frame([("99.5", "1")], [], checksum=1), 1.0)
    assert proto.state is S.RESYNCING
    btc = proto.book("BTC/USD")
    assert btc is not None
    (request,) = sent(proto.unsubscribe("book", ["BTC/USD"], 1.1)[1])
    done = proto.receive_data(ack("book", "BTC/USD", request["req_id"], method="unsubscribe"), 1.2)
    assert states(done) == [("resyncing", "subscribed")]
    assert proto.book("BTC/USD") is None
    # A reference kept to the dropped book serves nothing.
    assert btc.state is BookState.AWAITING_SNAPSHOT


def test_a_book_being_unsubscribed_is_not_resynced() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"))
    proto.unsubscribe("book", ["BTC/USD"], 1.0)
    actions = proto.receive_data(books["BTC/USD"].frame([("99.5", "1")], [], checksum=1), 1.1)
    assert sent(actions) == [] and events(actions, BookResync) == []
    assert states(actions) == [] and proto.state is S.SUBSCRIBED
    btc = proto.book("BTC/USD")
    assert btc is not None and btc.state is BookState.AWAITING_SNAPSHOT
    # Its deltas are dropped meanwhile, quietly.
    assert proto.receive_data(books["BTC/USD"].frame([("97.5", "1")], []), 1.2) == []


def test_a_resyncing_book_being_unsubscribed_stops_counting() -> None:
    proto, books = subscribed_book(("BTC/USD", "ETH/USD"))
    proto.receive_data(books["BTC/USD"].frame([("99.5", "1")], [], checksum=1), 1.0)
    proto.unsubscribe("book", ["BTC/USD"], 1.1)
    bad = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    actions = proto.receive_data(bad, 1.2)
    assert states(actions) == [("resyncing", "subscribed")]
    assert sent(actions) == []


def test_a_level3_capture_starting_mid_stream_is_adopted_in_replay(data_dir: Path) -> None:
    proto = authenticated(
        private_cfg(precisions={"BTC/USD": Precision(price=1, qty=8)}), level3=True, replay=True
    )
    snapshot, _ = l3_snapshot(data_dir)
    (update,) = events(proto.receive_data(snapshot, 0.1), L3Update)
    assert update.snapshot
    book = proto.l3_book("BTC/USD")
    assert book is not None and book.is_live and book.depth == 10
    (info,) = proto.subscriptions.active
    assert (info.channel, info.symbol, info.params) == ("level3", "BTC/USD", {"depth": 10})
