"""The client core wired straight to the sans-IO fake exchange: long runs, no sockets.

A tiny in-memory driver moves frames between ``KrakenProtocol`` and ``ExchangeConnection``
on one fake clock, so minutes of level3 churn and trading run in about a second and every
checksum, sequence number and balance can be checked exactly.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from kraken_proto import (
    Action,
    AddOrder,
    BookResync,
    CancelOrder,
    ClientConfig,
    Emit,
    Event,
    Execution,
    FetchToken,
    GapDetected,
    KrakenProtocol,
    L3Update,
    OrderOutcome,
    OrderResponse,
    ProtocolError,
    ReconnectConfig,
    Send,
    Subscribed,
    SubscriptionResult,
)
from kraken_proto.auth import parse_token_response
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    SIM_API_KEY,
    SIM_API_SECRET,
    ExchangeConnection,
    FakeExchange,
)
from kraken_proto.simulator.faults import SequenceGap


class Wire:
    """Connects one protocol to one fake exchange in memory, on a shared fake clock.

    Frames queue in both directions as on a socket: what the client sends while it reads
    a burst reaches the server only after that burst, so answers never overtake frames
    the server had already sent.
    """

    def __init__(self, exchange: FakeExchange, proto: KrakenProtocol, host: str) -> None:
        self.exchange = exchange
        self.proto = proto
        self.host = host
        self.now = 0.0
        self.conn: ExchangeConnection | None = None
        self.events: list[Event] = []
        self.wall = 1_700_000_000.0
        self.to_server: list[str] = []
        self.to_client: list[str] = []

    def perform(self, actions: list[Action]) -> None:
        """Take the client's actions, then let both queues drain."""
        self._take(actions)
        self._drain()

    def deliver(self, server_actions: list[Any]) -> None:
        """Queue what the server produced for the client, then let both queues drain."""
        self._queue_for_client(server_actions)
        self._drain()

    def _queue_for_client(self, server_actions: list[Any]) -> None:
        for action in server_actions:
            assert isinstance(action, Send), action
            self.to_client.append(action.text)

    def _take(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Emit):
                self.events.append(action.event)
            elif isinstance(action, Send):
                self.to_server.append(action.text)
            elif isinstance(action, FetchToken):
                http = action.request.build(self.wall)
                self.wall += 1.0
                status, body = self.exchange.handle_token_request(
                    "/0/private/GetWebSocketsToken", dict(http.headers), http.body, self.now
                )
                assert status == 200
                token = parse_token_response(body)
                self._take(self.proto.token_received(token, self.now, connection=action.connection))
            elif type(action).__name__ == "OpenConnection":
                self.conn = self.exchange.open_connection(self.now, self.host)
                greeting = self.conn.connection_made(self.now)
                self._take(self.proto.connection_made(self.now))
                self._queue_for_client(greeting)

    def _drain(self) -> None:
        while self.to_client or self.to_server:
            while self.to_client:
                self._take(self.proto.receive_data(self.to_client.pop(0), self.now))
            sending, self.to_server = self.to_server, []
            for text in sending:
                assert self.conn is not None
                self._queue_for_client(self.conn.receive_data(text, self.now))

    def run(self, until: float) -> None:
        """Advance the clock, firing both sides' deadlines in time order."""
        while True:
            assert self.conn is not None
            candidates = [d for d in (self.conn.next_deadline(), self.proto.next_deadline()) if d]
            deadline = min(candidates, default=None)
            if deadline is None or deadline > until:
                self.now = until
                return
            self.now = max(self.now, deadline)
            server_deadline = self.conn.next_deadline()
            if server_deadline is not None and server_deadline <= self.now:
                self.deliver(self.conn.handle_timer(self.now))
            proto_deadline = self.proto.next_deadline()
            if proto_deadline is not None and proto_deadline <= self.now:
                self.perform(self.proto.handle_timer(self.now))

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def config(**overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "ping_interval": None,
        "stale_timeout": 1e9,
        "reconnect": ReconnectConfig(jitter=0.0),
        "rng": random.Random(3),
    }
    base.update(overrides)
    return ClientConfig(**base)


