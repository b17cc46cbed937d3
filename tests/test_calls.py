"""Subscribe and unsubscribe calls (``kraken_proto.calls``): each settles exactly once.

``Calls`` on its own first, then ``KrakenProtocol``'s ``SubscriptionResult`` for every way a
call can end, then the settle-once guarantee as a property: random interleavings of calls,
connections, Kraken's answers (and silences), timers, failures and closes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from budget import sized
from frames import NaiveBook, ack, error
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from protocols import cfg, events, open_proto, sent, states

from kraken_proto import (
    Action,
    ConnectionState,
    Emit,
    Event,
    FetchToken,
    KrakenProtocol,
    LocalProtocolError,
    ReconnectConfig,
    Send,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
    SubscriptionStatus,
    Unsubscribed,
)
from kraken_proto.calls import Calls

E = TypeVar("E")
S = ConnectionState


def state(proto: KrakenProtocol) -> ConnectionState:
    """The state now (a function: mypy would keep an earlier ``proto.state`` narrowing)."""
    return proto.state


def failure(proto: KrakenProtocol) -> tuple[str | None, int]:
    return proto.last_failure, proto.failed_attempts


def emitted(actions: list[Action]) -> list[Event]:
    return [a.event for a in actions if isinstance(a, Emit)]


def statuses(proto: KrakenProtocol) -> dict[tuple[str, str | None], SubscriptionStatus]:
    view = proto.subscriptions
    infos = (*view.active, *view.pending, *view.failed, *view.unsubscribing)
    return {(i.channel, i.symbol): i.status for i in infos}


# --------------------------------------------------------------------------- Calls


BTC, ETH, XRP = ("trade", "BTC/USD"), ("trade", "ETH/USD"), ("trade", "XRP/USD")


def test_a_call_settles_with_its_last_answer_in_the_calls_order() -> None:
    calls = Calls()
    assert calls.open(1, "subscribe", "trade", [BTC, ETH, XRP], 0.0) == []
    assert len(calls) == 1
    eth = Subscribed("trade", "ETH/USD", 1, {}, 0.1)
    btc = SubscriptionFailed("trade", "BTC/USD", "Currency pair not supported", 1, 0.2)
    assert calls.answer(eth, 0.1) is None
    assert calls.answer(btc, 0.2) is None
    xrp = Subscribed("trade", "XRP/USD", 1, {}, 0.3)
    result = calls.answer(xrp, 0.3)
    assert result == SubscriptionResult(1, "subscribe", "trade", (btc, eth, xrp), 0.3)
    assert not result.ok and result.failures == (btc,)
    assert len(calls) == 0
    # Settled: a repeated answer belongs to no call.
    assert calls.answer(xrp, 0.4) is None


def test_answers_of_the_other_method_or_for_no_call_are_ignored() -> None:
    calls = Calls()
    calls.open(1, "subscribe", "trade", [BTC], 0.0)
    calls.open(2, "unsubscribe", "book", [("book", "ETH/USD")], 0.0)
    # A subscribe call is not answered by an Unsubscribed...
    assert calls.answer(Unsubscribed("trade", "BTC/USD", 9, 0.1), 0.1) is None
    # ...nor an unsubscribe call by a late subscribe ack or refusal (only subscribes fail).
    assert calls.answer(Subscribed("book", "ETH/USD", 7, {}, 0.1), 0.1) is None
    late = SubscriptionFailed("book", "ETH/USD", "no acknowledgement within 10 s", 7, 0.1)
    assert calls.answer(late, 0.1) is None
    # Keys no call awaits: another symbol, another channel, a refusal naming no channel.
    assert calls.answer(Subscribed("trade", "XRP/USD", 1, {}, 0.1), 0.1) is None
    assert calls.answer(Subscribed("ticker", "BTC/USD", 1, {}, 0.1), 0.1) is None
    assert calls.answer(SubscriptionFailed("", "BTC/USD", "x", None, 0.1), 0.1) is None
    assert len(calls) == 2
    done = Unsubscribed("book", "ETH/USD", 2, 0.2)
    assert calls.answer(done, 0.2) == SubscriptionResult(2, "unsubscribe", "book", (done,), 0.2)
    ok = Subscribed("trade", "BTC/USD", 1, {}, 0.3)
    result = calls.answer(ok, 0.3)
    assert result == SubscriptionResult(1, "subscribe", "trade", (ok,), 0.3) and result.ok
    assert result.failures == ()


def test_a_later_call_supersedes_an_earlier_one_for_its_symbols() -> None:
    calls = Calls()
    calls.open(1, "subscribe", "trade", [BTC, ETH], 0.0)
    calls.open(2, "subscribe", "trade", [XRP], 0.0)
    # Call 1 still awaits ETH/USD: superseding BTC/USD does not settle it yet.
    assert calls.open(3, "unsubscribe", "trade", [BTC], 0.5) == []
    superseded = SubscriptionFailed(
        "trade", "BTC/USD", "superseded by unsubscribe (req_id 3) before Kraken answered", None, 0.5
    )
    # Call 2's only symbol is superseded: it settles now, returned by open().
    (two,) = calls.open(4, "unsubscribe", "trade", [XRP], 0.6)
    assert two.req_id == 2 and two.received_at == 0.6
    assert [(f.symbol, f.error) for f in two.failures] == [
        ("XRP/USD", "superseded by unsubscribe (req_id 4) before Kraken answered")
    ]
    # BTC/USD now belongs to call 3: its answer goes there, not to call 1.
    gone = Unsubscribed("trade", "BTC/USD", 3, 0.7)
    assert calls.answer(gone, 0.7) == SubscriptionResult(3, "unsubscribe", "trade", (gone,), 0.7)
    eth = Subscribed("trade", "ETH/USD", 1, {}, 0.8)
    one = calls.answer(eth, 0.8)
    assert one == SubscriptionResult(1, "subscribe", "trade", (superseded, eth), 0.8)
    assert len(calls) == 1  # call 4


def test_settle_all_fails_every_unanswered_symbol_with_the_reason() -> None:
    calls = Calls()
    calls.open(1, "subscribe", "trade", [BTC, ETH], 0.0)
    calls.open(2, "unsubscribe", "book", [("book", "XRP/USD")], 0.0)
    btc = Subscribed("trade", "BTC/USD", 1, {}, 0.1)
    calls.answer(btc, 0.1)
    one, two = calls.settle_all("closed by the client", 1.0)
    assert one == SubscriptionResult(
        1,
        "subscribe",
        "trade",
        (btc, SubscriptionFailed("trade", "ETH/USD", "closed by the client", None, 1.0)),
        1.0,
    )
    assert two == SubscriptionResult(
        2,
        "unsubscribe",
        "book",
        (SubscriptionFailed("book", "XRP/USD", "closed by the client", None, 1.0),),
        1.0,
    )
    assert len(calls) == 0
    assert calls.settle_all("again", 2.0) == []
    assert calls.answer(Subscribed("trade", "ETH/USD", 1, {}, 2.0), 2.0) is None


# --------------------------------------------------------------------------- protocol


def test_mixed_acks_and_refusals_settle_after_the_last_symbol() -> None:
    proto = open_proto()
    call, actions = proto.subscribe("ticker", ["BTC/USD", "XBT/USD", "ETH/USD"], 0.0)
    assert sent(actions)[0]["req_id"] == call and proto.pending_calls == 1
    eth = proto.receive_data(ack("ticker", "ETH/USD", call), 0.1)
    xbt = proto.receive_data(error("Currency pair not supported XBT/USD", call, "XBT/USD"), 0.2)
    assert events(eth + xbt, SubscriptionResult) == []
    btc = proto.receive_data(ack("ticker", "BTC/USD", call), 0.3)
    answers = {
        e.symbol: e
        for e in emitted(eth + xbt + btc)
        if isinstance(e, Subscribed | SubscriptionFailed)
    }
    result = SubscriptionResult(
        call,
        "subscribe",
        "ticker",
        (answers["BTC/USD"], answers["XBT/USD"], answers["ETH/USD"]),
        0.3,
    )
    # Right after the answer it completes, and only once.
    assert emitted(btc)[:2] == [answers["BTC/USD"], result]
    assert not result.ok
    assert result.failures == (
        SubscriptionFailed("ticker", "XBT/USD", "Currency pair not supported XBT/USD", call, 0.2),
    )
    assert proto.pending_calls == 0


def test_an_ack_timeout_settles_the_symbols_left() -> None:
    proto = open_proto(cfg(ack_timeout=3.0))
    call, _ = proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    (btc,) = events(proto.receive_data(ack("trade", "BTC/USD", call), 0.5), Subscribed)
    assert proto.handle_timer(2.9) == []
    actions = proto.handle_timer(3.0)
    timed_out = SubscriptionFailed("trade", "ETH/USD", "no acknowledgement within 3 s", call, 3.0)
    assert emitted(actions)[:2] == [
        timed_out,
        SubscriptionResult(call, "subscribe", "trade", (btc, timed_out), 3.0),
    ]
    # An unsubscribe call that is not answered ends the same way, as done.
    stop, _ = proto.unsubscribe("trade", ["BTC/USD"], 4.0)
    actions = proto.handle_timer(7.0)
    gone = Unsubscribed("trade", "BTC/USD", stop, 7.0)
    assert emitted(actions) == [
        gone,
        SubscriptionResult(stop, "unsubscribe", "trade", (gone,), 7.0),
    ]


def test_a_call_made_before_connect_settles_once_connected_and_acked() -> None:
    proto = KrakenProtocol(cfg())
    call, actions = proto.subscribe("book", ["BTC/USD"], 0.0, depth=10)
    assert actions == [] and proto.pending_calls == 1
    proto.connect(0.0)
    (request,) = sent(proto.connection_made(0.1))
    # The request went out with the others on connecting, under a req_id of its own.
    assert request["req_id"] != call
    actions = proto.receive_data(ack("book", "BTC/USD", request["req_id"], depth=10), 0.2)
    (subscribed,) = events(actions, Subscribed)
    assert subscribed.req_id == request["req_id"]
    assert events(actions, SubscriptionResult) == [
        SubscriptionResult(call, "subscribe", "book", (subscribed,), 0.2)
    ]


def test_an_unsubscribe_over_several_depths_gathers_every_request() -> None:
    proto = open_proto()
    for symbol, depth in (("BTC/USD", 10), ("ETH/USD", 25)):
        req_id, _ = proto.subscribe("book", [symbol], 0.0, depth=depth)
        proto.receive_data(ack("book", symbol, req_id, depth=depth), 0.1)
    call, actions = proto.unsubscribe("book", ["ETH/USD", "BTC/USD"], 1.0)
    requests = sent(actions)
    assert [(r["params"]["symbol"], r["req_id"]) for r in requests] == [
        (["ETH/USD"], call),  # the call's own req_id on the first request...
        (["BTC/USD"], call + 1),  # ...the next depth gets one of its own
    ]
    first = proto.receive_data(ack("book", "BTC/USD", call + 1, "unsubscribe", depth=10), 1.1)
    assert events(first, SubscriptionResult) == []
    second = proto.receive_data(ack("book", "ETH/USD", call, "unsubscribe", depth=25), 1.2)
    assert events(second, SubscriptionResult) == [
        SubscriptionResult(
            call,
            "unsubscribe",
            "book",
            (Unsubscribed("book", "ETH/USD", call, 1.2), *events(first, Unsubscribed)),
            1.2,
        )
    ]


def test_an_unsubscribe_while_disconnected_settles_at_once() -> None:
    proto = open_proto()
    req_id, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.receive_data(ack("trade", "BTC/USD", req_id), 0.1)
    proto.connection_lost(1.0)
    assert proto.state is S.DEGRADED
    call, actions = proto.unsubscribe("trade", ["BTC/USD"], 1.5)
    gone = Unsubscribed("trade", "BTC/USD", None, 1.5)
    assert actions == [
        Emit(gone),
        Emit(SubscriptionResult(call, "unsubscribe", "trade", (gone,), 1.5)),
    ]
    assert proto.pending_calls == 0 and proto.subscriptions.pending == ()


def test_close_settles_every_open_call() -> None:
    proto = KrakenProtocol(cfg())
    waiting, _ = proto.subscribe("ticker", ["BTC/USD"], 0.0)  # before connect
    proto.connect(0.0)
    proto.connection_made(0.0)
    sent_call, _ = proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.1)
    (btc,) = events(proto.receive_data(ack("trade", "BTC/USD", sent_call), 0.2), Subscribed)
    assert proto.pending_calls == 2
    actions = proto.close(1.0)
    reason = "closed by the client"
    results = events(actions, SubscriptionResult)
    assert results == [
        SubscriptionResult(
            waiting,
            "subscribe",
            "ticker",
            (SubscriptionFailed("ticker", "BTC/USD", reason, None, 1.0),),
            1.0,
        ),
        SubscriptionResult(
            sent_call,
            "subscribe",
            "trade",
            (btc, SubscriptionFailed("trade", "ETH/USD", reason, None, 1.0)),
            1.0,
        ),
    ]
    # Settled before the state changes to closed.
    assert isinstance(emitted(actions)[-1], StateChanged)
    assert proto.pending_calls == 0
    assert proto.close(1.1) == []


def test_close_while_closed_settles_the_calls_made_since() -> None:
    """A call made while closed waits for connect(); closing again must not leave it open."""
    proto = KrakenProtocol(cfg())
    proto.close(0.0)
    call, actions = proto.subscribe("trade", ["BTC/USD"], 0.5)
    assert actions == [] and proto.pending_calls == 1
    failed = SubscriptionFailed("trade", "BTC/USD", "closed by the client", None, 1.0)
    assert proto.close(1.0) == [
        Emit(SubscriptionResult(call, "subscribe", "trade", (failed,), 1.0))
    ]
    assert proto.state is S.CLOSED and proto.pending_calls == 0
    assert proto.close(1.1) == []
    # The subscription itself is kept for the next connect(), as any made while closed.
    assert [i.symbol for i in proto.subscriptions.pending] == ["BTC/USD"]


def test_giving_up_settles_open_calls_with_the_reason() -> None:
    proto = KrakenProtocol(cfg(reconnect=ReconnectConfig(max_attempts=1, jitter=0.0)))
    call, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    assert events(proto.connection_lost(0.5), SubscriptionResult) == []  # retried: still open
    proto.handle_timer(1.0)
    actions = proto.connection_lost(1.5)
    reason = "connection lost; gave up after 1 reconnect attempts"
    failed = SubscriptionFailed("trade", "BTC/USD", reason, None, 1.5)
    assert events(actions, SubscriptionResult) == [
        SubscriptionResult(call, "subscribe", "trade", (failed,), 1.5)
    ]
    assert events(actions, StateChanged)[-1].reason == reason
    # A terminal failure settles with its own reason at once.
    proto = open_proto()
    call, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    actions = proto.connection_lost(0.5, close_code=1008)
    (result,) = events(actions, SubscriptionResult)
    assert (result.req_id, result.failures[0].error) == (
        call,
        "server closed the connection with code 1008 (policy violation; not retrying)",
    )


def test_an_unsubscribe_supersedes_an_unanswered_subscribe() -> None:
    proto = open_proto()
    first, _ = proto.subscribe("trade", ["BTC/USD", "ETH/USD"], 0.0)
    call, actions = proto.unsubscribe("trade", ["BTC/USD"], 0.1)
    superseded = SubscriptionFailed(
        "trade",
        "BTC/USD",
        f"superseded by unsubscribe (req_id {call}) before Kraken answered",
        None,
        0.1,
    )
    assert events(actions, SubscriptionResult) == []  # ETH/USD is still awaited
    # Kraken answers everything: the late BTC/USD ack is reported but settles nothing more.
    btc = proto.receive_data(ack("trade", "BTC/USD", first), 0.2)
    assert [e.symbol for e in events(btc, Subscribed)] == ["BTC/USD"]
    assert events(btc, SubscriptionResult) == []
    eth = proto.receive_data(ack("trade", "ETH/USD", first), 0.3)
    (eth_ack,) = events(eth, Subscribed)
    assert events(eth, SubscriptionResult) == [
        SubscriptionResult(first, "subscribe", "trade", (superseded, eth_ack), 0.3)
    ]
    gone = proto.receive_data(ack("trade", "BTC/USD", call, "unsubscribe"), 0.4)
    assert events(gone, SubscriptionResult) == [
        SubscriptionResult(call, "unsubscribe", "trade", tuple(events(gone, Unsubscribed)), 0.4)
    ]
    # A subscribe of one symbol is settled by the unsubscribe itself.
    single, _ = proto.subscribe("ticker", ["XRP/USD"], 1.0)
    stop, actions = proto.unsubscribe("ticker", ["XRP/USD"], 1.1)
    (result,) = events(actions, SubscriptionResult)
    assert result.req_id == single and result.failures[0].error == (
        f"superseded by unsubscribe (req_id {stop}) before Kraken answered"
    )


def test_a_late_subscribe_ack_keeps_the_subscription_unsubscribing() -> None:
    """Before, a subscribe ack arriving after the unsubscribe was sent made the record
    ACTIVE again: a reconnect then resubscribed what the user had unsubscribed, and the
    unsubscribe call never settled."""
    proto = open_proto()
    first, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    call, _ = proto.unsubscribe("trade", ["BTC/USD"], 0.1)
    late = proto.receive_data(ack("trade", "BTC/USD", first), 0.2)
    assert [e.req_id for e in events(late, Subscribed)] == [first]
    assert events(late, SubscriptionResult) == []
    assert statuses(proto) == {BTC: SubscriptionStatus.UNSUBSCRIBING}
    # The connection drops before the unsubscribe is answered: it is done, not resumed.
    lost = proto.connection_lost(0.5)
    gone = Unsubscribed("trade", "BTC/USD", None, 0.5)
    assert events(lost, SubscriptionResult) == [
        SubscriptionResult(call, "unsubscribe", "trade", (gone,), 0.5)
    ]
    proto.handle_timer(1.0)
    assert sent(proto.connection_made(1.0)) == []
    assert statuses(proto) == {} and proto.pending_calls == 0


@pytest.mark.parametrize("answer", ["refusal", "timeout"])
def test_a_late_subscribe_failure_keeps_the_subscription_unsubscribing(answer: str) -> None:
    """A subscribe refused or timing out after the unsubscribe was sent: the unsubscribe
    call is answered by the unsubscribe, and a reconnect does not retry the subscription."""
    proto = open_proto(cfg(ack_timeout=2.0))
    first, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    call, _ = proto.unsubscribe("trade", ["BTC/USD"], 0.5)
    if answer == "refusal":
        late = proto.receive_data(error("Currency pair not supported", first, "BTC/USD"), 1.0)
    else:
        late = proto.handle_timer(2.0)  # the subscribe's deadline; the unsubscribe's is 2.5
    (failed,) = events(late, SubscriptionFailed)
    assert failed.req_id == first
    assert events(late, SubscriptionResult) == []
    assert statuses(proto) == {BTC: SubscriptionStatus.UNSUBSCRIBING}
    lost = proto.connection_lost(2.1)
    (result,) = events(lost, SubscriptionResult)
    assert result.req_id == call and result.ok
    assert result.answers == (Unsubscribed("trade", "BTC/USD", None, 2.1),)
    proto.handle_timer(3.0)
    assert sent(proto.connection_made(3.0)) == []


def test_a_late_unsubscribe_ack_leaves_a_newer_subscription_alone() -> None:
    """Kraken answers an unsubscribe after it timed out, once the symbol was subscribed
    again: that answer must not forget the new subscription (whose call would never
    settle: its own ack then finds nothing)."""
    proto = open_proto(cfg(ack_timeout=2.0, stale_timeout=100.0))
    first, _ = proto.subscribe("trade", ["BTC/USD"], 0.0)
    proto.receive_data(ack("trade", "BTC/USD", first), 0.1)
    stop, _ = proto.unsubscribe("trade", ["BTC/USD"], 1.0)
    assert [e.req_id for e in events(proto.handle_timer(3.0), Unsubscribed)] == [stop]
    again, _ = proto.subscribe("trade", ["BTC/USD"], 3.5)
    late = proto.receive_data(ack("trade", "BTC/USD", stop, "unsubscribe"), 4.0)
    assert emitted(late) == []
    assert statuses(proto) == {BTC: SubscriptionStatus.PENDING}
    actions = proto.receive_data(ack("trade", "BTC/USD", again), 4.1)
    (subscribed,) = events(actions, Subscribed)
    assert events(actions, SubscriptionResult) == [
        SubscriptionResult(again, "subscribe", "trade", (subscribed,), 4.1)
    ]
    assert statuses(proto) == {BTC: SubscriptionStatus.ACTIVE}


def test_a_corrupt_book_being_unsubscribed_is_not_resynced() -> None:
    """Before, a checksum mismatch on a book being unsubscribed resynced it: the record
    went back to pending, so a reconnect resubscribed it and the unsubscribe call never
    settled."""
    proto = KrakenProtocol(cfg())
    proto.subscribe("book", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    (request,) = sent(proto.connection_made(0.0))
    proto.receive_data(ack("book", "BTC/USD", request["req_id"], depth=10), 0.1)
    naive = NaiveBook("BTC/USD")
    proto.receive_data(naive.snapshot(), 0.2)
    call, _ = proto.unsubscribe("book", ["BTC/USD"], 1.0)
    bad = naive.frame([("99.5", "1.0")], [], checksum=12345)
    assert proto.receive_data(bad, 1.1) == []  # no resync requests
    book = proto.book("BTC/USD")
    assert book is not None and not book.is_live  # not trusted meanwhile
    assert statuses(proto) == {("book", "BTC/USD"): SubscriptionStatus.UNSUBSCRIBING}
    (result,) = events(proto.connection_lost(1.2), SubscriptionResult)
    assert result.req_id == call and result.ok
    proto.handle_timer(2.0)
    assert sent(proto.connection_made(2.0)) == []


def test_a_book_unsubscribed_while_resyncing_ends_the_resync() -> None:
    proto = KrakenProtocol(cfg())
    proto.subscribe("book", ["BTC/USD"], 0.0)
    proto.connect(0.0)
    (request,) = sent(proto.connection_made(0.0))
    proto.receive_data(ack("book", "BTC/USD", request["req_id"], depth=10), 0.1)
    naive = NaiveBook("BTC/USD")
    proto.receive_data(naive.snapshot(), 0.2)
    bad = naive.frame([("99.5", "1.0")], [], checksum=12345)
    assert len(sent(proto.receive_data(bad, 1.0))) == 2  # the resync's unsubscribe, subscribe
    assert proto.state is S.RESYNCING
    proto.unsubscribe("book", ["BTC/USD"], 1.1)
    # The resync's snapshot is corrupt too: the book is going away, so that is the end.
    corrupt = NaiveBook("BTC/USD").frame([("1.0", "1")], [], snapshot=True, checksum=7)
    actions = proto.receive_data(corrupt, 1.2)
    assert sent(actions) == []
    assert states(actions) == [("resyncing", "subscribed")]


# --------------------------------------------------------------------------- connection facts


def private_proto(**overrides: Any) -> KrakenProtocol:
    return KrakenProtocol(
        cfg(api_key="KEY123", api_secret="c2VjcmV0c2VjcmV0", **overrides), private=True
    )


def test_a_token_for_a_connection_that_is_gone_is_dropped() -> None:
    proto = private_proto()
    proto.subscribe("executions", None, 0.0)
    proto.connect(0.0)
    (fetch,) = [a for a in proto.connection_made(0.0) if isinstance(a, FetchToken)]
    assert fetch.connection == 1
    proto.connection_lost(0.5)
    # The fetch outlived its connection: its answers are dropped, whatever the state.
    assert proto.token_received("OLD", 0.6, connection=fetch.connection) == []
    assert proto.token_failed("late", 0.6, terminal=True, connection=fetch.connection) == []
    assert state(proto) is S.DEGRADED
    proto.handle_timer(proto.next_deadline())  # type: ignore[arg-type]
    (current,) = [a for a in proto.connection_made(0.7) if isinstance(a, FetchToken)]
    assert current.connection == 2
    assert proto.token_received("OLD", 0.8, connection=fetch.connection) == []
    assert proto.token_failed("late", 0.8, terminal=True, connection=1) == []
    assert state(proto) is S.AUTHENTICATING
    actions = proto.token_received("NEW", 0.9, connection=current.connection)
    assert states(actions) == [("authenticating", "subscribing")]
    assert sent(actions)[0]["params"]["token"] == "NEW"
    # Answered once: a second answer for this connection is dropped too.
    assert proto.token_received("AGAIN", 1.0, connection=current.connection) == []
    # Without connection= a misplaced answer is still the caller's error.
    with pytest.raises(LocalProtocolError, match="only valid after FetchToken"):
        proto.token_received("AGAIN", 1.0)


def test_a_token_failure_for_the_current_connection_is_acted_on() -> None:
    proto = private_proto()
    proto.connect(0.0)
    (fetch,) = [a for a in proto.connection_made(0.0) if isinstance(a, FetchToken)]
    actions = proto.token_failed(
        "EAPI:Invalid key", 0.5, terminal=True, connection=fetch.connection
    )
    assert states(actions) == [("authenticating", "closed")]
    assert proto.last_failure == (
        "could not get a WebSocket token: EAPI:Invalid key (not retrying)"
    )


def test_last_failure_and_failed_attempts() -> None:
    proto = KrakenProtocol(cfg(timeout=5.0))
    assert failure(proto) == (None, 0)
    proto.connect(0.0)
    proto.connection_lost(0.5, ConnectionRefusedError("refused"))
    assert proto.last_failure == "connection lost: ConnectionRefusedError: refused"
    assert proto.failed_attempts == 1
    proto.handle_timer(proto.next_deadline())  # type: ignore[arg-type]
    proto.handle_timer(10.0)  # no connection within the timeout
    assert failure(proto) == ("no connection within 5 s", 2)
    # connect() while degraded is no fresh start: the count goes on.
    proto.connect(10.1)
    proto.connection_lost(10.2)
    assert failure(proto) == ("connection lost", 3)
    # Open, but not subscribed yet: still failing.
    proto.subscribe("trade", ["BTC/USD"], 10.3)
    proto.handle_timer(proto.next_deadline())  # type: ignore[arg-type]
    (request,) = sent(proto.connection_made(11.0))
    assert proto.failed_attempts == 3
    # Every subscription answered: it works again.
    proto.receive_data(ack("trade", "BTC/USD", request["req_id"]), 11.1)
    assert state(proto) is S.SUBSCRIBED
    assert failure(proto) == (None, 0)
    proto.connection_lost(12.0, close_code=1008)
    assert proto.last_failure == (
        "server closed the connection with code 1008 (policy violation; not retrying)"
    )
    assert (state(proto), proto.failed_attempts) == (S.CLOSED, 1)
    proto.close(12.5)  # already closed: nothing changes
    assert proto.failed_attempts == 1
    # connect() after a close starts over.
    proto.connect(13.0)
    assert failure(proto) == (None, 0)


def test_can_submit_only_on_an_open_authenticated_private_connection() -> None:
    assert not open_proto().can_submit  # public
    proto = private_proto()
    assert not proto.can_submit
    proto.connect(0.0)
    assert not proto.can_submit
    proto.connection_made(0.0)
    assert state(proto) is S.AUTHENTICATING and not proto.can_submit  # no token yet
    proto.token_received("TOKEN", 0.1)
    assert state(proto) is S.SUBSCRIBED and proto.can_submit
    proto.subscribe("executions", None, 0.2)
    assert state(proto) is S.SUBSCRIBED and proto.can_submit
    proto.connection_lost(0.3)
    assert not proto.can_submit
    level3 = KrakenProtocol(cfg(api_key="KEY123", api_secret="c2VjcmV0c2VjcmV0"), level3=True)
    level3.connect(0.0)
    level3.connection_made(0.0)
    level3.token_received("TOKEN", 0.1)
    assert level3.state is S.SUBSCRIBED and not level3.can_submit  # not the trading host


# --------------------------------------------------------------------------- settle once

CHANNELS = ("trade", "ticker", "book", "instrument")
SYMBOLS = ("BTC/USD", "ETH/USD", "XRP/USD")
ACK_TIMEOUT = 2.0
Key = tuple[str, str | None]


@dataclass
class _Call:
    method: str
    channel: str
    keys: tuple[Key, ...]


@dataclass
class _Request:
    """A subscribe or unsubscribe request on the wire, with the symbols not answered yet."""

    req_id: int
    method: str
    channel: str
    symbols: list[str | None]


@dataclass
class _Run:
    """Drives one protocol and checks every ``SubscriptionResult`` as it is emitted."""

    proto: KrakenProtocol
    now: float = 0.0
    calls: dict[int, _Call] = field(default_factory=dict)
    settled: dict[int, SubscriptionResult] = field(default_factory=dict)
    seen: list[Event] = field(default_factory=list)
    outstanding: list[_Request] = field(default_factory=list)

    def take(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                request = json.loads(action.text)
                params = request["params"]
                self.outstanding.append(
                    _Request(
                        request["req_id"],
                        request["method"],
                        params["channel"],
                        list(params.get("symbol", [None])),
                    )
                )
            elif isinstance(action, Emit):
                if isinstance(action.event, SubscriptionResult):
                    self.check(action.event)
                self.seen.append(action.event)
        if self.proto.state not in (S.SUBSCRIBING, S.SUBSCRIBED, S.RESYNCING):
            self.outstanding.clear()  # that connection is gone: nothing on it is answered
        assert self.proto.pending_calls == len(self.calls) - len(self.settled)

    def check(self, result: SubscriptionResult) -> None:
        call = self.calls.get(result.req_id)
        assert call is not None, f"result for req_id {result.req_id}, never returned"
        assert result.req_id not in self.settled, f"req_id {result.req_id} settled twice"
        self.settled[result.req_id] = result
        assert (result.method, result.channel) == (call.method, call.channel)
        assert [(a.channel, a.symbol) for a in result.answers] == list(call.keys)
        allowed = Subscribed if call.method == "subscribe" else Unsubscribed
        for answer in result.answers:
            assert isinstance(answer, allowed | SubscriptionFailed), (call, result)
            if call.method == "unsubscribe":
                assert isinstance(answer, Unsubscribed), (call, result)
            # Kraken's (or the timeout's) answer was emitted before; a failure made for the
            # result alone (closed, gave up, superseded) has no req_id and was not.
            if answer not in self.seen:
                assert isinstance(answer, SubscriptionFailed) and answer.req_id is None
        assert result.received_at == self.now

    def keys(self, *statuses: SubscriptionStatus) -> set[Key]:
        view = self.proto.subscriptions
        infos = (*view.pending, *view.active, *view.failed, *view.unsubscribing)
        return {(i.channel, i.symbol) for i in infos if i.status in statuses}

    def call(self, method: str, channel: str, symbols: list[str] | None) -> None:
        keys: list[Key] = [(channel, None)]
        if symbols is not None:
            keys = list(dict.fromkeys([(channel, s) for s in symbols]))  # once, in call order
        if method == "subscribe":
            taken = self.keys(
                SubscriptionStatus.PENDING,
                SubscriptionStatus.ACTIVE,
                SubscriptionStatus.UNSUBSCRIBING,
            )
            valid = not taken.intersection(keys)
        else:
            valid = set(keys) <= self.keys(
                SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE, SubscriptionStatus.FAILED
            )
        do = self.proto.subscribe if method == "subscribe" else self.proto.unsubscribe
        if not valid:
            with pytest.raises(LocalProtocolError):
                do(channel, symbols, self.now)
            assert self.proto.pending_calls == len(self.calls) - len(self.settled)
            return
        req_id, actions = do(channel, symbols, self.now)
        assert req_id not in self.calls
        self.calls[req_id] = _Call(method, channel, tuple(keys))
        self.take(actions)

    def answer(self, index: int, kind: str, which: int) -> None:
        request = self.outstanding[index]
        symbol = request.symbols[which]
        if kind == "whole":  # a refusal naming no symbol answers them all
            del self.outstanding[index]
            frame = error("Subscription name invalid", request.req_id, method=request.method)
        else:
            del request.symbols[which]
            if not request.symbols:
                del self.outstanding[index]
            if kind == "drop":  # never answered
                return
            if kind == "ack":
                extra = {"depth": 10} if request.channel == "book" else {}
                frame = ack(request.channel, symbol, request.req_id, request.method, **extra)
            elif request.method == "unsubscribe":  # Kraken's odd answer to an unsubscribe
                frame = error("Subscription Not Found", request.req_id, symbol)
            else:  # as Kraken's own examples, maybe without the req_id
                req_id = None if kind == "anonymous" else request.req_id
                frame = error(f"Currency pair not supported {symbol}", req_id, symbol)
        self.take(self.proto.receive_data(frame, self.now))

    def step(self, data: st.DataObject) -> None:
        proto = self.proto
        state = proto.state
        op = data.draw(
            st.sampled_from(
                [
                    *("subscribe", "subscribe", "unsubscribe"),
                    *("answer", "answer", "answer"),
                    *("connect", "connection_made", "timer", "timer", "lost", "close", "book"),
                ]
            )
        )
        if op in ("subscribe", "unsubscribe"):
            channel = data.draw(st.sampled_from(CHANNELS))
            symbols = None
            if channel != "instrument":
                symbols = data.draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3))
            self.call(op, channel, symbols)
        elif op == "connect" and state in (S.DISCONNECTED, S.CLOSED, S.DEGRADED):
            self.take(proto.connect(self.now))
        elif op == "connection_made" and state is S.CONNECTING:
            self.take(proto.connection_made(self.now))
        elif op == "answer" and self.outstanding:
            index = data.draw(st.integers(0, len(self.outstanding) - 1))
            kind = data.draw(
                st.sampled_from(["ack", "ack", "ack", "refuse", "anonymous", "whole", "drop"])
            )
            which = data.draw(st.integers(0, len(self.outstanding[index].symbols) - 1))
            self.answer(index, kind, which)
        elif op == "timer":
            self.now += data.draw(st.sampled_from([0.0, 0.5, 1.0, ACK_TIMEOUT, 5.0]))
            self.take(proto.handle_timer(self.now))
        elif op == "book" and state in (S.SUBSCRIBING, S.SUBSCRIBED, S.RESYNCING):
            # A book snapshot, good or corrupt (a corrupt one resyncs or fails the book).
            book = NaiveBook(data.draw(st.sampled_from(SYMBOLS)))
            if data.draw(st.booleans()):
                frame = book.snapshot()
            else:
                frame = book.frame([("1.0", "1")], [], snapshot=True, checksum=7)
            self.take(proto.receive_data(frame, self.now))
        elif op == "lost" and state is not S.DISCONNECTED:
            self.take(proto.connection_lost(self.now))
        elif op == "close":
            self.take(proto.close(self.now))

    def quiesce(self) -> None:
        """Connect, let Kraken answer every request and run the timers: no call stays open."""
        proto = self.proto
        for _ in range(200):
            state = proto.state
            if state in (S.DISCONNECTED, S.CLOSED):
                self.take(proto.connect(self.now))
            elif state is S.CONNECTING:
                self.take(proto.connection_made(self.now))
            elif self.outstanding:
                self.answer(0, "ack", 0)
            elif proto.pending_calls == 0:
                return
            else:  # only a timer can end what is left (an ack timeout, a retry)
                deadline = proto.next_deadline()
                assert deadline is not None, "calls open with nothing left to end them"
                self.now = max(self.now, deadline)
                self.take(proto.handle_timer(self.now))
        raise AssertionError("calls still open after 200 steps")


@sized(80, 300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.booleans())
def test_every_call_settles_exactly_once(data: st.DataObject, quiesce: bool) -> None:
    """Whatever happens, each req_id that subscribe/unsubscribe returned gets one result,
    with one answer per symbol in the call's order, right when it happens (``_Run.check``);
    none is ever settled twice nor made up. With ``quiesce`` Kraken then answers everything
    and no call may be left open; the final close() settles whatever still is."""
    config = cfg(
        ack_timeout=ACK_TIMEOUT,
        stale_timeout=8.0,
        reconnect=ReconnectConfig(max_attempts=3, jitter=0.0),
    )
    run = _Run(KrakenProtocol(config))
    for _ in range(data.draw(st.integers(0, 40))):
        run.step(data)
    if quiesce:
        run.quiesce()
    run.now += 1.0
    run.take(run.proto.close(run.now))
    assert run.settled.keys() == run.calls.keys()
    assert run.proto.pending_calls == 0
