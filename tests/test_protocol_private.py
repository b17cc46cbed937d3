"""KrakenProtocol on the authenticated hosts: tokens, private streams, level3, trading."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from frames import ack

from kraken_proto import (
    Action,
    ClientConfig,
    CloseConnection,
    ConnectionState,
    Emit,
    FetchToken,
    GapPolicy,
    KrakenProtocol,
    LocalProtocolError,
    OpenConnection,
    Precision,
    ReconnectConfig,
    Send,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SubscriptionResult,
)
from kraken_proto.errors import OrderError, TradingRateLimitError, UnknownOutcomeError
from kraken_proto.events import (
    Balance,
    BookResync,
    Execution,
    GapDetected,
    L3Order,
    L3Update,
    OrderOutcome,
    OrderResponse,
    ProtocolError,
)
from kraken_proto.level3 import L3Book
from kraken_proto.replay import encode_capture_line
from kraken_proto.trading import (
    AddOrder,
    AddOrderResult,
    CancelAll,
    CancelOrder,
    CancelOrderResult,
)

E = TypeVar("E")
S = ConnectionState
TOKEN = "WS-TOKEN-0123456789abcdef"
KEY = "KEY123"
SECRET = "c2VjcmV0c2VjcmV0"
TIMES = {"time_in": "2026-08-01T02:53:53.184174Z", "time_out": "2026-08-01T02:53:53.184216Z"}


def cfg(**overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "ping_interval": None,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(7),
        "api_key": KEY,
        "api_secret": SECRET,
    }
    base.update(overrides)
    return ClientConfig(**base)


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def events(actions: list[Action], kind: type[E]) -> list[E]:
    return [a.event for a in actions if isinstance(a, Emit) and isinstance(a.event, kind)]


def states(actions: list[Action]) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events(actions, StateChanged)]


def authenticated(
    config: ClientConfig | None = None,
    *,
    level3: bool = False,
    now: float = 0.0,
    replay: bool = False,
) -> KrakenProtocol:
    proto = KrakenProtocol(config or cfg(), private=not level3, level3=level3, replay=replay)
    proto.connect(now)
    proto.connection_made(now)
    proto.token_received(TOKEN, now)
    return proto


def response(method: str, req_id: int | None, result: Any = None, err: str | None = None) -> str:
    frame: dict[str, Any] = {"method": method}
    if req_id is not None:
        frame["req_id"] = req_id
    if err is None:
        frame["result"] = result
        frame["success"] = True
    else:
        frame["error"] = err
        frame["success"] = False
    frame.update(TIMES)
    return json.dumps(frame)


def executions_frame(sequence: int, *reports: dict[str, Any], snapshot: bool = False) -> str:
    kind = "snapshot" if snapshot else "update"
    return json.dumps(
        {"channel": "executions", "type": kind, "data": list(reports), "sequence": sequence}
    )


def order(**fields: Any) -> AddOrder:
    base: dict[str, Any] = {
        "order_type": "limit",
        "side": "buy",
        "order_qty": Decimal("0.5"),
        "symbol": "BTC/USD",
        "limit_price": Decimal("60000.0"),
    }
    base.update(fields)
    return AddOrder(**base)


def subscribe_executions(proto: KrakenProtocol, now: float = 0.0) -> int:
    call, actions = proto.subscribe("executions", None, now)
    (request,) = sent(actions)
    assert request["req_id"] == call  # sent at once: the call's req_id
    assert request["params"] == {"channel": "executions", "token": TOKEN}
    proto.receive_data(ack("executions", None, request["req_id"]), now)
    return int(request["req_id"])


# --------------------------------------------------------------------------- hosts and tokens


def test_each_host_has_its_own_url_and_channels() -> None:
    config = cfg()
    assert KrakenProtocol(config, private=True).url == "wss://ws-auth.kraken.com/v2"
    assert KrakenProtocol(config, level3=True).url == "wss://ws-l3.kraken.com/v2"
    assert KrakenProtocol(config, level3=True).host == "level3"
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


def test_level3_connection_fetches_its_own_token() -> None:
    proto = KrakenProtocol(cfg(), level3=True)
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
    proto = KrakenProtocol(cfg(), private=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.token_failed("EAPI:Invalid key", 0.2, terminal=True)
    assert states(actions) == [("authenticating", "closed")]
    assert "EAPI:Invalid key" in events(actions, StateChanged)[0].reason
    assert isinstance(actions[0], CloseConnection)
    assert proto.next_deadline() is None


def test_transient_token_failure_retries_with_backoff_and_a_fresh_token() -> None:
    proto = KrakenProtocol(cfg(), private=True)
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
        KrakenProtocol(cfg(), private=True).token_failed("x", 0.0, terminal=False)


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


# --------------------------------------------------------------------------- private streams


def test_executions_are_sparse_exact_and_numbered() -> None:
    proto = authenticated()
    subscribe_executions(proto)
    snapshot = executions_frame(
        1,
        {
            "order_id": "OK4GJX-KSTLS-7DZZO5",
            "exec_type": "new",
            "order_status": "new",
            "symbol": "BTC/USD",
            "limit_price": 26500.0,
            "order_qty": 0.005,
        },
        snapshot=True,
    )
    (report,) = events(proto.receive_data(snapshot, 1.0), Execution)
    assert report.snapshot and report.sequence == 1 and report.received_at == 1.0
    assert report.limit_price == Decimal("26500.0")
    fill = executions_frame(
        2,
        {
            "order_id": "OK4GJX-KSTLS-7DZZO5",
            "exec_type": "trade",
            "last_qty": 8.528e-05,
            "fees": [{"asset": "USD", "qty": 1.5e-05}],
            "order_status": "partially_filled",
        },
    )
    (report,) = events(proto.receive_data(fill, 2.0), Execution)
    assert report.last_qty == Decimal("0.00008528")
    assert report.fees is not None and report.fees[0].qty == Decimal("0.000015")
    assert not report.snapshot and report.sequence == 2
    assert report.symbol is None  # sparse: only what Kraken sent


def test_balances_snapshot_and_ledger_updates() -> None:
    proto = authenticated()
    (request,) = sent(proto.subscribe("balances", None, 0.0)[1])
    proto.receive_data(ack("balances", None, request["req_id"]), 0.0)
    frame = {
        "channel": "balances",
        "type": "snapshot",
        "sequence": 1,
        "data": [
            {
                "asset": "USD",
                "asset_class": "currency",
                "balance": 1000.5,
                "wallets": [{"type": "spot", "id": "main", "balance": 1000.5}],
            }
        ],
    }
    (row,) = events(proto.receive_data(json.dumps(frame), 0.5), Balance)
    assert row.balance == Decimal("1000.5") and row.snapshot
    frame.update(type="update", sequence=2)
    frame["data"] = [{"asset": "USD", "amount": -26.6, "balance": 973.9, "ref_id": "T1"}]
    (row,) = events(proto.receive_data(json.dumps(frame), 0.6), Balance)
    assert (row.amount, row.balance, row.sequence) == (Decimal("-26.6"), Decimal("973.9"), 2)


def test_gap_under_resync_resubscribes_for_a_fresh_snapshot() -> None:
    proto = authenticated(cfg(gap_policy=GapPolicy.RESYNC))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.receive_data(executions_frame(2, {"exec_type": "new", "order_id": "A"}), 1.1)
    actions = proto.receive_data(executions_frame(4, {"exec_type": "new", "order_id": "B"}), 1.2)
    assert events(actions, GapDetected) == [GapDetected("executions", 3, 4, "resync", 1.2)]
    assert not events(actions, Execution)  # dropped until the fresh snapshot
    assert [(r["method"], r["params"]["channel"]) for r in sent(actions)] == [
        ("unsubscribe", "executions"),
        ("subscribe", "executions"),
    ]
    after = proto.receive_data(executions_frame(5, {"exec_type": "new", "order_id": "C"}), 1.3)
    assert not events(after, Execution)
    fresh = proto.receive_data(
        executions_frame(1, {"exec_type": "new", "order_id": "B"}, snapshot=True), 1.4
    )
    assert [e.order_id for e in events(fresh, Execution)] == ["B"]


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"exec_type": "trade", "order_id": "B", "last_qty": -0.5}, "execution.last_qty"),
        ({"exec_type": "trade", "order_id": "B", "avg_price": "NaN"}, "execution.avg_price"),
        ({"exec_type": "new", "order_id": "B", "limit_price": "Infinity"}, "execution.limit_price"),
        (
            {"exec_type": "trade", "order_id": "B", "fees": [{"asset": "USD", "qty": "-Inf"}]},
            "execution.fees[0].qty",
        ),
        (
            {"exec_type": "status", "order_id": "B", "triggers": {"peak_price": -1}},
            "execution.triggers.peak_price",
        ),
        (
            {"exec_type": "new", "order_id": "B", "contingent": {"limit_price": "1e300"}},
            "execution.contingent.limit_price",
        ),
    ],
)
def test_an_execution_with_a_bad_number_drops_its_message_and_the_gap_resyncs(
    report: dict[str, Any], field: str
) -> None:
    """Issue 9, item 6, on a sequenced stream: delivering the message's other reports would
    hide a hole, so the whole message goes and the sequence check sees it missing."""
    proto = authenticated(cfg(gap_policy=GapPolicy.RESYNC))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    good = {"exec_type": "new", "order_id": "A"}
    actions = proto.receive_data(executions_frame(2, good, report), 1.1)
    (error,) = events(actions, ProtocolError)
    assert error.error.startswith(
        f"Kraken sent an unusable executions message (sequence 2, data[1]): {field}: "
    )
    assert error.error.endswith("; the message is dropped")
    assert not events(actions, Execution)
    actions = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "C"}), 1.2)
    assert events(actions, GapDetected) == [GapDetected("executions", 2, 3, "resync", 1.2)]
    assert [r["method"] for r in sent(actions)] == ["unsubscribe", "subscribe"]


def test_executions_with_signed_offsets_and_rebates_are_delivered() -> None:
    proto = authenticated()
    subscribe_executions(proto)
    report = {
        "exec_type": "trade",
        "order_id": "A",
        "order_qty": 0,
        "limit_price": -2.5,
        "limit_price_type": "pct",
        "fees": [{"asset": "USD", "qty": -0.01}],
        "triggers": {"price": -1.5, "price_type": "quote", "actual_price": 100.0},
        "contingent": {"trigger_price": -3, "limit_price": 0},
    }
    (execution,) = events(
        proto.receive_data(executions_frame(1, report, snapshot=True), 1.0), Execution
    )
    assert execution.limit_price == Decimal("-2.5") and execution.fees is not None
    assert execution.fees[0].qty == Decimal("-0.01")


def test_a_balance_with_a_bad_number_drops_its_message() -> None:
    proto = authenticated()
    (request,) = sent(proto.subscribe("balances", None, 0.0)[1])
    proto.receive_data(ack("balances", None, request["req_id"]), 0.0)
    for sequence, row, field in (
        (1, {"asset": "USD", "balance": "NaN"}, "balance.balance"),
        (2, {"asset": "USD", "amount": "-Infinity"}, "balance.amount"),
        (
            3,
            {"asset": "USD", "wallets": [{"type": "spot", "id": "main", "balance": "1e300"}]},
            "balance.wallets[0].balance",
        ),
    ):
        frame = {"channel": "balances", "type": "update", "sequence": sequence, "data": [row]}
        (error,) = events(proto.receive_data(json.dumps(frame), 1.0), ProtocolError)
        assert f"(sequence {sequence}, data[0]): {field}: " in error.error
    frame = {
        "channel": "balances",
        "type": "update",
        "sequence": 4,
        "data": [{"asset": "USD", "amount": -5, "fee": -0.1, "balance": -1, "wallets": []}],
    }
    (row,) = events(proto.receive_data(json.dumps(frame), 1.1), Balance)
    assert (row.amount, row.fee, row.balance) == (Decimal(-5), Decimal("-0.1"), Decimal(-1))


def test_gap_under_ignore_reports_and_carries_on() -> None:
    proto = authenticated(cfg(gap_policy=GapPolicy.IGNORE))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    actions = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "A"}), 1.1)
    assert events(actions, GapDetected) == [GapDetected("executions", 2, 3, "ignore", 1.1)]
    assert [e.order_id for e in events(actions, Execution)] == ["A"]
    assert not sent(actions)


def test_gap_under_buffer_reorders_or_resyncs_after_the_timeout() -> None:
    proto = authenticated(cfg(gap_policy=GapPolicy.BUFFER, gap_buffer_timeout=0.5))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    held = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "C"}), 1.1)
    assert events(held, GapDetected) and not events(held, Execution)
    filled = proto.receive_data(executions_frame(2, {"exec_type": "new", "order_id": "B"}), 1.2)
    assert [e.order_id for e in events(filled, Execution)] == ["B", "C"]
    # A hole that stays open resyncs when the buffer times out.
    proto.receive_data(executions_frame(5, {"exec_type": "new", "order_id": "E"}), 2.0)
    deadline = proto.next_deadline()
    assert deadline == pytest.approx(2.5)
    actions = proto.handle_timer(2.5)
    assert [r["method"] for r in sent(actions)] == ["unsubscribe", "subscribe"]
    assert not events(actions, Execution)


def test_gap_resync_budget_then_the_stream_fails() -> None:
    proto = authenticated(cfg(resync_max_attempts=1))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    first = proto.receive_data(executions_frame(3), 1.1)
    unsub, sub = sent(first)
    proto.receive_data(ack("executions", None, unsub["req_id"], method="unsubscribe"), 1.2)
    proto.receive_data(ack("executions", None, sub["req_id"]), 1.2)
    proto.receive_data(executions_frame(1, snapshot=True), 1.3)
    actions = proto.receive_data(executions_frame(3), 1.4)
    (failed,) = events(actions, SubscriptionFailed)
    assert "sequence gaps" in failed.error
    assert [r["method"] for r in sent(actions)] == ["unsubscribe"]


# --------------------------------------------------------------------------- level3


def l3_snapshot(data_dir: Path) -> tuple[str, int]:
    vectors = json.loads((data_dir / "doc-vectors.json").read_text())
    (vector,) = [v for v in vectors if v["id"] == "l3_v2_doc_guide_btcusd"]
    entry = {"symbol": "BTC/USD", "checksum": vector["expected"], **vector["input"]}
    for side in ("bids", "asks"):
        entry[side] = [
            {**o, "limit_price": float(o["limit_price"]), "order_qty": float(o["order_qty"])}
            for o in entry[side]
        ]
    text = json.dumps({"channel": "level3", "type": "snapshot", "data": [entry]})
    return text, int(vector["expected"])


def test_level3_book_is_verified_and_resynced_on_mismatch(data_dir: Path) -> None:
    config = cfg(precisions={"BTC/USD": Precision(price=1, qty=8)})
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


# --------------------------------------------------------------------------- trading


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
    proto = authenticated(cfg(request_timeout=2.0))
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
    proto = KrakenProtocol(cfg(), private=True)
    with pytest.raises(LocalProtocolError, match="never queued across connections"):
        proto.submit(order(), 0.0)
    with pytest.raises(LocalProtocolError, match="private connection"):
        KrakenProtocol(cfg()).submit(order(), 0.0)
    with pytest.raises(LocalProtocolError, match="trading request"):
        authenticated().submit("add_order", 0.0)  # type: ignore[arg-type]


def test_rate_counter_paces_then_refuses() -> None:
    proto = authenticated(
        cfg(max_pacing_delay=3.0, max_requests_per_second=1000.0, request_burst=1000)
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
    proto = authenticated(cfg(max_pacing_delay=100.0))
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
        KrakenProtocol(cfg()).arm_dead_man_switch(60, 0.0)
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


# --------------------------------------------------------------------------- edges


def level3_proto(data_dir: Path, **config: Any) -> tuple[KrakenProtocol, str, int]:
    # The snapshot goes through floats, which drop the padding: precision restores it.
    config.setdefault("precisions", {"BTC/USD": Precision(price=1, qty=8)})
    proto = authenticated(cfg(**config), level3=True)
    (request,) = sent(proto.subscribe("level3", ["BTC/USD"], 0.0)[1])
    proto.receive_data(ack("level3", "BTC/USD", request["req_id"], depth=10), 0.0)
    snapshot, checksum = l3_snapshot(data_dir)
    proto.receive_data(snapshot, 0.1)
    return proto, snapshot, checksum


def l3_update(checksum: int, *bids: dict[str, Any]) -> str:
    entry = {"symbol": "BTC/USD", "checksum": checksum, "bids": list(bids), "asks": []}
    return json.dumps({"channel": "level3", "type": "update", "data": [entry]})


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
    model.apply_snapshot(*_sides(snapshot))
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


def _sides(snapshot: str) -> tuple[tuple[L3Order, ...], tuple[L3Order, ...]]:
    entry = json.loads(snapshot)["data"][0]
    frame = msgspec.json.decode(json.dumps(entry), type=L3Update)
    return frame.bids, frame.asks


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


def test_dead_man_switch_armed_while_disconnected_waits_for_the_token() -> None:
    proto = KrakenProtocol(cfg(), private=True)
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


def test_gap_on_a_stream_not_active_waits_for_its_next_snapshot() -> None:
    proto = authenticated(cfg(silent_subscription_timeout=30.0))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.unsubscribe("executions", None, 1.1)
    actions = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "A"}), 1.2)
    assert events(actions, GapDetected) and not sent(actions)
    # The gate restarted: the next update is taken as the new start.
    later = proto.receive_data(executions_frame(9, {"exec_type": "new", "order_id": "B"}), 1.3)
    assert [e.order_id for e in events(later, Execution)] == ["B"]


def test_gap_resync_without_snapshots_restarts_on_the_next_update() -> None:
    proto = authenticated()
    (request,) = sent(proto.subscribe("balances", None, 0.0, snapshot=False)[1])
    proto.receive_data(ack("balances", None, request["req_id"]), 0.0)

    def balances(sequence: int) -> str:
        data = [{"asset": "USD", "amount": 1.0, "balance": 2.0}]
        return json.dumps(
            {"channel": "balances", "type": "update", "data": data, "sequence": sequence}
        )

    proto.receive_data(balances(1), 0.1)
    actions = proto.receive_data(balances(3), 0.2)
    assert [r["method"] for r in sent(actions)] == ["unsubscribe", "subscribe"]
    assert len(events(proto.receive_data(balances(1), 0.3), Balance)) == 1


def test_buffer_deadline_not_due_is_left_alone() -> None:
    proto = authenticated(cfg(gap_policy=GapPolicy.BUFFER, gap_buffer_timeout=5.0))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.receive_data(executions_frame(3), 1.1)
    proto.submit(order(), 1.2)
    proto.handle_timer(1.5)  # an earlier timer (not the buffer's) fires
    assert proto.next_deadline() == pytest.approx(6.1)


def test_user_misuse_of_private_subscribe_parameters() -> None:
    proto = KrakenProtocol(cfg(), private=True)
    with pytest.raises(LocalProtocolError, match="users must be 'all'"):
        proto.subscribe("executions", None, 0.0, users="me")
    assert proto.subscribe("balances", None, 0.0, users="all") == (1, [])
    level3 = KrakenProtocol(cfg(), level3=True)
    with pytest.raises(LocalProtocolError, match="level3 depth must be one of"):
        level3.subscribe("level3", ["BTC/USD"], 0.0, depth=25)


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
