"""The connection part (kraken_proto.connection) through KrakenProtocol: connecting,
tokens, backoff, closing, staleness and pings."""

from __future__ import annotations

import json
import random

import pytest
from frames import HEARTBEAT
from protocols import (
    KEY,
    SECRET,
    TIMES,
    TOKEN,
    S,
    authenticated,
    cfg,
    drive,
    events,
    open_proto,
    order,
    pings,
    private_cfg,
    private_config,
    sent,
    states,
    subscribed_book,
)

from kraken_proto import (
    CloseConnection,
    FetchToken,
    KrakenProtocol,
    LocalProtocolError,
    OpenConnection,
    Pong,
    ReconnectAfter,
    ReconnectConfig,
    Send,
    StateChanged,
    SubscriptionFailed,
    SubscriptionResult,
)
from kraken_proto.replay import encode_capture_line


def test_connect_then_open_with_nothing_to_subscribe_settles_at_once() -> None:
    proto = KrakenProtocol(cfg())
    actions = proto.connect(1.0)
    assert actions[-1] == OpenConnection("wss://ws.kraken.com/v2")
    assert states(actions) == [("disconnected", "connecting")]
    assert proto.next_deadline() == 11.0  # connect timeout
    actions = proto.connection_made(1.5)
    assert states(actions) == [("connecting", "subscribing"), ("subscribing", "subscribed")]
    assert sent(actions) == []


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


def test_drop_without_close_frame_is_described_as_such() -> None:
    proto, _ = subscribed_book()
    change = events(proto.connection_lost(1.0, close_code=1006), StateChanged)[0]
    assert change.reason == "connection dropped without a close frame (1006)"


def test_timer_before_the_retry_time_does_nothing_while_degraded() -> None:
    proto = open_proto()
    proto.connection_lost(1.0)
    retry_at = proto.next_deadline()
    assert proto.state is S.DEGRADED and retry_at is not None and retry_at > 1.0
    assert proto.handle_timer(retry_at - 0.01) == []
    assert proto.state is S.DEGRADED
    assert isinstance(proto.handle_timer(retry_at)[-1], OpenConnection)


def test_level3_connection_fetches_its_own_token() -> None:
    proto = KrakenProtocol(private_cfg(), level3=True)
    proto.subscribe("level3", ["BTC/USD"], 0.0, depth=100)
    assert proto.connect(0.0)[-1] == OpenConnection("wss://ws-l3.kraken.com/v2")
    assert isinstance(proto.connection_made(0.0)[-1], FetchToken)
    (request,) = sent(proto.token_received(TOKEN, 0.1))
    assert request["params"] == {
        "channel": "level3",
        "symbol": ["BTC/USD"],
        "depth": 100,
        "token": TOKEN,
    }


def test_terminal_token_failure_closes_with_the_reason() -> None:
    proto = KrakenProtocol(private_cfg(), private=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.token_failed("EAPI:Invalid key", 0.2, terminal=True)
    assert states(actions) == [("authenticating", "closed")]
    assert "EAPI:Invalid key" in events(actions, StateChanged)[0].reason
    assert isinstance(actions[0], CloseConnection)
    assert proto.next_deadline() is None


def test_transient_token_failure_retries_with_backoff_and_a_fresh_token() -> None:
    proto = KrakenProtocol(private_cfg(), private=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.token_failed("EAuth:Too many requests", 0.2, terminal=False)
    assert states(actions) == [("authenticating", "degraded")]
    retry_at = proto.next_deadline()
    assert retry_at == pytest.approx(0.3)
    proto.handle_timer(retry_at)
    fetch = proto.connection_made(retry_at)[-1]
    assert isinstance(fetch, FetchToken)  # one request per connection, a fresh token each time


def test_token_failed_outside_authenticating_is_a_caller_error() -> None:
    with pytest.raises(LocalProtocolError, match="only valid after FetchToken"):
        KrakenProtocol(private_cfg(), private=True).token_failed("x", 0.0, terminal=False)


def test_refused_token_on_subscribe_reconnects_for_a_fresh_one() -> None:
    proto = authenticated()
    call, actions = proto.subscribe("executions", None, 0.0)
    (request,) = sent(actions)
    refusal = json.dumps(
        {
            "channel": "executions",
            "error": "ESession:Invalid session",
            "method": "subscribe",
            "req_id": request["req_id"],
            "status": "error",
            "success": False,
            **TIMES,
        }
    )
    actions = proto.receive_data(refusal, 0.1)
    assert states(actions) == [("subscribed", "degraded")]
    assert not events(actions, SubscriptionFailed)
    assert proto.subscriptions.pending[0].channel == "executions"  # replayed on reconnect
    # The call stays open for the next connection's answer.
    assert not events(actions, SubscriptionResult)
    assert (call, proto.pending_calls) == (request["req_id"], 1)


def test_the_token_never_shows_in_reprs_or_captures() -> None:
    proto = authenticated()
    (send,) = [a for a in proto.subscribe("balances", None, 0.0)[1] if isinstance(a, Send)]
    assert TOKEN in send.text  # the wire needs it...
    assert TOKEN not in repr(send)  # ...nothing else does
    assert '"token":"***"' in repr(send)
    assert TOKEN not in encode_capture_line(0.0, "out", send.text)
    _, actions = proto.submit(order(), 0.1)
    assert all(TOKEN not in repr(a) for a in actions)
    assert KEY not in repr(proto.config) and SECRET not in repr(proto.config)
