"""kraken_transports.base: the helpers every driver shares (redaction, results, builders)."""

from __future__ import annotations

import pytest

from kraken_proto.errors import InvalidRequestError, UnknownOutcomeError
from kraken_proto.trading import (
    AddOrderResult,
    CancelAllResult,
    CancelOrderResult,
    OrderOutcome,
    OrderResponse,
)
from kraken_transports.base import (
    build_batch_add,
    build_cancel_order,
    cancel_results,
    expect_result,
    redact_frame,
)


def test_redact_frame_hides_the_token_in_text_and_bytes() -> None:
    text = '{"method":"add_order","params":{"token":"s3cr3t","symbol":"BTC/USD"}}'
    assert redact_frame(text) == text.replace("s3cr3t", "***")
    assert redact_frame(text.encode()) == text.replace("s3cr3t", "***").encode()
    plain = b'{"channel":"heartbeat"}'
    assert redact_frame(plain) is plain


def test_expect_result_and_cancel_results() -> None:
    ok = OrderResponse("add_order", 7, OrderOutcome.OK, results=(AddOrderResult("OABC"),))
    assert expect_result(ok, AddOrderResult) == AddOrderResult("OABC")
    with pytest.raises(UnknownOutcomeError) as info:
        expect_result(ok, CancelAllResult)
    assert info.value.req_id == 7 and "no CancelAllResult" in str(info.value)
    cancels = OrderResponse(
        "cancel_order",
        8,
        OrderOutcome.OK,
        results=(CancelOrderResult(order_id="O1"), CancelOrderResult(order_id="O2")),
    )
    assert [r.order_id for r in cancel_results(cancels)] == ["O1", "O2"]


def test_builders_accept_one_id_or_many() -> None:
    one = build_cancel_order("O1", None, None)
    assert (one.order_id, one.cl_ord_id, one.order_userref) == (("O1",), (), ())
    many = build_cancel_order(["O1", "O2"], ("c-1",), 5)
    assert (many.order_id, many.cl_ord_id, many.order_userref) == (("O1", "O2"), ("c-1",), (5,))
    with pytest.raises(InvalidRequestError) as info:
        build_cancel_order(None, None, None)
    assert info.value.field == "order_id"
    batch = build_batch_add(
        "BTC/USD",
        [{"order_type": "market", "side": "buy", "order_qty": "1"}] * 2,
        {"validate": True},
    )
    assert batch.validate is True and len(batch.orders) == 2
    with pytest.raises(InvalidRequestError) as info:
        limit = {"order_type": "limit", "side": "buy", "order_qty": "1"}
        build_batch_add("BTC/USD", [limit, limit], {})
    assert info.value.field == "orders[0].limit_price"
