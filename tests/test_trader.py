"""The trading part (kraken_proto.trader) through KrakenProtocol: requests, responses,
pacing by the rate counter, the dead man's switch."""

from __future__ import annotations

from decimal import Decimal

import pytest
from protocols import (
    TOKEN,
    authenticated,
    events,
    executions_frame,
    order,
    private_cfg,
    response,
    sent,
    subscribe_executions,
)

from kraken_proto import CloseConnection, KrakenProtocol, LocalProtocolError, Send
from kraken_proto.errors import OrderError, TradingRateLimitError, UnknownOutcomeError
from kraken_proto.events import OrderOutcome, OrderResponse
from kraken_proto.trading import AddOrderResult, CancelAll, CancelOrder, CancelOrderResult


def test_add_order_is_sent_with_the_token_and_matched_by_req_id() -> None:
    proto = authenticated()
    req_id, actions = proto.submit(order(cl_ord_id="my-order-1"), 0.5)
    (request,) = sent(actions)
    assert request["method"] == "add_order" and request["req_id"] == req_id
    assert request["params"]["token"] == TOKEN
    assert request["params"]["limit_price"] == 60000.0  # a JSON number, not a string
    assert '"limit_price":60000.0' in next(a.text for a in actions if isinstance(a, Send))
    assert proto.pending_requests == 1
    answer = response("add_order", req_id, {"order_id": "OABC-1", "cl_ord_id": "my-order-1"})
    (settled,) = events(proto.receive_data(answer, 0.6), OrderResponse)
    assert settled.outcome is OrderOutcome.OK
    assert settled.result == AddOrderResult(order_id="OABC-1", cl_ord_id="my-order-1")
    settled.raise_for_outcome()
    assert proto.pending_requests == 0


def test_refusal_carries_krakens_error() -> None:
    proto = authenticated()
    req_id, _ = proto.submit(order(), 0.5)
    answer = response("add_order", req_id, err="EOrder:Insufficient funds")
    (settled,) = events(proto.receive_data(answer, 0.6), OrderResponse)
    assert settled.outcome is OrderOutcome.REJECTED
    with pytest.raises(OrderError, match="EOrder:Insufficient funds") as caught:
        settled.raise_for_outcome()
    assert caught.value.req_id == req_id


def test_cancel_order_settles_after_one_response_per_order() -> None:
    proto = authenticated()
    req_id, _ = proto.submit(CancelOrder(order_id=("O1", "O2")), 0.5)
    first = proto.receive_data(response("cancel_order", req_id, {"order_id": "O1"}), 0.6)
    assert not events(first, OrderResponse)
    second = proto.receive_data(response("cancel_order", req_id, {"order_id": "O2"}), 0.7)
    (settled,) = events(second, OrderResponse)
    assert settled.results == (CancelOrderResult(order_id="O1"), CancelOrderResult(order_id="O2"))


def test_cancel_by_userref_settles_shortly_after_the_first_answer() -> None:
    proto = authenticated()
    req_id, _ = proto.submit(CancelOrder(order_userref=(7,)), 0.5)
    proto.receive_data(response("cancel_order", req_id, {"order_id": "O1"}), 0.6)
    proto.receive_data(response("cancel_order", req_id, {"order_id": "O2"}), 0.7)
    deadline = proto.next_deadline()
    assert deadline == pytest.approx(0.85)
    (settled,) = events(proto.handle_timer(0.85), OrderResponse)
    assert [r.order_id for r in settled.results] == ["O1", "O2"]  # type: ignore[union-attr]


def test_no_answer_in_time_is_an_unknown_outcome_never_retried() -> None:
    proto = authenticated(private_cfg(request_timeout=2.0))
    req_id, _ = proto.submit(order(), 0.5)
    assert proto.next_deadline() == 2.5
    actions = proto.handle_timer(2.5)
    (settled,) = events(actions, OrderResponse)
    assert settled.outcome is OrderOutcome.UNKNOWN and not sent(actions)
    with pytest.raises(UnknownOutcomeError, match="reconcile"):
        settled.raise_for_outcome()
    # The late answer is still reported, so the caller can reconcile.
    late = proto.receive_data(response("add_order", req_id, {"order_id": "OLATE"}), 3.0)
    (again,) = events(late, OrderResponse)
    assert again.outcome is OrderOutcome.OK and again.req_id == req_id


