"""KrakenProtocol as a whole: hosts, the routing of responses, misuse,
unsolicited input."""

from __future__ import annotations

from typing import Any

import pytest
from frames import HEARTBEAT, NaiveBook, ack, trade
from protocols import TOKEN, S, authenticated, cfg, drive, events, open_proto, private_cfg, sent

from kraken_proto import (
    Action,
    BookUpdate,
    ClientConfig,
    Emit,
    Host,
    KrakenProtocol,
    LocalProtocolError,
    OpenConnection,
    ProtocolError,
    Subscribed,
    SubscriptionsView,
    Unsubscribed,
)

# Every test here runs with the compiled L2 update loop and with the Python one.
pytestmark = pytest.mark.usefixtures("book_loop")


def test_unexpected_method_response_is_a_protocol_error() -> None:
    proto = open_proto()
    frame = '{"method":"add_order","req_id":5,"success":true,"result":{"order_id":"X"}}'
    errors = events(proto.receive_data(frame, 1.0), ProtocolError)
    assert errors[0].error == "unexpected response to method 'add_order'"


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
        (lambda p: p.subscribe("ticker", b"BTC/USD", 0.0), "not bytes b'BTC/USD'"),
        (lambda p: p.subscribe("ticker", 7, 0.0), "symbols must be a str or an iterable"),
        (lambda p: p.subscribe("ticker", ["BTC/USD", 7], 0.0), "got int 7 in it"),
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


def test_each_host_has_its_own_url_and_channels() -> None:
    config = private_cfg()
    assert KrakenProtocol(config, private=True).url == "wss://ws-auth.kraken.com/v2"
    assert KrakenProtocol(config, level3=True).url == "wss://ws-l3.kraken.com/v2"
    assert KrakenProtocol(config, level3=True).host is Host.LEVEL3
    with pytest.raises(LocalProtocolError, match="choose one host"):
        KrakenProtocol(config, private=True, level3=True)
    with pytest.raises(LocalProtocolError, match="private connection"):
        KrakenProtocol(config).subscribe("executions", None, 0.0)
    with pytest.raises(LocalProtocolError, match="level3 connection"):
        KrakenProtocol(config, private=True).subscribe("level3", ["BTC/USD"], 0.0)
    with pytest.raises(LocalProtocolError, match="public connection"):
        KrakenProtocol(config, level3=True).subscribe("book", ["BTC/USD"], 0.0)
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        KrakenProtocol(ClientConfig(), level3=True)


@pytest.mark.parametrize(
    ("level3", "channel", "symbol"),
    [(False, "executions", None), (False, "balances", None), (True, "level3", "ETH/USD")],
)
def test_unsolicited_acks_on_a_live_private_connection_keep_nothing(
    level3: bool, channel: str, symbol: str | None
) -> None:
    """Issue 9, item 7, on the auth and level3 hosts: an ack nobody asked for is a
    ProtocolError; no subscription, no book, nothing resubscribed after a reconnect."""
    proto = authenticated(level3=level3)
    actions = proto.receive_data(ack(channel, symbol, None, depth=100), 0.5)
    what = channel if symbol is None else f"{channel} {symbol}"
    assert events(actions, ProtocolError) == [
        ProtocolError(
            f"Kraken acknowledged a subscription to {what} that this client never requested; "
            "ignored",
            "",
            0.5,
        )
    ]
    assert events(actions, Subscribed) == []
    assert not proto.subscriptions.active and not proto.subscriptions.pending
    assert proto.l3_book("ETH/USD") is None
    proto.connection_lost(1.0)
    proto.handle_timer(proto.next_deadline() or 1.0)
    proto.connection_made(2.0)
    assert sent(proto.token_received(TOKEN, 2.0)) == []


def test_the_host_is_an_enum_naming_the_url_and_the_channels() -> None:
    config = cfg()
    assert KrakenProtocol(config).host is Host.PUBLIC
    keyed = cfg(api_key="key", api_secret="c2VjcmV0")
    assert KrakenProtocol(keyed, private=True).host is Host.AUTH
    assert [host.value for host in Host] == ["public", "auth", "level3"]
    assert [host.needs_token for host in Host] == [False, True, True]
    urls = [host.url(config) for host in Host]
    assert urls == [config.endpoint, config.auth_endpoint, config.level3_endpoint]
    with pytest.raises(LocalProtocolError, match="not served on this auth connection"):
        KrakenProtocol(keyed, private=True).subscribe("book", ["BTC/USD"], 0.0)
