"""kraken_transports.base: the helpers every driver shares (redaction, results, builders,
states, symbols, deadlines, naming failures)."""

from __future__ import annotations

import socket
import ssl

import pytest

from kraken_proto.errors import InvalidRequestError, LocalProtocolError, UnknownOutcomeError
from kraken_proto.state import ConnectionState
from kraken_proto.trading import (
    AddOrderResult,
    CancelAllResult,
    CancelOrderResult,
    OrderOutcome,
    OrderResponse,
)
from kraken_transports.base import (
    Deadline,
    as_state,
    build_batch_add,
    build_cancel_order,
    cancel_results,
    check_symbols,
    describe_failure,
    expect_result,
    redact_frame,
    request_label,
)

URL = "wss://ws.kraken.com/v2"


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


class WrappedByAiohttpError(OSError):
    """Like aiohttp's connector errors: the OS error beside it, not as its cause."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(os_error.errno, "Cannot connect to host")
        self.os_error = os_error


def test_describe_failure_names_the_usual_causes() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    unknown = socket.gaierror(-2, "Name or service not known")
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate"
    chained = RuntimeError("wrapper")
    chained.__cause__ = TimeoutError()
    assert (
        describe_failure(URL, WrappedByAiohttpError(refused), "x") == f"connection refused to {URL}"
    )
    assert describe_failure(URL, unknown, "x") == (
        f"cannot resolve the host of {URL} (Name or service not known)"
    )
    assert describe_failure(URL, untrusted, "x") == (
        f"TLS certificate of {URL} refused (self-signed certificate)"
    )
    assert describe_failure(URL, ssl.SSLError(1, "handshake"), "x").startswith(f"TLS with {URL}")
    assert describe_failure(URL, chained, "x") == f"connecting to {URL} timed out"
    assert describe_failure(URL, None, "connection lost: EOF") == f"connection to {URL} failed: EOF"


def test_states_symbols_labels_and_deadlines() -> None:
    assert (
        as_state("subscribed") is as_state(ConnectionState.SUBSCRIBED) is ConnectionState.SUBSCRIBED
    )
    with pytest.raises(LocalProtocolError, match=r"one of its values .*, not 'up'"):
        as_state("up")
    names, checked = check_symbols("ticker", iter(["BTC/USD", "ETH/USD", "BTC/USD"]), "public")
    assert (names, checked) == (["BTC/USD", "ETH/USD", "BTC/USD"], ("BTC/USD", "ETH/USD"))
    assert check_symbols("instrument", None, "public") == (None, (None,))
    assert request_label("subscribe", "ticker", checked) == "subscribe ticker BTC/USD, ETH/USD"
    assert request_label("subscribe", "instrument", (None,)) == "subscribe instrument"
    now = [100.0]
    deadline = Deadline(2.0, lambda: now[0])
    assert (deadline.remaining(), deadline.expired) == (2.0, False)
    now[0] = 103.0
    assert (deadline.remaining(), deadline.expired) == (0.0, True)
    forever = Deadline(None, lambda: now[0])
    assert (forever.remaining(), forever.expired, forever.timeout) == (None, False, None)