@pytest.mark.parametrize(("symbol", "depth"), [("BTC/USD", 10), ("ETH/USD", 100)])
def test_level3_books_stay_verified_over_a_long_run(symbol: str, depth: int) -> None:
    spec = DEFAULT_SYMBOLS[symbol]
    exchange = FakeExchange(seed=5, symbols={symbol: spec}, idle_timeout=None)
    proto = KrakenProtocol(config(), level3=True)
    wire = Wire(exchange, proto, "level3")
    call, _ = proto.subscribe("level3", [symbol], 0.0, depth=depth)
    wire.perform(proto.connect(0.0))
    wire.run(60.0)
    # The call settled once, with the exchange's ack for its request (sent on connecting).
    (result,) = wire.of(SubscriptionResult)
    assert result.req_id == call and result.ok and result.answers == tuple(wire.of(Subscribed))
    assert result.answers[0].req_id != call
    updates = wire.of(L3Update)
    assert len(updates) > 60 * 15  # a minute of churn, every message verified
    assert not wire.of(BookResync) and not wire.of(ProtocolError)
    book = proto.l3_book(symbol)
    assert book is not None and book.is_live
    truth_bids, truth_asks = exchange.level3_book(symbol).levels(depth)
    # The client's book holds exactly the exchange's top `depth` levels, in queue order.
    for levels, truth in ((book.bids(), truth_bids), (book.asks(), truth_asks)):
        assert [o.order_id for level in levels for o in level.orders] == [
            e["order_id"] for e in truth
        ]


def test_orders_fill_and_the_streams_stay_in_sequence() -> None:
    exchange = FakeExchange(seed=9, idle_timeout=None)
    proto = KrakenProtocol(config(), private=True)
    wire = Wire(exchange, proto, "auth")
    calls = [proto.subscribe(channel, None, 0.0)[0] for channel in ("executions", "balances")]
    wire.perform(proto.connect(0.0))
    wire.run(1.0)
    results = wire.of(SubscriptionResult)
    assert [(r.req_id, r.channel, r.ok) for r in results] == [
        (calls[0], "executions", True),
        (calls[1], "balances", True),
    ]
    assert proto.pending_calls == 0
    best_ask = exchange.markets["BTC/USD"].best()[1].price
    placed = []
    for i in range(5):
        order = AddOrder(
            order_type="market" if i % 2 else "limit",
            side="buy",
            symbol="BTC/USD",
            order_qty=Decimal("0.001"),
            limit_price=None if i % 2 else best_ask - 1000,
        )
        req_id, actions = proto.submit(order, wire.now)
        wire.perform(actions)
        placed.append(req_id)
        wire.run(wire.now + 0.5)
    resting = [
        r.result.order_id  # type: ignore[union-attr]
        for r in wire.of(OrderResponse)
        if r.method == "add_order" and r.req_id in placed[::2]
    ]
    req_id, actions = proto.submit(CancelOrder(order_id=tuple(resting)), wire.now)
    wire.perform(actions)
    wire.run(wire.now + 1.0)
    responses = {r.req_id: r for r in wire.of(OrderResponse)}
    assert all(responses[r].outcome is OrderOutcome.OK for r in [*placed, req_id])
    assert len(responses[req_id].results) == len(resting) == 3
    reports = wire.of(Execution)
    filled = [e for e in reports if e.exec_type == "trade"]
    assert filled and {e.order_status for e in reports if e.order_id in resting} >= {"canceled"}
    assert not wire.of(GapDetected)
    sequences = [e.sequence for e in reports]
    assert sequences == sorted(sequences)


def test_a_sequence_gap_is_detected_and_healed_by_a_fresh_snapshot() -> None:
    exchange = FakeExchange(seed=9, idle_timeout=None)
    proto = KrakenProtocol(config(), private=True)
    wire = Wire(exchange, proto, "auth")
    proto.subscribe("executions", None, 0.0)
    wire.perform(proto.connect(0.0))
    wire.run(1.0)
    assert wire.conn is not None
    wire.deliver(wire.conn.inject(SequenceGap("executions"), wire.now))
    order = AddOrder(
        order_type="limit",
        side="buy",
        symbol="BTC/USD",
        order_qty=Decimal("0.001"),
        limit_price=Decimal("1000.0"),
    )
    _, actions = proto.submit(order, wire.now)
    wire.perform(actions)
    wire.run(wire.now + 2.0)
    (gap,) = wire.of(GapDetected)
    assert gap.channel == "executions" and gap.received == gap.expected + 1
    snapshots = [e for e in wire.of(Execution) if e.snapshot]
    # The resync's snapshot lists the order placed meanwhile.
    assert any(e.order_status == "new" for e in snapshots)
    assert [info.channel for info in proto.subscriptions.active] == ["executions"]
