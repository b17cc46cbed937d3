"""The outbox (kraken_proto.outbox): requests paced by the message-rate budget, in order."""

from __future__ import annotations

import pytest
from protocols import cfg, open_proto, sent

from kraken_proto import Action, Send
from kraken_proto.outbox import Outbox
from kraken_proto.timing import NEVER


def test_requests_leave_in_order_as_the_budget_allows_and_each_sender_hears_of_it() -> None:
    outbox = Outbox(rate=2.0, burst=2)
    left: list[tuple[str, int, float]] = []
    actions: list[Action] = []
    for req_id in (1, 2, 3):
        outbox.send(f"r{req_id}", req_id, lambda r, t: left.append(("a", r, t)), actions, 0.0)
    assert actions == [Send("r1"), Send("r2")]
    assert left == [("a", 1, 0.0), ("a", 2, 0.0)]
    assert outbox.deadline() == 0.5  # the third waits for the next token
    later: list[Action] = []
    outbox.flush(later, 0.4)
    assert later == [] and outbox.deadline() == 0.5
    outbox.flush(later, 0.5)
    assert later == [Send("r3")] and left[-1] == ("a", 3, 0.5)
    assert outbox.deadline() == NEVER


def test_clear_drops_what_waits() -> None:
    outbox = Outbox(rate=1.0, burst=1)
    actions: list[Action] = []
    for req_id in (1, 2):
        outbox.send("x", req_id, lambda r, t: None, actions, 0.0)
    assert outbox.deadline() == 1.0
    outbox.clear()
    assert outbox.deadline() == NEVER
    outbox.flush(actions, 5.0)
    assert actions == [Send("x")]


def test_outgoing_requests_are_paced_by_the_token_bucket() -> None:
    proto = open_proto(cfg(max_requests_per_second=2.0, request_burst=1))
    _, first = proto.subscribe("trade", ["BTC/USD"], 0.0)
    _, second = proto.subscribe("ticker", ["BTC/USD"], 0.0)
    _, third = proto.subscribe("book", ["BTC/USD"], 0.0)
    assert [r["params"]["channel"] for r in sent(first + second + third)] == ["trade"]
    assert proto.next_deadline() == pytest.approx(0.5)
    assert [r["params"]["channel"] for r in sent(proto.handle_timer(0.5))] == ["ticker"]
    assert [r["params"]["channel"] for r in sent(proto.handle_timer(1.0))] == ["book"]
    # The ack deadline runs from when the request actually left.
    assert proto.next_deadline() == pytest.approx(10.0)
