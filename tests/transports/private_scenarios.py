"""The authenticated half of every driver, as scenarios run once per driver.

Each scenario takes a ``kind`` (``"aio"``, ``"sockets"`` or ``"threaded"``) and a running
:class:`SimThread`; ``test_private_scenarios.py`` runs every one through every driver, the
asyncio client called through :mod:`clients` as if it blocked. Waiting is by polling a
condition (stepping a socket client's own loop); nothing asserts on timing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from clients import Client, open_client, until, unwrap
from simthread import SimThread

from kraken_proto import (
    BookResync,
    ClientConfig,
    ConnectionState,
    KrakenConnectionError,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
)
from kraken_proto.config import GapPolicy
from kraken_proto.errors import InvalidRequestError, OrderError, UnknownOutcomeError
from kraken_proto.events import Event
from kraken_proto.level3 import L3Update
from kraken_proto.private import Balance, Execution, GapDetected
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_proto.simulator.faults import Drop, LoseResponse, SequenceGap
from kraken_proto.trading import (
    AddOrder,
    BatchOrder,
    CancelAllOrdersAfterResult,
    OrderOutcome,
    OrderResponse,
)

S = ConnectionState
SYMBOL = "BTC/USD"
FAST = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)


def private_config(sim: SimThread, **overrides: Any) -> ClientConfig:
    """A configuration for the simulator's hosts with its test credentials."""
    server = sim.sim
    values: dict[str, Any] = {
        "endpoint": server.url,
        "auth_endpoint": server.auth_url,
        "level3_endpoint": server.level3_url,
        "rest_url": server.rest_url,
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "reconnect": FAST,
        "ping_interval": None,
        "ack_timeout": 2.0,
        "timeout": 3.0,
        "request_timeout": 3.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


class Session:
    """One client of any kind, every event it produced and every frame it sent or got."""

    def __init__(
        self, kind: str, sim: SimThread, *, level3: bool = False, **overrides: Any
    ) -> None:
        self.kind = kind
        self.sim = sim
        self.seen: list[Event] = []
        self.frames: list[str] = []
        self.client: Client = open_client(
            kind,
            private_config(sim, **overrides),
            private=not level3,
            level3=level3,
            frame_hook=lambda direction, text, now: self.frames.append(f"{direction} {text!s}"),
        )
        self.client.on(None, self.seen.append)

    def start(self) -> Session:
        self.client.start()
        return self

    def close(self) -> None:
        self.client.close()

    def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Drive (or wait for) the client until ``predicate()``; fail after ``timeout``."""
        until(self.client, predicate, timeout)

    def subscribe_private(self) -> None:
        acks = self.client.subscribe("executions", snap_orders=True, timeout=5.0)
        assert [(a.channel, a.symbol) for a in acks] == [("executions", None)]
        self.client.subscribe("balances", timeout=5.0)

    def execs(self, order_id: str) -> list[str]:
        return [
            e.exec_type
            for e in list(self.seen)
            if isinstance(e, Execution) and e.order_id == order_id and not e.snapshot
        ]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in list(self.seen) if isinstance(e, kind)]

    def states(self) -> list[str]:
        return [e.new for e in self.of(StateChanged)]

    def issued_tokens(self) -> list[str]:
        """Every WebSocket token the simulator has issued and still honours."""
        tokens: list[str] = exchange(self.sim, lambda ex: list(ex.tokens._tokens))
        return tokens


def prices(sim: SimThread, symbol: str = SYMBOL) -> tuple[Decimal, Decimal]:
    """The simulated market's best bid and ask now."""
    bids, asks = sim.call(lambda: sim.sim.exchange.markets[symbol].book(1))
    return bids[0].price, asks[0].price


def exchange(sim: SimThread, fn: Callable[[Any], Any]) -> Any:
    """``fn(exchange)`` on the simulator's loop."""
    return sim.call(lambda: fn(sim.sim.exchange))


def limit_order(price: Decimal, **fields: Any) -> dict[str, Any]:
    return {
        "order_type": "limit",
        "side": "buy",
        "symbol": SYMBOL,
        "order_qty": Decimal("0.01"),
        "limit_price": price,
        **fields,
    }


# --------------------------------------------------------------------------- scenarios


def order_life_cycle(kind: str, sim: SimThread) -> None:
    """Token, both streams, a resting order amended and cancelled, a fill, balances."""
    session = Session(kind, sim).start()
    client = session.client
    try:
        # Submitted while still connecting: waits for the connection first.
        bid, _ = prices(sim)
        rest = bid - Decimal("500.0")
        placed = client.add_order(**limit_order(rest, cl_ord_id="resting-1"), timeout=5.0)
        assert placed.order_id.startswith("O") and placed.cl_ord_id == "resting-1"
        assert session.states()[:3] == ["connecting", "authenticating", "subscribing"]
        session.subscribe_private()
        session.until(lambda: any(b.snapshot for b in session.of(Balance)))
        snap = [e for e in session.of(Execution) if e.snapshot]
        assert [(e.order_id, e.limit_price) for e in snap] == [(placed.order_id, rest)]
        usd = next(e for e in session.of(Balance) if e.asset == "USD")
        assert usd.balance == Decimal("1000000")

        amended = client.amend_order(
            order_id=placed.order_id, order_qty=Decimal("0.02"), limit_price=rest
        )
        assert amended.order_id == placed.order_id and amended.amend_id
        session.until(lambda: "amended" in session.execs(placed.order_id))
        report = [e for e in session.of(Execution) if e.exec_type == "amended"][-1]
        assert report.order_qty == Decimal("0.02")
        cancelled = client.cancel_order(order_id=placed.order_id)
        assert [c.order_id for c in cancelled] == [placed.order_id]
        session.until(lambda: "canceled" in session.execs(placed.order_id))
        assert client.pending_requests == 0

        # A marketable order fills; the balances move by exactly the fill.
        before = len(session.seen)
        taken = client.add_order(
            order_type="market", side="buy", symbol=SYMBOL, order_qty=Decimal("0.001")
        )
        session.until(lambda: "filled" in session.execs(taken.order_id))
        fills = [
            e
            for e in list(session.seen)[before:]
            if isinstance(e, Execution) and e.order_id == taken.order_id and e.exec_type == "trade"
        ]
        assert sum((f.last_qty or Decimal(0)) for f in fills) == Decimal("0.001")

        def btc() -> list[Balance]:
            return [
                e
                for e in list(session.seen)[before:]
                if isinstance(e, Balance) and e.asset == "BTC" and not e.snapshot
            ]

        session.until(lambda: bool(btc()))
        assert sum((b.amount or Decimal(0)) for b in btc()) == Decimal("0.001")
        assert btc()[-1].balance == Decimal("10.001")
        assert exchange(sim, lambda ex: ex.account.balances["BTC"]) == Decimal("10.001")
        responses = session.of(OrderResponse)
        assert [r.method for r in responses] == [
            "add_order",
            "amend_order",
            "cancel_order",
            "add_order",
        ]
        assert len({r.req_id for r in responses}) == 4
        assert all(r.outcome is OrderOutcome.OK for r in responses)
        assert client.rate_counter(SYMBOL).symbol == SYMBOL
    finally:
        session.close()
    with pytest.raises(KrakenConnectionError):
        client.cancel_all()


def batches_and_a_refusal(kind: str, sim: SimThread) -> None:
    """A batch placed, edited and cancelled; cancel_all; a refusal; bad fields."""
    session = Session(kind, sim).start()
    client = session.client
    try:
        session.subscribe_private()
        bid, _ = prices(sim)
        orders = [
            BatchOrder(
                order_type="limit",
                side="buy",
                order_qty=Decimal("0.01"),
                limit_price=bid - Decimal(100 + i),
            )
            for i in range(3)
        ]
        batch = client.batch_add(SYMBOL, orders)
        ids = [row.order_id or "" for row in batch.orders]
        assert len(ids) == 3 and all(ids)
        assert client.batch_cancel([ids[0], ids[1]]).count == 2
        edited = client.edit_order(order_id=ids[2], symbol=SYMBOL, limit_price=bid - 300)
        assert edited.original_order_id == ids[2] and edited.order_id != ids[2]
        assert client.cancel_all().count == 1
        with pytest.raises(OrderError) as refused:
            client.add_order(**limit_order(bid - 100, order_qty=Decimal("0.00000001")))
        assert refused.value.error == "EOrder:Order minimum not met"
        rejected = [r for r in session.of(OrderResponse) if r.outcome is OrderOutcome.REJECTED]
        assert [r.error for r in rejected] == ["EOrder:Order minimum not met"]
        with pytest.raises(InvalidRequestError) as invalid:  # raised before anything is sent
            client.add_order(order_type="limit", side="buy", symbol=SYMBOL)
        assert invalid.value.field == "order_qty"
    finally:
        session.close()


def lost_response(kind: str, sim: SimThread) -> None:
    """A response lost in flight is an unknown outcome; executions still show the order."""
    session = Session(kind, sim, request_timeout=0.3).start()
    client = session.client
    try:
        session.subscribe_private()
        sim.inject(LoseResponse("add_order"))
        bid, _ = prices(sim)
        with pytest.raises(UnknownOutcomeError) as info:
            client.add_order(**limit_order(bid - Decimal(200), cl_ord_id="lost-1"))
        assert info.value.method == "add_order"
        assert "no response within 0.3 s" in str(info.value)
        session.until(
            lambda: any(
                e.cl_ord_id == "lost-1" and e.exec_type == "new" for e in session.of(Execution)
            )
        )
        # A caller's timeout shorter than the core's leaves the request in flight.
        sim.inject(LoseResponse())
        request = AddOrder(**limit_order(bid + Decimal(900), side="sell"))
        with pytest.raises(TimeoutError, match="still in flight"):
            client.submit(request, timeout=0.05)
        assert client.pending_requests == 1
        session.until(lambda: len(session.of(OrderResponse)) == 2)
        assert [r.outcome for r in session.of(OrderResponse)] == [OrderOutcome.UNKNOWN] * 2
        assert client.pending_requests == 0
        assert client.state is S.SUBSCRIBED
    finally:
        session.close()


def waits_for_the_connection(kind: str, sim: SimThread) -> None:
    """A call made while no token comes times out naming that, then trades once it does."""
    exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1000))
    session = Session(kind, sim).start()
    client = session.client
    try:
        with pytest.raises(
            TimeoutError, match=r"cancel_all not sent: .* did not become 'subscribed'"
        ):
            client.cancel_all(timeout=0.3)
        assert client.pending_requests == 0
        exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1))
        assert client.cancel_all(timeout=5.0).count == 0
        assert client.cancel_all_orders_after(60, wait_timeout=5.0).armed
        assert not client.cancel_all_orders_after(0).armed
    finally:
        session.close()


