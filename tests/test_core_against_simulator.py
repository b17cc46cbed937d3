"""The client core wired straight to the sans-IO fake exchange: long runs, no sockets.

The test kit (:mod:`kraken_proto.testing`) moves frames between ``KrakenProtocol`` and the
simulator's ``ExchangeConnection`` on one fake clock, so minutes of level3 churn and
trading run in about a second and every checksum, sequence number and balance can be
checked exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal

import pytest

from kraken_proto import (
    AddOrder,
    BookResync,
    CancelOrder,
    Execution,
    GapDetected,
    KrakenProtocol,
    L3Update,
    OrderOutcome,
    OrderResponse,
    ProtocolError,
    Subscribed,
    SubscriptionResult,
)
from kraken_proto.simulator import DEFAULT_SYMBOLS, FakeExchange, SymbolSpec
from kraken_proto.testing import ProtocolClient, SimulatedKraken, deterministic_config


def protocol(**roles: bool) -> KrakenProtocol:
    """A protocol with the kit's deterministic config, never stale over a long run."""
    return KrakenProtocol(deterministic_config(stale_timeout=1e9, rng=random.Random(3)), **roles)


def kraken(seed: int, symbols: Mapping[str, SymbolSpec] | None = None) -> SimulatedKraken:
    """The simulator as these tests always ran it: Kraken's message rate, no idle close."""
    return SimulatedKraken(exchange=FakeExchange(seed=seed, symbols=symbols, idle_timeout=None))


@pytest.mark.parametrize(("symbol", "depth"), [("BTC/USD", 10), ("ETH/USD", 100)])
def test_level3_books_stay_verified_over_a_long_run(symbol: str, depth: int) -> None:
    network = kraken(5, symbols={symbol: DEFAULT_SYMBOLS[symbol]})
    proto = protocol(level3=True)
    call, _ = proto.subscribe("level3", [symbol], 0.0, depth=depth)
    client = network.connect(proto)
    network.advance(60.0)
    # The call settled once, with the exchange's ack for its request (sent on connecting).
    (result,) = client.of(SubscriptionResult)
    assert result.req_id == call and result.ok and result.answers == tuple(client.of(Subscribed))
    assert result.answers[0].req_id != call
    updates = client.of(L3Update)
    assert len(updates) > 60 * 15  # a minute of churn, every message verified
    assert not client.of(BookResync) and not client.of(ProtocolError)
    book = proto.l3_book(symbol)
    assert book is not None and book.is_live
    truth_bids, truth_asks = network.exchange.level3_book(symbol).levels(depth)
    # The client's book holds exactly the exchange's top `depth` levels, in queue order.
    for levels, truth in ((book.bids(), truth_bids), (book.asks(), truth_asks)):
        assert [o.order_id for level in levels for o in level.orders] == [
            e["order_id"] for e in truth
        ]


def test_orders_fill_and_the_streams_stay_in_sequence() -> None:
    network = kraken(9)
    proto = protocol(private=True)
    client = network.connect(proto, start=False)
    calls = [client.subscribe(channel) for channel in ("executions", "balances")]
    client.connect()
    network.advance(1.0)
    results = client.of(SubscriptionResult)
    assert [(r.req_id, r.channel, r.ok) for r in results] == [
        (calls[0], "executions", True),
        (calls[1], "balances", True),
    ]
    assert proto.pending_calls == 0
    best_ask = network.exchange.markets["BTC/USD"].best()[1].price
    placed = []
    for i in range(5):
        order = AddOrder(
            order_type="market" if i % 2 else "limit",
            side="buy",
            symbol="BTC/USD",
            order_qty=Decimal("0.001"),
            limit_price=None if i % 2 else best_ask - 1000,
        )
        placed.append(client.submit(order))
        network.advance(0.5)
    resting = [
        r.result.order_id  # type: ignore[union-attr]
        for r in client.of(OrderResponse)
        if r.method == "add_order" and r.req_id in placed[::2]
    ]
    req_id = client.submit(CancelOrder(order_id=tuple(resting)))
    network.advance(1.0)
    responses = {r.req_id: r for r in client.of(OrderResponse)}
    assert all(responses[r].outcome is OrderOutcome.OK for r in [*placed, req_id])
    assert len(responses[req_id].results) == len(resting) == 3
    reports = client.of(Execution)
    filled = [e for e in reports if e.exec_type == "trade"]
    assert filled and {e.order_status for e in reports if e.order_id in resting} >= {"canceled"}
    assert not client.of(GapDetected)
    sequences = [e.sequence for e in reports]
    assert sequences == sorted(sequences)


def test_a_sequence_gap_is_detected_and_healed_by_a_fresh_snapshot() -> None:
    network = kraken(9)
    proto = protocol(private=True)
    client: ProtocolClient = network.connect(proto, start=False)
    client.subscribe("executions")
    client.connect()
    network.advance(1.0)
    network.sequence_gap("executions", client)
    order = AddOrder(
        order_type="limit",
        side="buy",
        symbol="BTC/USD",
        order_qty=Decimal("0.001"),
        limit_price=Decimal("1000.0"),
    )
    client.submit(order)
    network.advance(2.0)
    (gap,) = client.of(GapDetected)
    assert gap.channel == "executions" and gap.received == gap.expected + 1
    snapshots = [e for e in client.of(Execution) if e.snapshot]
    # The resync's snapshot lists the order placed meanwhile.
    assert any(e.order_status == "new" for e in snapshots)
    assert [info.channel for info in proto.subscriptions.active] == ["executions"]
