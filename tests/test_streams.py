"""The private streams part (kraken_proto.streams) through KrakenProtocol: executions and
balances, sequence gaps under each policy."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from frames import ack
from protocols import (
    authenticated,
    events,
    executions_frame,
    order,
    private_cfg,
    sent,
    subscribe_executions,
)

from kraken_proto import GapPolicy, ProtocolError, SubscriptionFailed
from kraken_proto.events import Balance, Execution, GapDetected


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
    proto = authenticated(private_cfg(gap_policy=GapPolicy.RESYNC))
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
    proto = authenticated(private_cfg(gap_policy=GapPolicy.RESYNC))
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
    proto = authenticated(private_cfg(gap_policy=GapPolicy.IGNORE))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    actions = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "A"}), 1.1)
    assert events(actions, GapDetected) == [GapDetected("executions", 2, 3, "ignore", 1.1)]
    assert [e.order_id for e in events(actions, Execution)] == ["A"]
    assert not sent(actions)


def test_gap_under_buffer_reorders_or_resyncs_after_the_timeout() -> None:
    proto = authenticated(private_cfg(gap_policy=GapPolicy.BUFFER, gap_buffer_timeout=0.5))
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
    proto = authenticated(private_cfg(resync_max_attempts=1))
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


def test_gap_on_a_stream_not_active_waits_for_its_next_snapshot() -> None:
    proto = authenticated(private_cfg(silent_subscription_timeout=30.0))
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
    proto = authenticated(private_cfg(gap_policy=GapPolicy.BUFFER, gap_buffer_timeout=5.0))
    subscribe_executions(proto)
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    proto.receive_data(executions_frame(3), 1.1)
    proto.submit(order(), 1.2)
    proto.handle_timer(1.5)  # an earlier timer (not the buffer's) fires
    assert proto.next_deadline() == pytest.approx(6.1)


def test_a_gap_before_the_stream_is_acknowledged_restarts_it_without_a_resync() -> None:
    proto = authenticated()
    _, actions = proto.subscribe("executions", None, 0.0)
    assert sent(actions)  # no ack yet: the subscription is pending
    proto.receive_data(executions_frame(1, snapshot=True), 1.0)
    gap = proto.receive_data(executions_frame(3, {"exec_type": "new", "order_id": "A"}), 1.1)
    assert events(gap, GapDetected) and not sent(gap)
    later = proto.receive_data(executions_frame(7, {"exec_type": "new", "order_id": "B"}), 1.2)
    assert [e.order_id for e in events(later, Execution)] == ["B"]