def sequence_gap(kind: str, sim: SimThread, policy: GapPolicy) -> None:
    """A skipped executions sequence number is reported and handled under ``policy``."""
    session = Session(kind, sim, gap_policy=policy, gap_buffer_timeout=0.2).start()
    client = session.client
    try:
        session.subscribe_private()
        sim.inject(SequenceGap("executions"))
        bid, _ = prices(sim)
        placed = client.add_order(**limit_order(bid - Decimal(400)))
        session.until(lambda: bool(session.of(GapDetected)))
        (gap,) = session.of(GapDetected)
        assert gap.channel == "executions" and gap.policy == policy.value
        assert gap.received == gap.expected + 1
        if policy is GapPolicy.IGNORE:  # reported and carried on
            session.until(lambda: "new" in session.execs(placed.order_id))
        else:  # a fresh snapshot rebuilds the stream; it lists the open order
            session.until(
                lambda: any(
                    e.snapshot and e.order_id == placed.order_id for e in session.of(Execution)
                )
            )
        assert client.state is S.SUBSCRIBED
    finally:
        session.close()


def bad_credentials(kind: str, sim: SimThread) -> None:
    """A refused key closes for good, with Kraken's error in the reason and no retry."""
    wrong = SIM_API_KEY[:-4] + ("BBBB" if SIM_API_KEY.endswith("AAAA") else "AAAA")
    session = Session(kind, sim, api_key=wrong).start()
    try:
        with pytest.raises(KrakenConnectionError, match="EAPI:Invalid key") as info:
            session.client.wait_until(S.SUBSCRIBED, timeout=5.0)
        assert info.value.terminal
        assert session.client.state is S.CLOSED
        assert session.states() == ["connecting", "authenticating", "closed"]
        reason = session.of(StateChanged)[-1].reason
        assert "EAPI:Invalid key" in reason and "not retrying" in reason
        assert wrong not in reason and SIM_API_SECRET not in reason
        assert exchange(sim, lambda ex: ex.tokens.issued) == 0
        with pytest.raises(KrakenConnectionError):
            session.client.cancel_all()
    finally:
        session.close()


