"""KrakenProtocol driven with a fake clock: connection life, subscriptions, books, liveness."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from frames import HEARTBEAT, STATUS, NaiveBook, ack, error, instrument, ticker, trade

from kraken_proto import (
    OHLC,
    Action,
    BookNotLiveError,
    BookResync,
    BookState,
    BookUpdate,
    ClientConfig,
    CloseConnection,
    ConnectionState,
    Emit,
    FetchToken,
    Instrument,
    KrakenProtocol,
    LocalProtocolError,
    OpenConnection,
    Pong,
    Precision,
    ProtocolError,
    ReconnectAfter,
    ReconnectConfig,
    Send,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    SubscriptionStatus,
    SubscriptionsView,
    SystemStatus,
    Ticker,
    Trade,
    Unsubscribed,
)

# Every test here runs with the compiled L2 update loop and with the Python one.
pytestmark = pytest.mark.usefixtures("book_loop")

E = TypeVar("E")
S = ConnectionState


def cfg(**overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "ping_interval": None,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(7),
    }
    base.update(overrides)
    return ClientConfig(**base)


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def events(actions: list[Action], kind: type[E]) -> list[E]:
    return [a.event for a in actions if isinstance(a, Emit) and isinstance(a.event, kind)]


def states(actions: list[Action]) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events(actions, StateChanged)]


def open_proto(config: ClientConfig | None = None, now: float = 0.0) -> KrakenProtocol:
    proto = KrakenProtocol(config or cfg())
    proto.connect(now)
    proto.connection_made(now)
    return proto


def subscribed_book(
    symbols: tuple[str, ...] = ("BTC/USD",), config: ClientConfig | None = None
) -> tuple[KrakenProtocol, dict[str, NaiveBook]]:
    """A protocol with live, verified books for ``symbols`` (depth 10)."""
    proto = KrakenProtocol(config or cfg())
    proto.subscribe("book", list(symbols), 0.0)
    proto.connect(0.0)
    request = sent(proto.connection_made(0.0))[0]
    books = {}
    for symbol in symbols:
        proto.receive_data(ack("book", symbol, request["req_id"], depth=10, snapshot=True), 0.1)
        books[symbol] = NaiveBook(symbol)
        actions = proto.receive_data(books[symbol].snapshot(), 0.2)
        assert events(actions, BookUpdate)[0].snapshot
    assert proto.state is S.SUBSCRIBED
    return proto, books


# --------------------------------------------------------------------------- connecting


def test_connect_then_open_with_nothing_to_subscribe_settles_at_once() -> None:
    proto = KrakenProtocol(cfg())
    actions = proto.connect(1.0)
    assert actions[-1] == OpenConnection("wss://ws.kraken.com/v2")
    assert states(actions) == [("disconnected", "connecting")]
    assert proto.next_deadline() == 11.0  # connect timeout
    actions = proto.connection_made(1.5)
    assert states(actions) == [("connecting", "subscribing"), ("subscribing", "subscribed")]
    assert sent(actions) == []


def test_subscriptions_made_before_connect_are_sent_grouped_on_open() -> None:
    proto = KrakenProtocol(cfg())
    # Each call gets its req_id at once; nothing is sent before the connection is up.
    assert proto.subscribe("book", ["BTC/USD", "ETH/USD"], 0.0, depth=10) == (1, [])
    assert proto.subscribe("ticker", "BTC/USD", 0.0) == (2, [])
    assert proto.subscribe("book", ["XRP/USD"], 0.0, depth=25) == (3, [])
    assert proto.subscribe("instrument", None, 0.0) == (4, [])
    assert proto.pending_calls == 4
    assert [s.symbol for s in proto.subscriptions.pending] == [
        "BTC/USD",
        "ETH/USD",
        "BTC/USD",
        "XRP/USD",
        None,
    ]
    proto.connect(0.0)
    requests = sent(proto.connection_made(0.0))
    assert requests == [
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 10},
            "req_id": 5,
        },
        {
            "method": "subscribe",
            "params": {"channel": "ticker", "symbol": ["BTC/USD"]},
            "req_id": 6,
        },
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["XRP/USD"], "depth": 25},
            "req_id": 7,
        },
        {"method": "subscribe", "params": {"channel": "instrument"}, "req_id": 8},
    ]
    assert proto.state is S.SUBSCRIBING


def test_one_ack_per_symbol_and_settle_after_the_last() -> None:
    proto = KrakenProtocol(cfg())
    call, _ = proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0, snapshot=True)
    proto.connect(0.0)
    (request,) = sent(proto.connection_made(0.0))
    # The call waited for the connection: its request went out with a req_id of its own.
    wire = request["req_id"]
    assert (call, wire) == (1, 2)
    first = proto.receive_data(ack("trade", "BTC/USD", wire, snapshot=True), 0.1)
    btc = Subscribed(
        "trade", "BTC/USD", wire, {"channel": "trade", "snapshot": True, "symbol": "BTC/USD"}, 0.1
    )
    assert events(first, Subscribed) == [btc]
    assert events(first, SubscriptionResult) == []
    assert proto.state is S.SUBSCRIBING
    second = proto.receive_data(ack("trade", "ETH/USD", wire, snapshot=True), 0.2)
    assert states(second) == [("subscribing", "subscribed")]
    eth = Subscribed(
        "trade", "ETH/USD", wire, {"channel": "trade", "snapshot": True, "symbol": "ETH/USD"}, 0.2
    )
    # The call's one result follows the last symbol's ack, in the call's symbol order.
    assert [a.event for a in second if isinstance(a, Emit)][:2] == [
        eth,
        SubscriptionResult(call, "subscribe", "trade", (btc, eth), 0.2),
    ]
    assert proto.pending_calls == 0
    view = proto.subscriptions
    assert [(i.channel, i.symbol, i.status) for i in view.active] == [
        ("trade", "BTC/USD", SubscriptionStatus.ACTIVE),
        ("trade", "ETH/USD", SubscriptionStatus.ACTIVE),
    ]
    assert view.pending == () and view.failed == ()


def test_subscribe_while_connected_sends_immediately_without_leaving_subscribed() -> None:
    proto = open_proto()
    call, actions = proto.subscribe("ohlc", ["BTC/USD"], 1.0, interval=5)
    assert call == 1  # sent at once: the call's req_id is the request's
    assert sent(actions) == [
        {
            "method": "subscribe",
            "params": {"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 5},
            "req_id": 1,
        }
    ]
    assert states(actions) == []
    assert proto.state is S.SUBSCRIBED


def test_connect_timeout_degrades_and_asks_to_abort() -> None:
    proto = KrakenProtocol(cfg(timeout=5.0))
    proto.connect(0.0)
    assert proto.handle_timer(4.9) == []
    actions = proto.handle_timer(5.0)
    assert isinstance(actions[0], CloseConnection)
    assert "no connection within 5 s" in actions[0].reason
    assert states(actions) == [("connecting", "degraded")]
    change = events(actions, StateChanged)[0]
    assert (change.retry, change.delay) == (1, 0.1)
    assert actions[-1] == ReconnectAfter(0.1, change.reason)


# --------------------------------------------------------------------------- acks and errors


def test_refused_symbol_fails_alone_with_krakens_text() -> None:
    proto = KrakenProtocol(cfg())
    call, _ = proto.subscribe("ticker", ["BTC/USD", "XBT/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    answer = ack("ticker", "BTC/USD", 2, event_trigger="trades", snapshot=True)
    (subscribed,) = events(proto.receive_data(answer, 0.1), Subscribed)
    actions = proto.receive_data(
        error("Currency pair not supported XBT/USD", 2, symbol="XBT/USD"), 0.2
    )
    refused = SubscriptionFailed("ticker", "XBT/USD", "Currency pair not supported XBT/USD", 2, 0.2)
    assert events(actions, SubscriptionFailed) == [refused]
    (result,) = events(actions, SubscriptionResult)
    assert result == SubscriptionResult(call, "subscribe", "ticker", (subscribed, refused), 0.2)
    assert not result.ok and result.failures == (refused,)
    assert states(actions) == [("subscribing", "subscribed")]
    failed = proto.subscriptions.failed
    assert [(f.symbol, f.error) for f in failed] == [
        ("XBT/USD", "Currency pair not supported XBT/USD")
    ]
    # A failed subscription may be requested again.
    _, again = proto.subscribe("ticker", ["XBT/USD"], 1.0)
    assert sent(again)[0]["params"]["symbol"] == ["XBT/USD"]


def test_error_without_symbol_fails_every_symbol_of_the_request() -> None:
    proto = KrakenProtocol(cfg())
    call, _ = proto.subscribe("book", ["BTC/USD", "ETH/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.receive_data(error("Subscription name invalid", 2), 0.3)
    failed = events(actions, SubscriptionFailed)
    assert [(f.channel, f.symbol, f.error, f.req_id) for f in failed] == [
        ("book", "BTC/USD", "Subscription name invalid", 2),
        ("book", "ETH/USD", "Subscription name invalid", 2),
    ]
    assert events(actions, SubscriptionResult) == [
        SubscriptionResult(call, "subscribe", "book", tuple(failed), 0.3)
    ]
    assert proto.book("BTC/USD") is not None
    assert proto.book("BTC/USD").state is BookState.FAILED  # type: ignore[union-attr]
    assert proto.state is S.SUBSCRIBED


def test_ack_timeout_fails_the_subscription_and_is_retried_after_reconnect() -> None:
    proto = KrakenProtocol(cfg(ack_timeout=3.0))
    call, _ = proto.subscribe("ticker", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    assert proto.next_deadline() == 3.0
    assert proto.handle_timer(2.9) == []
    actions = proto.handle_timer(3.0)
    timed_out = SubscriptionFailed("ticker", "BTC/USD", "no acknowledgement within 3 s", 2, 3.0)
    assert events(actions, SubscriptionFailed) == [timed_out]
    assert events(actions, SubscriptionResult) == [
        SubscriptionResult(call, "subscribe", "ticker", (timed_out,), 3.0)
    ]
    assert states(actions) == [("subscribing", "subscribed")]
    proto.connection_lost(4.0)
    proto.handle_timer(4.1)
    requests = sent(proto.connection_made(4.2))
    assert requests[0]["params"]["symbol"] == ["BTC/USD"]


def test_error_for_unknown_request_is_reported_not_raised() -> None:
    proto = open_proto()
    actions = proto.receive_data(error("Already subscribed", 99, symbol="BTC/USD"), 1.0)
    assert events(actions, SubscriptionFailed) == [
        SubscriptionFailed("", "BTC/USD", "Already subscribed", 99, 1.0)
    ]


def test_private_channel_error_carries_its_channel() -> None:
    proto = open_proto()
    frame = (
        '{"channel":"executions","error":"ESession:Invalid session","method":"subscribe",'
        '"status":"error","success":false,"time_in":"x","time_out":"y"}'
    )
    failed = events(proto.receive_data(frame, 1.0), SubscriptionFailed)
    assert [(f.channel, f.error) for f in failed] == [("executions", "ESession:Invalid session")]


def test_missing_success_counts_as_failure() -> None:
    proto = KrakenProtocol(cfg())
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    frame = '{"method":"subscribe","req_id":2,"symbol":"BTC/USD"}'
    failed = events(proto.receive_data(frame, 0.5), SubscriptionFailed)
    assert [(f.symbol, f.error) for f in failed] == [
        ("BTC/USD", "request failed without an error message")
    ]


def test_unexpected_method_response_is_a_protocol_error() -> None:
    proto = open_proto()
    frame = '{"method":"add_order","req_id":5,"success":true,"result":{"order_id":"X"}}'
    errors = events(proto.receive_data(frame, 1.0), ProtocolError)
    assert errors[0].error == "unexpected response to method 'add_order'"


# --------------------------------------------------------------------------- unsubscribe


def test_unsubscribe_echoes_depth_and_emits_unsubscribed_on_ack() -> None:
    proto, _ = subscribed_book()
    call, actions = proto.unsubscribe("book", ["BTC/USD"], 1.0)
    assert sent(actions) == [
        {
            "method": "unsubscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
            "req_id": call,
        }
    ]
    assert call == 3  # the subscribe call was 1, its request 2
    assert [i.symbol for i in proto.subscriptions.unsubscribing] == ["BTC/USD"]
    done = proto.receive_data(ack("book", "BTC/USD", 3, method="unsubscribe", depth=10), 1.1)
    unsubscribed = Unsubscribed("book", "BTC/USD", 3, 1.1)
    assert [a.event for a in done if isinstance(a, Emit)] == [
        unsubscribed,
        SubscriptionResult(call, "unsubscribe", "book", (unsubscribed,), 1.1),
    ]
    assert proto.book("BTC/USD") is None
    assert proto.subscriptions.active == ()


def test_subscription_not_found_answer_with_method_subscribe_ends_the_unsubscribe() -> None:
    proto = open_proto()
    proto.subscribe("ohlc", ["BTC/USD"], 0.0, interval=60)
    proto.receive_data(ack("ohlc", "BTC/USD", 1, interval=60, snapshot=True), 0.1)
    request = sent(proto.unsubscribe("ohlc", ["BTC/USD"], 1.0)[1])[0]
    assert request["params"] == {"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 60}
    answer = error("Subscription Not Found", request["req_id"], symbol="BTC/USD")
    actions = proto.receive_data(answer, 1.2)
    assert events(actions, Unsubscribed) == [Unsubscribed("ohlc", "BTC/USD", 2, 1.2)]
    assert proto.subscriptions.unsubscribing == ()


def test_unsubscribe_while_disconnected_just_forgets() -> None:
    proto = KrakenProtocol(cfg())
    subscribe_call, _ = proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    call, actions = proto.unsubscribe("trade", ["BTC/USD"], 0.5)
    unsubscribed = Unsubscribed("trade", "BTC/USD", None, 0.5)
    assert actions == [
        Emit(unsubscribed),
        Emit(SubscriptionResult(call, "unsubscribe", "trade", (unsubscribed,), 0.5)),
    ]
    proto.connect(1.0)
    (request,) = sent(proto.connection_made(1.0))
    assert request["params"]["symbol"] == ["ETH/USD"]
    # The subscribe call settles with ETH/USD's ack; BTC/USD was superseded before then.
    answer = proto.receive_data(ack("trade", "ETH/USD", request["req_id"]), 1.1)
    (result,) = events(answer, SubscriptionResult)
    superseded = SubscriptionFailed(
        "trade",
        "BTC/USD",
        f"superseded by unsubscribe (req_id {call}) before Kraken answered",
        None,
        0.5,
    )
    assert result == SubscriptionResult(
        subscribe_call, "subscribe", "trade", (superseded, *events(answer, Subscribed)), 1.1
    )


def test_unsubscribe_ack_timeout_forgets_the_subscription() -> None:
    proto = open_proto(cfg(ack_timeout=2.0))
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.receive_data(ack("trade", "BTC/USD", 1), 0.1)
    proto.unsubscribe("trade", ["BTC/USD"], 1.0)
    actions = proto.handle_timer(3.0)
    assert events(actions, Unsubscribed) == [Unsubscribed("trade", "BTC/USD", 2, 3.0)]


def test_pending_unsubscribe_completes_when_the_connection_drops() -> None:
    proto = open_proto()
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.receive_data(ack("trade", "BTC/USD", 1), 0.1)
    proto.unsubscribe("trade", ["BTC/USD"], 1.0)
    actions = proto.connection_lost(1.5)
    assert events(actions, Unsubscribed) == [Unsubscribed("trade", "BTC/USD", None, 1.5)]
    proto.handle_timer(2.0)
    assert sent(proto.connection_made(2.0)) == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.subscribe("book", ["BTC/USD"], 0.0, depth=7), "depth must be one of"),
        (lambda p: p.subscribe("book", ["BTC/USD"], 0.0, depth=True), "depth must be one of"),
        (lambda p: p.subscribe("ohlc", ["BTC/USD"], 0.0), "ohlc needs interval"),
        (lambda p: p.subscribe("ticker", ["BTC/USD"], 0.0, event_trigger="x"), "event_trigger"),
        (lambda p: p.subscribe("ticker", ["BTC/USD"], 0.0, snapshot="yes"), "snapshot must"),
        (lambda p: p.subscribe("ticker", ["BTC/USD"], 0.0, depth=10), "does not take"),
        (lambda p: p.subscribe("ticker", [], 0.0), "needs at least one symbol"),
        (lambda p: p.subscribe("ticker", ["BTCUSD"], 0.0), "not a v2 pair name"),
        (lambda p: p.subscribe("ticker", [" BTC/USD"], 0.0), "not a v2 pair name"),
        (lambda p: p.subscribe("instrument", ["BTC/USD"], 0.0), "takes no symbols"),
        (lambda p: p.subscribe("spread", ["BTC/USD"], 0.0), "unknown channel"),
        (lambda p: p.subscribe("executions", None, 0.0), "private"),
        (lambda p: p.unsubscribe("trade", ["BTC/USD"], 0.0), "not subscribed"),
        (lambda p: p.receive_data(HEARTBEAT, 0.0), "feed data only after connection_made"),
        (lambda p: p.connection_made(0.0), "only valid after OpenConnection"),
        (lambda p: p.token_received("t", 0.0), "only valid after FetchToken"),
        (lambda p: p.connection_lost(0.0), "before connect"),
    ],
)
def test_caller_misuse_raises_local_protocol_error(call: Any, match: str) -> None:
    proto = KrakenProtocol(cfg())
    with pytest.raises(LocalProtocolError, match=match):
        call(proto)
    assert proto.subscriptions.pending == ()


def test_duplicate_subscribe_is_refused_before_anything_changes() -> None:
    proto = KrakenProtocol(cfg())
    proto.subscribe("trade", ["ETH/USD"], 0.0)
    with pytest.raises(LocalProtocolError, match="already subscribed to trade ETH/USD"):
        proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    assert [i.symbol for i in proto.subscriptions.pending] == ["ETH/USD"]


def test_repeated_symbols_in_one_call_are_sent_once() -> None:
    proto = open_proto()
    call, actions = proto.subscribe("trade", ["BTC/USD", "BTC/USD"], 0.0)
    request = sent(actions)[0]
    assert request["params"]["symbol"] == ["BTC/USD"]
    # One answer settles the call: the symbol is awaited once.
    answer = proto.receive_data(ack("trade", "BTC/USD", call), 0.1)
    (result,) = events(answer, SubscriptionResult)
    assert result.answers == tuple(events(answer, Subscribed)) and result.ok


# --------------------------------------------------------------------------- market data


def test_trades_and_tickers_become_one_event_per_entry_with_exact_decimals() -> None:
    proto = open_proto()
    frame = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"BTC/USD","side":"buy","price":83744.3,"qty":5.1e-05,"ord_type":"limit",'
        '"trade_id":1,"timestamp":"2026-09-25T17:48:26.844359Z"},'
        '{"symbol":"BTC/USD","side":"sell","price":83744.2,"qty":0.00044780,"ord_type":"market",'
        '"trade_id":2,"timestamp":"2026-09-25T17:48:26.844360Z"}]}'
    )
    trades = events(proto.receive_data(frame, 3.0), Trade)
    assert [(t.trade_id, t.price, t.qty, t.received_at) for t in trades] == [
        (1, Decimal("83744.3"), Decimal("0.000051"), 3.0),
        (2, Decimal("83744.2"), Decimal("0.00044780"), 3.0),
    ]
    tick = events(proto.receive_data(ticker("ETH/USD", bid="1877.43"), 4.0), Ticker)[0]
    assert (tick.symbol, tick.bid, tick.received_at) == ("ETH/USD", Decimal("1877.43"), 4.0)


def test_status_frame_keeps_a_uint64_connection_id() -> None:
    proto = open_proto()
    status = events(proto.receive_data(STATUS, 1.0), SystemStatus)[0]
    assert status.connection_id == 18125794168470749634
    assert (status.system, status.version) == ("online", "2.0.10")
    assert proto.receive_data(HEARTBEAT, 1.1) == []


# --------------------------------------------------------------------------- books


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


def test_backoff_grows_and_resets_after_a_settled_connection() -> None:
    proto = KrakenProtocol(cfg(reconnect=ReconnectConfig(jitter=0.0, max_delay=0.5)))
    proto.connect(0.0)
    delays = []
    now = 0.0
    for _ in range(5):
        change = events(proto.connection_lost(now), StateChanged)[0]
        delays.append((change.retry, change.delay))
        now = proto.next_deadline()  # type: ignore[assignment]
        proto.handle_timer(now)
    assert delays == [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)]
    proto.connection_made(now)  # settles: the budget starts over
    change = events(proto.connection_lost(now + 1), StateChanged)[0]
    assert (change.retry, change.delay) == (1, 0.1)


def test_jittered_backoff_is_reproducible_with_a_seed() -> None:
    def run() -> list[float | None]:
        proto = KrakenProtocol(cfg(reconnect=ReconnectConfig(jitter=0.5), rng=random.Random(3)))
        proto.connect(0.0)
        out = []
        for _ in range(4):
            out.append(events(proto.connection_lost(0.0), StateChanged)[0].delay)
            proto.handle_timer(100.0)
        return out

    first = run()
    assert first == run()
    assert len(set(first)) == 4
    assert all(d is not None and 0 < d <= 30.0 for d in first)


def test_retry_budget_spent_closes() -> None:
    proto = KrakenProtocol(cfg(reconnect=ReconnectConfig(max_attempts=2, jitter=0.0)))
    proto.connect(0.0)
    proto.connection_lost(0.0)
    proto.handle_timer(1.0)
    proto.connection_lost(1.0)
    proto.handle_timer(2.0)
    actions = proto.connection_lost(2.0)
    assert states(actions) == [("connecting", "closed")]
    assert "gave up after 2 reconnect attempts" in events(actions, StateChanged)[0].reason
    assert proto.next_deadline() is None


def test_close_1008_is_terminal() -> None:
    proto, _ = subscribed_book()
    actions = proto.connection_lost(3.0, close_code=1008)
    assert states(actions) == [("subscribed", "closed")]
    assert "1008" in events(actions, StateChanged)[0].reason
    assert not any(isinstance(a, ReconnectAfter) for a in actions)
    assert proto.handle_timer(100.0) == []


@pytest.mark.parametrize("code", [1000, 1001, 1011])
def test_other_close_codes_reconnect(code: int) -> None:
    proto, _ = subscribed_book()
    actions = proto.connection_lost(3.0, close_code=code)
    assert states(actions) == [("subscribed", "degraded")]
    assert f"code {code}" in events(actions, StateChanged)[0].reason


# --------------------------------------------------------------------------- liveness


def test_stale_after_silence_but_heartbeats_keep_it_alive_and_pongs_do_not() -> None:
    proto, _ = subscribed_book(config=cfg(stale_timeout=5.0))
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert proto.receive_data(HEARTBEAT, t) == []
    assert proto.next_deadline() == 10.0
    assert proto.handle_timer(9.9) == []
    proto.receive_data('{"method":"pong","req_id":77}', 9.95)
    actions = proto.handle_timer(10.0)
    assert isinstance(actions[0], CloseConnection)
    assert actions[0].reason == "stale: no message from Kraken for 5.0 s"
    assert states(actions) == [("subscribed", "degraded")]


def test_no_staleness_before_anything_is_subscribed() -> None:
    proto = open_proto(cfg(stale_timeout=5.0))
    assert proto.next_deadline() is None
    assert proto.handle_timer(100.0) == []
    assert proto.state is S.SUBSCRIBED


def test_ping_on_interval_and_pong_with_round_trip() -> None:
    proto = open_proto(cfg(ping_interval=20.0))
    assert proto.next_deadline() == 20.0
    actions = proto.handle_timer(20.0)
    assert sent(actions) == [{"method": "ping", "req_id": 1}]
    assert proto.next_deadline() == 40.0
    pong = events(proto.receive_data('{"method":"pong","req_id":1,"time_in":"a"}', 20.25), Pong)
    assert pong == [Pong(1, 0.25, 20.25)]
    unknown = events(proto.receive_data('{"method":"pong","req_id":55}', 21.0), Pong)
    assert unknown == [Pong(55, None, 21.0)]


def drive(proto: KrakenProtocol, until: float) -> list[Action]:
    """Fire every timer up to ``until`` as a driver would; return the actions, in order."""
    actions: list[Action] = []
    deadline = proto.next_deadline()
    while deadline is not None and deadline <= until:
        actions += proto.handle_timer(deadline)
        deadline = proto.next_deadline()
    return actions


def pings(actions: list[Action]) -> list[int]:
    return [r["req_id"] for r in sent(actions) if r["method"] == "ping"]


def test_an_unanswered_ping_holds_the_next_back_for_ack_timeout_only() -> None:
    """Issue 9, item 4: one ping at a time. Before, a ping left every interval whether or
    not the last one was answered; now the next waits for the pong or for ack_timeout."""
    proto = open_proto(cfg(ping_interval=1.0, ack_timeout=5.0))
    assert pings(drive(proto, 1.0)) == [1]
    assert pings(drive(proto, 5.9)) == []  # ping 1 is outstanding
    assert pings(drive(proto, 6.0)) == [2]  # ping 1 timed out 5 s after it left
    late = events(proto.receive_data('{"method":"pong","req_id":1}', 6.5), Pong)
    assert late == [Pong(1, 5.5, 6.5)]  # a late pong still reports its round trip
    assert pings(drive(proto, 10.0)) == []  # ping 2 is still outstanding
    pong = events(proto.receive_data('{"method":"pong","req_id":2}', 10.25), Pong)
    assert pong == [Pong(2, 4.25, 10.25)]
    assert pings(drive(proto, 11.0)) == [3]  # answered: the next tick pings again


def test_unanswered_pings_are_bounded() -> None:
    proto = open_proto(cfg(ping_interval=1.0, ack_timeout=10.0))
    assert pings(drive(proto, 60.0)) == [1, 2, 3, 4, 5, 6]  # one per ack_timeout
    oldest = events(proto.receive_data('{"method":"pong","req_id":1}', 60.0), Pong)[0]
    assert oldest.rtt == pytest.approx(59.0)
    # With a short ack_timeout one ping leaves per interval; only the last 16 are tracked.
    proto = open_proto(cfg(ping_interval=1.0, ack_timeout=1.0))
    assert pings(drive(proto, 39.0)) == list(range(1, 40))
    first = events(proto.receive_data('{"method":"pong","req_id":1}', 40.0), Pong)[0]
    last = events(proto.receive_data('{"method":"pong","req_id":39}', 40.0), Pong)[0]
    assert first.rtt is None and last.rtt == pytest.approx(1.0)


def test_pings_never_pile_up_ahead_of_other_requests() -> None:
    """Issue 9, item 4: pings faster than the message budget grew the outbox without
    bound, and a subscribe queued behind them never left. Now at most one ping waits."""
    config = cfg(
        ping_interval=1.0,
        ack_timeout=1.5,
        stale_timeout=1e9,
        max_requests_per_second=0.25,
        request_burst=1,
    )
    proto, _ = subscribed_book(config=config)
    assert len(pings(drive(proto, 30.0))) <= 8  # one per 4 s at most: the budget's pace
    _, actions = proto.subscribe("trade", ["ETH/USD"], 30.0)
    actions += drive(proto, 38.0)  # behind at most one ping, at 4 s a message
    assert [r["params"]["symbol"] for r in sent(actions) if r["method"] == "subscribe"] == [
        ["ETH/USD"]
    ]


def test_a_pong_before_its_ping_left_does_not_end_it() -> None:
    proto = open_proto(cfg(ping_interval=1.0, max_requests_per_second=0.5, request_burst=1))
    _, actions = proto.subscribe("trade", ["BTC/USD"], 0.5)
    assert [r["method"] for r in sent(actions)] == ["subscribe"]
    assert proto.handle_timer(1.0) == []  # the ping waits for the budget (until 2.5)
    # An odd server answers the ping that has not left yet: that proves nothing, and the
    # ping stays outstanding (no second one queues behind it).
    early = events(proto.receive_data('{"method":"pong","req_id":2}', 1.5), Pong)
    assert early == [Pong(2, None, 1.5)]
    assert pings(drive(proto, 2.5)) == [2]
    assert pings(drive(proto, 4.0)) == []
    pong = events(proto.receive_data('{"method":"pong","req_id":2}', 4.0), Pong)
    assert pong == [Pong(2, 1.5, 4.0)]
    assert pings(drive(proto, 5.0)) == [3]


def test_staleness_fires_while_a_ping_goes_unanswered() -> None:
    """A pong that never comes must not keep the connection alive, nor hide staleness."""
    proto, _ = subscribed_book(config=cfg(ping_interval=1.0, stale_timeout=5.0))
    for t in (1.0, 2.0, 3.0):
        proto.receive_data(HEARTBEAT, t)
        drive(proto, t)
    actions = drive(proto, 8.0)
    close = next(a for a in actions if isinstance(a, CloseConnection))
    assert close.reason == "stale: no message from Kraken for 5.0 s"
    assert states(actions) == [("subscribed", "degraded")]


def test_silent_subscription_while_others_flow_reconnects() -> None:
    proto = open_proto(cfg(silent_subscription_timeout=8.0, stale_timeout=5.0))
    proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    proto.receive_data(ack("trade", "BTC/USD", 1), 0.0)
    proto.receive_data(ack("trade", "ETH/USD", 1), 0.0)
    trade_id = 0
    actions: list[Action] = []
    now = 0.0
    while not any(isinstance(a, CloseConnection) for a in actions):
        now += 1.0
        trade_id += 1
        proto.receive_data(trade("BTC/USD", trade_id), now)
        actions = proto.handle_timer(now)
        assert now < 20
    assert now == 8.0
    close = actions[0]
    assert isinstance(close, CloseConnection)
    assert close.reason == "stale: trade ETH/USD silent for 8.0 s"


def test_book_data_keeps_a_subscription_from_counting_as_silent() -> None:
    proto, books = subscribed_book(config=cfg(silent_subscription_timeout=4.0))
    for t in range(1, 12):
        proto.receive_data(books["BTC/USD"].frame([], [(f"{150 + t}.0", "1")]), float(t))
        assert not any(isinstance(a, CloseConnection) for a in proto.handle_timer(float(t)))


# --------------------------------------------------------------------------- pacing


def test_outgoing_requests_are_paced_by_the_token_bucket() -> None:
    proto = open_proto(cfg(max_requests_per_second=2.0, request_burst=1))
    _, first = proto.subscribe("trade", ["BTC/USD"], 0.0)
    _, second = proto.subscribe("ticker", ["BTC/USD"], 0.0)
    _, third = proto.subscribe("book", ["BTC/USD"], 0.0)
    assert [r["params"]["channel"] for r in sent(first + second + third)] == ["trade"]
    assert proto.next_deadline() == pytest.approx(0.5)
    assert [r["params"]["channel"] for r in sent(proto.handle_timer(0.5))] == ["ticker"]
    assert [r["params"]["channel"] for r in sent(proto.handle_timer(1.0))] == ["book"]
    # The ack deadline runs from when the request actually left.
    assert proto.next_deadline() == pytest.approx(10.0)


# --------------------------------------------------------------------------- closing


def test_close_is_terminal_idempotent_and_restartable() -> None:
    proto, _ = subscribed_book()
    actions = proto.close(2.0)
    assert actions[0] == CloseConnection(1000, "closed by the client")
    assert states(actions) == [("subscribed", "closed")]
    assert proto.close(2.1) == []
    assert proto.connection_lost(2.2) == []
    assert proto.receive_data(HEARTBEAT, 2.3) == []
    assert proto.handle_timer(50.0) == []
    assert proto.next_deadline() is None
    proto.connect(3.0)
    assert sent(proto.connection_made(3.0))[0]["params"]["symbol"] == ["BTC/USD"]


def test_close_before_connect_sends_nothing_to_the_socket() -> None:
    proto = KrakenProtocol(cfg())
    actions = proto.close(0.0)
    assert states(actions) == [("disconnected", "closed")]
    assert not any(isinstance(a, CloseConnection) for a in actions)


# --------------------------------------------------------------------------- private


def private_config(**overrides: Any) -> ClientConfig:
    return cfg(api_key="KEY123", api_secret="c2VjcmV0c2VjcmV0", **overrides)


def test_private_connection_fetches_a_token_then_subscribes_with_it() -> None:
    proto = KrakenProtocol(private_config(), private=True)
    proto.subscribe("executions", None, 0.0)
    assert proto.connect(0.0)[-1] == OpenConnection("wss://ws-auth.kraken.com/v2")
    actions = proto.connection_made(0.0)
    assert states(actions) == [("connecting", "authenticating")]
    fetch = actions[-1]
    assert isinstance(fetch, FetchToken)
    assert "KEY123" not in repr(fetch) and "c2VjcmV0" not in repr(fetch)
    actions = proto.token_received("TOKEN-abc", 0.5)
    assert states(actions) == [("authenticating", "subscribing")]
    assert sent(actions)[0]["params"]["token"] == "TOKEN-abc"
    other = KrakenProtocol(private_config(), private=True)
    other.connect(0.0)
    other.connection_made(0.0)
    with pytest.raises(LocalProtocolError, match="non-empty token"):
        other.token_received("", 0.0)


def test_token_timeout_degrades() -> None:
    proto = KrakenProtocol(private_config(timeout=4.0), private=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    assert proto.next_deadline() == 4.0
    actions = proto.handle_timer(4.0)
    assert states(actions) == [("authenticating", "degraded")]
    assert "no WebSocket token within 4 s" in events(actions, StateChanged)[0].reason


def test_private_needs_credentials() -> None:
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        KrakenProtocol(cfg(), private=True)


def test_url_and_config_are_exposed() -> None:
    config = cfg(endpoint="ws://127.0.0.1:8765/v2")
    proto = KrakenProtocol(config)
    assert proto.url == "ws://127.0.0.1:8765/v2"
    assert proto.config is config
    assert proto.state is S.DISCONNECTED
    assert KrakenProtocol().config.endpoint == "wss://ws.kraken.com/v2"


def test_refusal_without_request_id_or_channel_is_matched_to_the_pending_symbol() -> None:
    proto = KrakenProtocol(cfg())
    proto.subscribe("ticker", ["XBT/USD"], 0.0)
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    answer = error("Currency pair not supported XBT/USD", None, symbol="XBT/USD")
    failed = events(proto.receive_data(answer, 0.5), SubscriptionFailed)
    assert failed == [
        SubscriptionFailed("ticker", "XBT/USD", "Currency pair not supported XBT/USD", None, 0.5)
    ]
    # With two candidates the channel stays unknown rather than guessed.
    proto.subscribe("trade", ["ETH/USD"], 1.0)
    proto.subscribe("ticker", ["ETH/USD"], 1.0)
    twice = error("Currency pair not supported ETH/USD", None, symbol="ETH/USD")
    assert [f.channel for f in events(proto.receive_data(twice, 1.5), SubscriptionFailed)] == [""]


def test_drop_without_close_frame_is_described_as_such() -> None:
    proto, _ = subscribed_book()
    change = events(proto.connection_lost(1.0, close_code=1006), StateChanged)[0]
    assert change.reason == "connection dropped without a close frame (1006)"


# --------------------------------------------------------------------------- corner cases


def test_a_book_refused_by_kraken_stays_failed_across_reconnects_a_local_failure_retries() -> None:
    proto = KrakenProtocol(cfg(resync_max_attempts=1))
    proto.subscribe("book", ["BTC/USD", "ETH/USD"], 0.0)
    proto.connect(0.0)
    proto.connection_made(0.0)
    proto.receive_data(error("Currency pair not supported ETH/USD", 2, symbol="ETH/USD"), 0.1)
    proto.receive_data(ack("book", "BTC/USD", 2, depth=10), 0.1)
    bad = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    proto.receive_data(bad, 0.2)
    proto.receive_data(bad, 0.3)  # budget of one resync spent: failed locally
    btc, eth = proto.book("BTC/USD"), proto.book("ETH/USD")
    assert btc is not None and eth is not None
    assert (btc.state, eth.state) == (BookState.FAILED, BookState.FAILED)
    proto.connection_lost(1.0)
    assert (btc.state, eth.state) == (BookState.FAILED, BookState.FAILED)
    proto.handle_timer(2.0)
    requests = sent(proto.connection_made(2.0))
    assert [r["params"]["symbol"] for r in requests] == [["BTC/USD"]]
    assert (btc.state, eth.state) == (BookState.AWAITING_SNAPSHOT, BookState.FAILED)


def test_ack_timeout_of_a_subscription_already_forgotten_is_ignored() -> None:
    proto = open_proto(cfg(ack_timeout=5.0))
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.unsubscribe("trade", ["BTC/USD"], 0.1)
    proto.receive_data(ack("trade", "BTC/USD", 2, method="unsubscribe"), 0.2)
    assert proto.handle_timer(5.0) == []
    assert proto.subscriptions == proto.subscriptions.__class__((), (), ())


def test_unsolicited_unsubscribe_ack_is_still_reported() -> None:
    proto = open_proto()
    actions = proto.receive_data(ack("trade", "DOT/USD", None, method="unsubscribe"), 1.0)
    assert events(actions, Unsubscribed) == [Unsubscribed("trade", "DOT/USD", None, 1.0)]


def test_silence_check_skips_symbolless_and_pending_subscriptions() -> None:
    proto = open_proto(cfg(silent_subscription_timeout=4.0, stale_timeout=100.0))
    proto.subscribe("instrument", None, 0.0)
    proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    proto.receive_data(ack("instrument", None, 1), 0.0)
    proto.receive_data(ack("trade", "BTC/USD", 2), 0.0)  # ETH/USD stays pending
    for t in range(1, 10):
        proto.receive_data(trade("BTC/USD", t), float(t))
        assert not any(isinstance(a, CloseConnection) for a in proto.handle_timer(float(t)))


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


def test_ticker_event_trigger_and_deepest_headroom() -> None:
    proto = open_proto(cfg(depth_headroom=10))
    request = sent(proto.subscribe("ticker", ["BTC/USD"], 0.0, event_trigger="bbo")[1])[0]
    assert request["params"]["event_trigger"] == "bbo"
    deep = sent(proto.subscribe("book", ["BTC/USD"], 0.0, depth=1000)[1])[0]
    assert deep["params"]["depth"] == 1000
    book = proto.book("BTC/USD")
    assert book is not None and (book.depth, book.view_depth) == (1000, 1000)


def test_timer_before_the_retry_time_does_nothing_while_degraded() -> None:
    proto = open_proto()
    proto.connection_lost(1.0)
    retry_at = proto.next_deadline()
    assert proto.state is S.DEGRADED and retry_at is not None and retry_at > 1.0
    assert proto.handle_timer(retry_at - 0.01) == []
    assert proto.state is S.DEGRADED
    assert isinstance(proto.handle_timer(retry_at)[-1], OpenConnection)


# --------------------------------------------------------------------------- unsolicited


def test_live_connection_reports_unsolicited_acks_and_snapshots_and_keeps_nothing() -> None:
    """Issue 9, item 7: on a live connection acks and snapshots nobody asked for became
    subscriptions and books, without limit, and were all resubscribed after a reconnect.
    Now each is a ProtocolError and nothing of it is kept."""
    proto = open_proto(cfg(silent_subscription_timeout=30.0))
    actions: list[Action] = []
    for n in range(200):
        symbol = f"S{n}/USD"
        actions += proto.receive_data(ack("book", symbol, None, depth=10, snapshot=True), 1.0)
        actions += proto.receive_data(NaiveBook(symbol).snapshot(), 1.0)
        actions += proto.receive_data(ack("trade", symbol, 99), 1.0)
        actions += proto.receive_data(trade(symbol, n + 1), 1.0)  # data of no subscription
    errors = [e.error for e in events(actions, ProtocolError)]
    assert len(errors) == 600
    assert errors[:3] == [
        "Kraken acknowledged a subscription to book S0/USD that this client never "
        "requested; ignored",
        "Kraken sent a book snapshot for S0/USD, which is not subscribed; ignored",
        "Kraken acknowledged a subscription to trade S0/USD that this client never "
        "requested; ignored",
    ]
    assert events(actions, Subscribed) == [] and events(actions, BookUpdate) == []
    assert proto.subscriptions == SubscriptionsView((), (), (), ())
    assert proto.book("S0/USD") is None and proto.book("S199/USD") is None
    assert proto.next_deadline() is None  # no silence check armed for them either
    # Nothing to resubscribe after a reconnect.
    proto.connection_lost(2.0)
    reconnect = drive(proto, 3.0)
    assert any(isinstance(a, OpenConnection) for a in reconnect)
    assert sent(proto.connection_made(3.0)) == []


def test_a_late_ack_of_our_own_request_is_ignored_quietly() -> None:
    proto = open_proto()
    (request,) = sent(proto.subscribe("trade", ["BTC/USD"], 0.0)[1])
    (stop,) = sent(proto.unsubscribe("trade", ["BTC/USD"], 0.1)[1])
    # Kraken answers the unsubscribe first: the subscription is gone when its ack comes.
    gone = proto.receive_data(ack("trade", "BTC/USD", stop["req_id"], method="unsubscribe"), 0.2)
    assert events(gone, Unsubscribed) == [Unsubscribed("trade", "BTC/USD", stop["req_id"], 0.2)]
    late = proto.receive_data(ack("trade", "BTC/USD", request["req_id"]), 0.3)
    assert [a for a in late if isinstance(a, Emit)] == []
    assert proto.subscriptions == SubscriptionsView((), (), (), ())


def test_replay_mode_adopts_what_a_capture_acknowledges() -> None:
    assert KrakenProtocol(cfg()).is_replay is False
    proto = KrakenProtocol(cfg(), replay=True)
    assert proto.is_replay
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.receive_data(NaiveBook("XRP/USD").snapshot(), 1.0)
    assert events(actions, ProtocolError) == []
    assert [e.symbol for e in events(actions, BookUpdate)] == ["XRP/USD"]
    assert [s.symbol for s in proto.subscriptions.active] == ["XRP/USD"]


# --------------------------------------------------------------------------- numbers


def test_a_nan_trade_is_a_protocol_error_and_its_neighbours_are_delivered() -> None:
    """Issue 9, item 6: a quoted "NaN" reached user code as Decimal('NaN'), where
    ``qty > 0`` raises."""
    proto = open_proto()
    frame = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"BTC/USD","side":"buy","price":100.5,"qty":0.5,"ord_type":"limit",'
        '"trade_id":1,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"buy","price":100.5,"qty":"NaN","ord_type":"limit",'
        '"trade_id":2,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"sell","price":-100.4,"qty":0.5,"ord_type":"limit",'
        '"trade_id":3,"timestamp":"t"},'
        '{"symbol":"BTC/USD","side":"sell","price":100.4,"qty":1.5,"ord_type":"limit",'
        '"trade_id":4,"timestamp":"t"}]}'
    )
    actions = proto.receive_data(frame, 1.0)
    assert [type(a.event).__name__ for a in actions if isinstance(a, Emit)] == [
        "Trade",
        "ProtocolError",
        "ProtocolError",
        "Trade",
    ]
    assert [t.trade_id for t in events(actions, Trade)] == [1, 4]
    nan, negative = events(actions, ProtocolError)
    assert nan.error == (
        "Kraken sent an unusable trade entry: trade.qty: 'NaN' is not a finite positive "
        "number; the message's other entries are delivered"
    )
    assert '"trade_id":2' in nan.payload and nan.received_at == 1.0
    assert "trade.price: '-100.4' is not a finite positive number" in negative.error


def test_an_instrument_pair_or_asset_with_bad_numbers_is_left_out() -> None:
    proto = open_proto()
    proto.subscribe("book", ["ETH/USD"], 0.0)
    pair = {"base": "X", "quote": "USD", "status": "online", "qty_precision": 8}
    frame = {
        "channel": "instrument",
        "type": "snapshot",
        "data": {
            "assets": [
                {"id": "BTC", "status": "enabled", "precision": 10},
                {"id": "AAPLx", "status": "enabled", "precision": 8, "multiplier": "-1.5"},
            ],
            "pairs": [
                {**pair, "symbol": "BTC/USD", "price_precision": 1, "qty_increment": 1e-08},
                {**pair, "symbol": "ETH/USD", "price_precision": 2, "qty_increment": "NaN"},
                {**pair, "symbol": "XRP/USD", "price_precision": 5, "cost_min": -0.5},
            ],
        },
    }
    actions = proto.receive_data(json.dumps(frame), 1.0)
    errors = [e.error for e in events(actions, ProtocolError)]
    assert [e.split(": ", 1)[1].split(" is ")[0] for e in errors] == [
        "instrument.asset.multiplier: '-1.5'",
        "instrument.pair.qty_increment: 'NaN'",
        "instrument.pair.cost_min: '-0.5'",
    ]
    (instrument_event,) = events(actions, Instrument)
    assert [a.id for a in instrument_event.assets] == ["BTC"]
    assert [p.symbol for p in instrument_event.pairs] == ["BTC/USD"]
    assert instrument_event.snapshot
    eth = proto.book("ETH/USD")
    assert eth is not None and eth.price_precision is None  # the bad pair's is not used


def test_an_instrument_pair_that_does_not_decode_costs_only_itself() -> None:
    proto = open_proto()
    good = json.loads(instrument("BTC/USD", 1, 8))["data"]["pairs"][0]
    frame = {
        "channel": "instrument",
        "type": "update",
        "data": {
            "assets": [{"id": "BTC", "status": "enabled", "precision": -1}],
            "pairs": [{**good, "symbol": "ETH/USD", "price_precision": 19}, good],
        },
    }
    actions = proto.receive_data(json.dumps(frame), 1.0)
    errors = [e.error for e in events(actions, ProtocolError)]
    assert len(errors) == 2
    assert "data.assets[0]: Expected `int` >= 0 - at `$.precision`" in errors[0]
    assert "data.pairs[0]: Expected `int` <= 18 - at `$.price_precision`" in errors[1]
    (instrument_event,) = events(actions, Instrument)
    assert instrument_event.assets == () and not instrument_event.snapshot
    assert [p.symbol for p in instrument_event.pairs] == ["BTC/USD"]


def test_a_frame_that_is_broken_itself_is_not_salvaged() -> None:
    proto = open_proto()
    for payload in (
        '{"channel":"trade","type":"update","data":{"symbol":"BTC/USD"}}',
        '{"channel":"instrument","type":"update","data":[]}',
    ):
        (error,) = events(proto.receive_data(payload, 1.0), ProtocolError)
        assert error.error.startswith("invalid ")


def test_silence_check_hears_salvaged_entries() -> None:
    proto = open_proto(cfg(silent_subscription_timeout=8.0, stale_timeout=100.0))
    proto.subscribe("ticker", ["BTC/USD", "ETH/USD"], 0.0)
    proto.receive_data(ack("ticker", "BTC/USD", 1), 0.0)
    proto.receive_data(ack("ticker", "ETH/USD", 1), 0.0)
    bad_eth = ticker("ETH/USD", bid='"NaN"').replace('"data":[', '"data":[' + ticker_entry())
    assert len(events(proto.receive_data(ticker("ETH/USD"), 0.5), Ticker)) == 1
    for t in range(1, 11):
        actions = proto.receive_data(bad_eth, float(t))
        assert len(events(actions, Ticker)) == 1 and len(events(actions, ProtocolError)) == 1
        actions = proto.handle_timer(float(t))
    # BTC/USD was heard; ETH/USD only sent unusable entries and counts as silent.
    close = next(a for a in actions if isinstance(a, CloseConnection))
    assert close.reason == "stale: ticker ETH/USD silent for 9.5 s"


def ticker_entry(symbol: str = "BTC/USD") -> str:
    """One good ticker entry followed by a comma, to splice into a frame's data."""
    frame = ticker(symbol)
    return frame[frame.index("[") + 1 : frame.rindex("]")] + ","


def test_candles_keep_their_subscription_from_counting_as_silent() -> None:
    proto = open_proto(cfg(silent_subscription_timeout=4.0, stale_timeout=100.0))
    proto.subscribe("ohlc", ["BTC/USD"], 0.0, interval=1)
    proto.receive_data(ack("ohlc", "BTC/USD", 1, interval=1), 0.0)
    candle = (
        '{"channel":"ohlc","type":"update","data":[{"symbol":"BTC/USD","open":1.5,"high":2,'
        '"low":1,"close":1.5,"trades":3,"volume":0,"vwap":0,"interval_begin":"b",'
        '"interval":1}]}'
    )
    for t in range(1, 12):
        assert len(events(proto.receive_data(candle, float(t)), OHLC)) == 1
        assert not any(isinstance(a, CloseConnection) for a in proto.handle_timer(float(t)))