def test_connection_loss_settles_sent_requests_as_unknown() -> None:
    proto = authenticated()
    proto.submit(order(), 0.5)
    actions = proto.connection_lost(0.6, close_code=1006)
    (settled,) = events(actions, OrderResponse)
    assert settled.outcome is OrderOutcome.UNKNOWN and "connection lost" in (settled.error or "")


def test_trading_is_refused_while_not_connected_or_on_the_wrong_host() -> None:
    proto = KrakenProtocol(private_cfg(), private=True)
    with pytest.raises(LocalProtocolError, match="never queued across connections"):
        proto.submit(order(), 0.0)
    with pytest.raises(LocalProtocolError, match="private connection"):
        KrakenProtocol(private_cfg()).submit(order(), 0.0)
    with pytest.raises(LocalProtocolError, match="trading request"):
        authenticated().submit("add_order", 0.0)  # type: ignore[arg-type]


def test_rate_counter_paces_then_refuses() -> None:
    proto = authenticated(
        private_cfg(max_pacing_delay=3.0, max_requests_per_second=1000.0, request_burst=1000)
    )
    for i in range(60):  # starter tier: threshold 60, decay 1/s, add costs 1
        _, actions = proto.submit(order(), 0.0)
        assert len(sent(actions)) == 1, i
    assert proto.rate_counter("BTC/USD", 0.0).count == pytest.approx(60)
    req_id, actions = proto.submit(order(), 0.0)
    assert not sent(actions)  # paced: goes when the counter has decayed by 1
    assert proto.next_deadline() == pytest.approx(1.0)
    released = sent(proto.handle_timer(1.0))
    assert [r["req_id"] for r in released] == [req_id]
    with pytest.raises(TradingRateLimitError) as caught:
        for _ in range(10):
            proto.submit(order(), 1.0)
    assert caught.value.symbol == "BTC/USD" and caught.value.wait > 3.0


def test_paced_request_not_sent_before_a_drop_is_reported_not_sent() -> None:
    proto = authenticated(private_cfg(max_pacing_delay=100.0))
    for _ in range(61):
        proto.submit(order(), 0.0)
    actions = proto.connection_lost(0.5)
    outcomes = [r.outcome for r in events(actions, OrderResponse)]
    # 10 left at once (the message-rate burst); the rest waited for the bucket or the
    # rate counter and never left.
    assert outcomes.count(OrderOutcome.UNKNOWN) == 10
    assert outcomes.count(OrderOutcome.NOT_SENT) == 51
    assert all(
        "connection closed first" in (r.error or "")
        for r in events(actions, OrderResponse)
        if r.outcome is OrderOutcome.NOT_SENT
    )


def test_dead_man_switch_is_refreshed_disarmed_on_close_and_rearmed_after_reconnect() -> None:
    proto = authenticated()
    (armed,) = sent(proto.arm_dead_man_switch(60, 0.0))
    assert armed["method"] == "cancel_all_orders_after"
    assert armed["params"] == {"timeout": 60, "token": TOKEN}
    assert proto.dead_man_switch == (60, 20.0)
    proto.receive_data(
        response(
            "cancel_all_orders_after",
            armed["req_id"],
            {"currentTime": "2026-08-01T02:53:53Z", "triggerTime": "2026-08-01T02:54:53Z"},
        ),
        0.1,
    )
    assert proto.next_deadline() == 20.0
    (again,) = sent(proto.handle_timer(20.0))
    assert again["params"]["timeout"] == 60
    # After a drop, the next connection re-arms as soon as it has a token.
    proto.connection_lost(21.0)
    retry_at = proto.next_deadline()
    assert retry_at is not None
    proto.handle_timer(retry_at)
    proto.connection_made(retry_at)
    rearmed = sent(proto.token_received("TOKEN-2", retry_at))
    assert rearmed[-1]["method"] == "cancel_all_orders_after"
    assert rearmed[-1]["params"]["token"] == "TOKEN-2"
    # A clean close disarms it first.
    closing = proto.close(retry_at + 1)
    (disarm,) = sent(closing)
    assert disarm["params"]["timeout"] == 0
    assert isinstance(
        closing[[isinstance(a, Send) for a in closing].index(True) + 1], CloseConnection
    )
    assert proto.dead_man_switch is None


