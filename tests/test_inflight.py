"""InFlight: matching trading responses to requests, outcomes, pacing and order ages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from kraken_proto.config import ClientConfig
from kraken_proto.events import Execution, OrderOutcome
from kraken_proto.inflight import USERREF_SETTLE, InFlight
from kraken_proto.trading import (
    AddOrder,
    AmendOrder,
    BatchAdd,
    BatchOrder,
    CancelOrder,
    EditOrder,
    EditOrderResult,
)
from kraken_proto.wire import Response


def add(symbol: str = "BTC/USD") -> AddOrder:
    return AddOrder(
        order_type="limit",
        side="buy",
        order_qty=Decimal(1),
        symbol=symbol,
        limit_price=Decimal(100),
    )


def ok(method: str, req_id: int | None, result: Any) -> Response:
    return Response(method, success=True, req_id=req_id, result=result, time_in="a", time_out="b")


def refused(method: str, req_id: int | None, error: str) -> Response:
    return Response(method, success=False, req_id=req_id, error=error)


def sent_flight(request: Any, req_id: int = 1, **config: Any) -> InFlight:
    flight = InFlight(ClientConfig(**config))
    assert flight.submit(req_id, request, 0.0)
    flight.sent(req_id, 0.0)
    return flight


def test_settled_response_carries_times_and_results() -> None:
    flight = sent_flight(add())
    settled = flight.on_response(ok("add_order", 1, {"order_id": "O1"}), 0.5)
    assert settled is not None and settled.outcome is OrderOutcome.OK
    assert (settled.time_in, settled.time_out, settled.received_at) == ("a", "b", 0.5)
    assert len(flight) == 0 and flight.next_deadline() is None


def test_unusable_result_settles_as_unknown() -> None:
    flight = sent_flight(add())
    settled = flight.on_response(ok("add_order", 1, {"no_order_id": 1}), 0.5)
    assert settled is not None and settled.outcome is OrderOutcome.UNKNOWN
    assert "unusable result" in (settled.error or "")
    assert len(flight) == 0


def test_first_refusal_wins_and_partial_answers_settle_at_the_deadline() -> None:
    flight = sent_flight(CancelOrder(order_id=("A", "B", "C")), request_timeout=2.0)
    assert flight.on_response(refused("cancel_order", 1, "EOrder:Invalid order"), 0.1) is None
    assert flight.on_response(refused("cancel_order", 1, "EOrder:Other"), 0.2) is None
    assert flight.expire(1.0) == []
    (settled,) = flight.expire(2.0)
    assert settled.outcome is OrderOutcome.REJECTED and settled.error == "EOrder:Invalid order"


def test_refusal_without_text_still_says_so() -> None:
    flight = sent_flight(add())
    settled = flight.on_response(Response("add_order", success=False, req_id=1), 0.1)
    assert settled is not None and settled.error == "request failed without an error message"


def test_userref_cancel_settles_after_the_settle_window() -> None:
    flight = sent_flight(CancelOrder(order_userref=(5,)))
    assert flight.on_response(ok("cancel_order", 1, {"order_id": "A"}), 1.0) is None
    assert flight.next_deadline() == pytest.approx(1.0 + USERREF_SETTLE)


def test_connection_loss_settles_partly_answered_requests_with_what_came() -> None:
    flight = sent_flight(CancelOrder(order_id=("A", "B")))
    flight.on_response(ok("cancel_order", 1, {"order_id": "A"}), 0.1)
    (settled,) = flight.connection_lost(0.2, "dropped")
    assert settled.outcome is OrderOutcome.OK and len(settled.results) == 1


def test_late_responses_are_reported_on_their_own() -> None:
    flight = InFlight(ClientConfig())
    late = flight.on_response(ok("add_order", 9, {"order_id": "O9"}), 1.0)
    assert late is not None and late.outcome is OrderOutcome.OK and late.req_id == 9
    broken = flight.on_response(ok("add_order", 9, {"nope": 1}), 1.0)
    assert broken is not None and broken.outcome is OrderOutcome.REJECTED
    assert broken.error == "late response with an unusable result"
    refusal = flight.on_response(refused("add_order", 9, "EOrder:Invalid order"), 1.0)
    assert refusal is not None and refusal.outcome is OrderOutcome.REJECTED
    assert flight.on_response(refused("add_order", None, "EGeneral:Invalid arguments"), 1.0) is None


def test_refusal_without_req_id_is_not_guessed_among_several() -> None:
    flight = InFlight(ClientConfig())
    for req_id in (1, 2):
        flight.submit(req_id, add(), 0.0)
        flight.sent(req_id, 0.0)
    assert flight.on_response(refused("add_order", None, "EGeneral:Invalid arguments"), 1.0) is None
    assert len(flight) == 2


def test_sent_for_an_unknown_request_is_ignored() -> None:
    flight = InFlight(ClientConfig())
    flight.sent(42, 0.0)
    assert flight.next_deadline() is None


def test_order_ages_come_from_answers_and_executions() -> None:
    flight = InFlight(ClientConfig())
    flight.submit(1, add(), 0.0)
    flight.on_response(ok("add_order", 1, {"order_id": "O1", "cl_ord_id": "c1"}), 0.0)
    flight.submit(2, AmendOrder(order_id="O1", order_qty=Decimal(2)), 10.0)
    flight.on_response(ok("amend_order", 2, {"amend_id": "AM1", "order_id": "O1"}), 10.0)
    flight.submit(3, EditOrder(order_id="O1", symbol="BTC/USD", order_qty=Decimal(3)), 10.0)
    edited = flight.on_response(
        ok("edit_order", 3, {"order_id": "O2", "original_order_id": "O1"}), 10.0
    )
    assert edited is not None and edited.result == EditOrderResult("O2", "O1")
    orders = (
        BatchOrder(order_type="limit", side="buy", order_qty=Decimal(1), limit_price=Decimal(1)),
    ) * 2
    flight.submit(4, BatchAdd(symbol="ETH/USD", orders=orders), 10.0)
    flight.on_response(
        ok("batch_add", 4, [{"order_id": "E1"}, {"error": "EOrder:Insufficient funds"}]), 10.0
    )
    # An amend of an order whose pair nobody knows notes nothing.
    flight.submit(5, AmendOrder(order_id="X", order_qty=Decimal(2)), 10.0)
    flight.on_response(ok("amend_order", 5, {"amend_id": "AM2", "order_id": "X"}), 10.0)
    counter_before = flight.rate_counter("BTC/USD", 10.0).count
    # The edit replaced O1 by O2: cancelling O1 charges no pair, O2 (new) costs 8.
    flight.submit(6, CancelOrder(order_id=("O1",)), 10.0)
    assert flight.rate_counter("BTC/USD", 10.0).count == pytest.approx(counter_before)
    flight.submit(8, CancelOrder(order_id=("O2",)), 10.0)
    assert flight.rate_counter("BTC/USD", 10.0).count == pytest.approx(counter_before + 8)
    flight.submit(7, CancelOrder(order_id=("E1",)), 10.0)
    assert flight.rate_counter("ETH/USD", 10.0).count == pytest.approx(1 + 8)  # n/2, then 8


def execution(**fields: Any) -> Execution:
    return msgspec.convert(fields, Execution)


def test_executions_note_placed_amended_and_final_orders() -> None:
    flight = InFlight(ClientConfig())
    flight.track_executions(
        [
            execution(exec_type="trade"),  # no order id: nothing to track
            execution(exec_type="pending_new", order_id="A", symbol="BTC/USD"),
            execution(exec_type="new", order_id="A"),  # sparse: no symbol, already known
            execution(exec_type="amended", order_id="A"),
            execution(exec_type="amended", order_id="UNKNOWN"),
            execution(exec_type="restated", order_id="B", symbol="ETH/USD"),
        ],
        0.0,
    )
    flight.submit(1, CancelOrder(order_id=("A", "B")), 0.0)
    assert flight.rate_counter("BTC/USD", 0.0).count == pytest.approx(8)
    assert flight.rate_counter("ETH/USD", 0.0).count == pytest.approx(8)
    flight.track_executions(
        [execution(exec_type="canceled", order_id="A", order_status="canceled")], 0.0
    )
    flight.submit(2, CancelOrder(order_id=("A",)), 0.0)
    assert flight.rate_counter("BTC/USD", 0.0).count == pytest.approx(8)  # A is forgotten


def test_a_request_ready_at_once_has_no_deadline_until_it_leaves() -> None:
    """Held only by the outbox's message budget, it must not show as due (the timer would
    spin); its response timeout starts when it leaves, later than that moment."""
    flight = InFlight(ClientConfig(request_timeout=1e-12))
    assert flight.submit(1, add(), 5.0)
    assert flight.next_deadline() is None
    assert flight.take_due(1e9) == []  # never released a second time
    flight.sent(1, 2.0**40)
    deadline = flight.next_deadline()
    assert deadline is not None and deadline > 2.0**40