def level3_book(kind: str, sim: SimThread) -> None:
    """A level3 client keeps a live, checksum-verified L3 book."""
    session = Session(kind, sim, level3=True)
    client = session.client
    verified: list[bool] = []

    def check(event: L3Update) -> None:  # in the client's IO, as the update left the book
        book = unwrap(client).l3_book(event.symbol)
        verified.append(book is not None and book.is_live and book.checksum() == event.checksum)

    client.on(L3Update, check)
    session.start()
    try:
        client.subscribe("level3", SYMBOL, depth=10, timeout=5.0)
        session.until(lambda: sum(not e.snapshot for e in session.of(L3Update)) >= 20, timeout=8.0)
        book = client.l3_book(SYMBOL)
        assert book is not None and book.is_live
        assert len(verified) >= 20 and all(verified)
        best_bid, best_ask = book.best_bid(), book.best_ask()
        assert best_bid is not None and best_ask is not None
        assert best_bid.price < best_ask.price
        assert not session.of(BookResync)
        assert client.l3_book("ETH/USD") is None
        with pytest.raises(LocalProtocolError, match="private client"):
            client.cancel_all()
    finally:
        session.close()


def dead_man_switch(kind: str, sim: SimThread) -> None:
    """Armed before connecting, refreshed by the core, disarmed by hand and by close()."""
    session = Session(kind, sim)
    session.client.arm_dead_man_switch(60, interval=20)  # sent once authenticated
    session.start()
    try:
        session.until(lambda: bool(session.of(OrderResponse)))
        (armed,) = session.of(OrderResponse)
        assert armed.method == "cancel_all_orders_after" and armed.outcome is OrderOutcome.OK
        assert isinstance(armed.result, CancelAllOrdersAfterResult) and armed.result.armed
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is not None
        session.client.disarm_dead_man_switch()
        session.until(lambda: len(session.of(OrderResponse)) == 2)
        disarmed = session.of(OrderResponse)[1].result
        assert isinstance(disarmed, CancelAllOrdersAfterResult) and not disarmed.armed
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is None
        session.client.arm_dead_man_switch(60)
        session.until(lambda: len(session.of(OrderResponse)) == 3)
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is not None
    finally:
        session.close()
    session.until(lambda: exchange(sim, lambda ex: ex.engine.dead_man_at) is None)
    disarms = [f for f in session.frames if "cancel_all_orders_after" in f and '"timeout":0' in f]
    assert len(disarms) == 2  # by hand, then by close()
    assert all(json.loads(f.removeprefix("out "))["params"]["timeout"] == 0 for f in disarms)


def secrets_stay_out_of_logs(kind: str, sim: SimThread, caplog: pytest.LogCaptureFixture) -> None:
    """Trading at DEBUG, through a reconnect, logs and hooks neither token nor key nor secret."""
    with caplog.at_level(logging.DEBUG):
        session = Session(kind, sim).start()
        try:
            session.subscribe_private()
            (token,) = session.issued_tokens()
            bid, _ = prices(sim)
            placed = session.client.add_order(**limit_order(bid - Decimal(600)))
            session.client.cancel_order(order_id=placed.order_id)
            sim.inject(Drop())  # the reconnect fetches a second token
            session.until(lambda: "degraded" in session.states())
            session.client.wait_until(S.SUBSCRIBED, timeout=5.0)
            (second,) = set(session.issued_tokens()) - {token}
            session.client.cancel_all()
        finally:
            session.close()
    outgoing = [f for f in session.frames if f.startswith("out ")]
    assert any('"token":"***"' in f for f in outgoing)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    events = json.dumps([repr(e) for e in session.seen])
    frames = "\n".join(session.frames)
    for secret in (token, second, SIM_API_KEY, SIM_API_SECRET):
        assert secret not in logged
        assert secret not in events
        assert secret not in frames