def test_dead_man_switch_arguments_are_checked() -> None:
    proto = authenticated()
    with pytest.raises(LocalProtocolError, match="timeout"):
        proto.arm_dead_man_switch(0, 0.0)
    with pytest.raises(LocalProtocolError, match="interval"):
        proto.arm_dead_man_switch(60, 0.0, interval=60)
    with pytest.raises(LocalProtocolError, match="private connection"):
        KrakenProtocol(private_cfg()).arm_dead_man_switch(60, 0.0)
    assert proto.disarm_dead_man_switch(0.0) == []
    proto.arm_dead_man_switch(30, 0.0, interval=5)
    (disarm,) = sent(proto.disarm_dead_man_switch(1.0))
    assert disarm["params"]["timeout"] == 0


def test_fills_on_executions_age_orders_for_cancel_costs() -> None:
    proto = authenticated()
    subscribe_executions(proto)
    placed = executions_frame(
        1,
        {
            "exec_type": "pending_new",
            "order_id": "O1",
            "symbol": "BTC/USD",
            "order_status": "pending_new",
        },
        snapshot=True,
    )
    proto.receive_data(placed, 0.0)
    before = proto.rate_counter("BTC/USD", 0.0).count
    proto.submit(CancelOrder(order_id=("O1",)), 0.0)  # a cancel within 5 s costs 8
    assert proto.rate_counter("BTC/USD", 0.0).count == pytest.approx(before + 8)
    proto.submit(CancelAll(), 0.0)  # account-wide: no pair charged
    assert proto.rate_counter("BTC/USD", 0.0).count == pytest.approx(before + 8)


def test_unsubscribed_error_on_trading_response_without_req_id_is_matched() -> None:
    proto = authenticated()
    req_id, _ = proto.submit(order(), 0.0)
    (settled,) = events(
        proto.receive_data(response("add_order", None, err="EGeneral:Invalid arguments"), 0.1),
        OrderResponse,
    )
    assert settled.req_id == req_id and settled.outcome is OrderOutcome.REJECTED


def test_dead_man_switch_armed_while_disconnected_waits_for_the_token() -> None:
    proto = KrakenProtocol(private_cfg(), private=True)
    assert proto.arm_dead_man_switch(60, 0.0) == []
    proto.connect(0.0)
    proto.connection_made(0.0)
    (armed,) = sent(proto.token_received(TOKEN, 0.1))
    assert armed["params"]["timeout"] == 60
    proto.connection_lost(0.2)
    assert proto.disarm_dead_man_switch(0.3) == []  # nothing to send while down
    proto.arm_dead_man_switch(60, 0.3)
    closing = proto.close(0.4)  # degraded: no socket to disarm it on
    assert not sent(closing) and proto.dead_man_switch is None


def test_send_rich_repr_hides_the_token() -> None:
    send = Send('{"params":{"token":"SECRET-TOKEN"}}')
    assert send.__rich_repr__() == [("text", '{"params":{"token":"***"}}')]


def test_validated_order_with_empty_id_notes_nothing() -> None:
    proto = authenticated()
    req_id, _ = proto.submit(order(validate=True), 0.0)
    answer = response("add_order", req_id, {"order_id": ""})
    (settled,) = events(proto.receive_data(answer, 0.1), OrderResponse)
    assert settled.outcome is OrderOutcome.OK


def test_order_numbers_leave_as_plain_json_numbers() -> None:
    proto = authenticated()
    _, actions = proto.submit(
        order(order_qty=Decimal("0.00000001"), limit_price=Decimal("1E+3")), 0.0
    )
    text = next(a.text for a in actions if isinstance(a, Send))
    assert '"order_qty":0.00000001' in text and '"limit_price":1000' in text
