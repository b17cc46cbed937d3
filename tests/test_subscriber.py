"""The subscriptions part (kraken_proto.subscriber) through KrakenProtocol: requests,
acks, refusals, unsubscribes, calls and silent subscriptions."""

from __future__ import annotations

import pytest
from frames import NaiveBook, ack, error, ticker, trade
from protocols import (
    TOKEN,
    S,
    authenticated,
    cfg,
    events,
    open_proto,
    private_cfg,
    sent,
    states,
    subscribed_book,
    ticker_entry,
)

from kraken_proto import (
    OHLC,
    Action,
    BookState,
    CloseConnection,
    Emit,
    KrakenProtocol,
    LocalProtocolError,
    ProtocolError,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    SubscriptionStatus,
    SubscriptionsView,
    Ticker,
    Unsubscribed,
)


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


def test_ticker_event_trigger_and_deepest_headroom() -> None:
    proto = open_proto(cfg(depth_headroom=10))
    request = sent(proto.subscribe("ticker", ["BTC/USD"], 0.0, event_trigger="bbo")[1])[0]
    assert request["params"]["event_trigger"] == "bbo"
    deep = sent(proto.subscribe("book", ["BTC/USD"], 0.0, depth=1000)[1])[0]
    assert deep["params"]["depth"] == 1000
    book = proto.book("BTC/USD")
    assert book is not None and (book.depth, book.view_depth) == (1000, 1000)


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


def test_subscribed_events_on_the_auth_host() -> None:
    proto = authenticated()
    _, actions = proto.subscribe("executions", None, 0.0, snap_trades=True, ratecounter=True)
    (request,) = sent(actions)
    assert request["params"] == {
        "channel": "executions",
        "snap_trades": True,
        "ratecounter": True,
        "token": TOKEN,
    }
    (done,) = events(
        proto.receive_data(ack("executions", None, request["req_id"]), 0.1), Subscribed
    )
    assert done.channel == "executions" and done.symbol is None


def test_user_misuse_of_private_subscribe_parameters() -> None:
    proto = KrakenProtocol(private_cfg(), private=True)
    with pytest.raises(LocalProtocolError, match="users must be 'all'"):
        proto.subscribe("executions", None, 0.0, users="me")
    assert proto.subscribe("balances", None, 0.0, users="all") == (1, [])
    level3 = KrakenProtocol(private_cfg(), level3=True)
    with pytest.raises(LocalProtocolError, match="level3 depth must be one of"):
        level3.subscribe("level3", ["BTC/USD"], 0.0, depth=25)


# --------------------------------------------------------------------------- the table at work


def test_a_subscribe_that_times_out_while_unsubscribing_is_not_retried() -> None:
    proto = open_proto(cfg(ack_timeout=1.0))
    proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.unsubscribe("trade", ["BTC/USD"], 0.6)
    actions = proto.handle_timer(1.2)  # the subscribe timed out, the unsubscribe not yet
    assert [f.symbol for f in events(actions, SubscriptionFailed)] == ["BTC/USD"]
    assert [i.symbol for i in proto.subscriptions.unsubscribing] == ["BTC/USD"]
    proto.connection_lost(1.3)
    assert proto.subscriptions == SubscriptionsView((), (), (), ())
    proto.handle_timer(proto.next_deadline() or 0.0)
    assert sent(proto.connection_made(2.0)) == []


def test_an_ack_for_a_request_still_paced_is_taken_before_it_leaves() -> None:
    proto = open_proto(cfg(max_requests_per_second=1.0, request_burst=1, stale_timeout=100.0))
    first, actions = proto.subscribe("trade", ["BTC/USD"], 0.0)
    assert sent(actions)  # left at once: the budget is spent
    proto.receive_data(ack("trade", "BTC/USD", first), 0.05)
    call, actions = proto.subscribe("ticker", ["BTC/USD"], 0.05)
    assert sent(actions) == []  # waits for the budget
    proto.receive_data(ack("ticker", "BTC/USD", call), 0.1)  # answered before it left
    deadline = proto.next_deadline()
    assert deadline is not None and deadline < 1.1
    left = proto.handle_timer(deadline)
    assert [m["params"]["channel"] for m in sent(left)] == ["ticker"]
    later = proto.handle_timer(deadline + 20.0)  # no ack is awaited for it any more
    assert events(later, SubscriptionFailed) == []
    assert [i.channel for i in proto.subscriptions.active] == ["trade", "ticker"]
