"""The authenticated half through the blocking drivers (socket and threaded), as scenarios.

Each scenario takes a ``kind`` ("sockets" or "threaded") and a running :class:`SimThread`,
so ``test_private_sockets.py`` and ``test_private_threaded.py`` run the same checks through
each driver. Waiting is by polling a condition (stepping a socket client's own loop);
nothing asserts on timing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
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
from kraken_proto.simulator.faults import LoseResponse, SequenceGap
from kraken_proto.trading import (
    AddOrder,
    CancelAllOrdersAfterResult,
    OrderOutcome,
    OrderResponse,
)
from kraken_transports.sockets import SocketClient
from kraken_transports.threaded import ThreadedClient

S = ConnectionState
SYMBOL = "BTC/USD"
FAST = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)
Client = SocketClient | ThreadedClient


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
    """One client of either kind, every event it produced, and a way to wait."""

    def __init__(
        self, kind: str, sim: SimThread, *, level3: bool = False, **overrides: Any
    ) -> None:
        config = private_config(sim, **overrides)
        self.kind = kind
        self.sim = sim
        self.seen: list[Event] = []
        self.client: Client
        if kind == "sockets":
            self.client = SocketClient(config, private=not level3, level3=level3)
        else:
            self.client = ThreadedClient(config, private=not level3, level3=level3)
        self.client.on(None, self.seen.append)

    def start(self) -> Session:
        if isinstance(self.client, SocketClient):
            self.client.connect()
        else:
            self.client.start()
        return self

    def close(self) -> None:
        self.client.close()

    def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Drive (or wait for) the client until ``predicate()``; fail after ``timeout``."""
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"condition not met; state {self.client.state}")
            if isinstance(self.client, SocketClient):
                self.client.step(0.01)
            else:
                time.sleep(0.005)

    def subscribe_private(self) -> None:
        self.client.subscribe("executions", snap_orders=True, wait=True, timeout=5.0)
        self.client.subscribe("balances", wait=True, timeout=5.0)

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

    def protocol_token(self) -> str | None:
        client = self.client
        inner = client if isinstance(client, SocketClient) else client._client
        token: str | None = inner.protocol._token
        return token


def prices(sim: SimThread, symbol: str = SYMBOL) -> tuple[Decimal, Decimal]:
    """The simulated market's best bid and ask now."""
    bids, asks = sim.call(lambda: sim.sim.exchange.markets[symbol].book(1))
    return bids[0].price, asks[0].price


def exchange(sim: SimThread, fn: Callable[[Any], Any]) -> Any:
    """``fn(exchange)`` on the simulator's loop."""
    return sim.call(lambda: fn(sim.sim.exchange))


# --------------------------------------------------------------------------- scenarios


def order_life_cycle(kind: str, sim: SimThread) -> None:
    """Token, both streams, a resting order amended and cancelled, a fill, balances."""
    session = Session(kind, sim).start()
    client = session.client
    try:
        # Submitted while still connecting: waits for the connection first.
        bid, _ = prices(sim)
        rest = bid - Decimal("500.0")
        placed = client.add_order(
            order_type="limit",
            side="buy",
            symbol=SYMBOL,
            order_qty=Decimal("0.01"),
            limit_price=rest,
            cl_ord_id="resting-1",
            timeout=5.0,
        )
        assert placed.order_id.startswith("O") and placed.cl_ord_id == "resting-1"
        assert session.states()[:3] == ["connecting", "authenticating", "subscribing"]
        session.subscribe_private()
        session.until(lambda: any(b.snapshot for b in session.of(Balance)))
        snap = [e for e in session.of(Execution) if e.snapshot]
        assert [(e.order_id, e.limit_price) for e in snap] == [(placed.order_id, rest)]

        amended = client.amend_order(
            order_id=placed.order_id, order_qty=Decimal("0.02"), limit_price=rest
        )
        assert amended.order_id == placed.order_id
        session.until(lambda: "amended" in session.execs(placed.order_id))
        cancelled = client.cancel_order(order_id=placed.order_id)
        assert [c.order_id for c in cancelled] == [placed.order_id]
        session.until(lambda: "canceled" in session.execs(placed.order_id))

        before = len(session.seen)
        taken = client.add_order(
            order_type="market", side="buy", symbol=SYMBOL, order_qty=Decimal("0.001")
        )
        session.until(lambda: "filled" in session.execs(taken.order_id))

        def btc() -> list[Balance]:
            return [
                e
                for e in list(session.seen)[before:]
                if isinstance(e, Balance) and e.asset == "BTC" and not e.snapshot
            ]

        session.until(lambda: bool(btc()))
        assert sum((b.amount or Decimal(0)) for b in btc()) == Decimal("0.001")
        assert btc()[-1].balance == Decimal("10.001")
        responses = session.of(OrderResponse)
        assert [r.method for r in responses] == [
            "add_order",
            "amend_order",
            "cancel_order",
            "add_order",
        ]
        assert all(r.outcome is OrderOutcome.OK for r in responses)
        assert client.pending_requests == 0
        assert client.rate_counter(SYMBOL).symbol == SYMBOL

        # A refusal, a batch, and bad fields (raised before anything is sent).
        with pytest.raises(OrderError) as refused:
            client.add_order(
                order_type="limit",
                side="buy",
                symbol=SYMBOL,
                order_qty=Decimal("0.00000001"),
                limit_price=rest,
            )
        assert refused.value.error == "EOrder:Order minimum not met"
        batch = client.batch_add(
            SYMBOL,
            [
                {
                    "order_type": "limit",
                    "side": "buy",
                    "order_qty": Decimal("0.01"),
                    "limit_price": rest - i,
                }
                for i in range(2)
            ],
        )
        ids = [row.order_id or "" for row in batch.orders]
        edited = client.edit_order(order_id=ids[0], symbol=SYMBOL, limit_price=rest - 5)
        assert edited.original_order_id == ids[0]
        assert client.batch_cancel([edited.order_id, ids[1]]).count == 2
        assert client.cancel_all().count == 0
        with pytest.raises(InvalidRequestError):
            client.add_order(order_type="limit", side="buy", symbol=SYMBOL)
    finally:
        session.close()
    with pytest.raises(KrakenConnectionError):
        client.cancel_all()


def lost_response(kind: str, sim: SimThread) -> None:
    """A response lost in flight is an unknown outcome; executions still show the order."""
    session = Session(kind, sim, request_timeout=0.3).start()
    client = session.client
    try:
        session.subscribe_private()
        sim.inject(LoseResponse("add_order"))
        bid, _ = prices(sim)
        with pytest.raises(UnknownOutcomeError) as info:
            client.add_order(
                order_type="limit",
                side="buy",
                symbol=SYMBOL,
                order_qty=Decimal("0.01"),
                limit_price=bid - Decimal(200),
                cl_ord_id="lost-1",
            )
        assert info.value.method == "add_order"
        session.until(
            lambda: any(
                e.cl_ord_id == "lost-1" and e.exec_type == "new" for e in session.of(Execution)
            )
        )
        # A caller's timeout shorter than the core's leaves the request in flight.
        sim.inject(LoseResponse())
        request = AddOrder(
            order_type="limit",
            side="sell",
            symbol=SYMBOL,
            order_qty=Decimal("0.01"),
            limit_price=bid + Decimal(900),
        )
        with pytest.raises(TimeoutError, match="still in flight"):
            client.submit(request, timeout=0.05)
        session.until(lambda: len(session.of(OrderResponse)) == 2)
        assert [r.outcome for r in session.of(OrderResponse)] == [OrderOutcome.UNKNOWN] * 2
        assert client.state is S.SUBSCRIBED
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
        placed = client.add_order(
            order_type="limit",
            side="buy",
            symbol=SYMBOL,
            order_qty=Decimal("0.01"),
            limit_price=bid - Decimal(400),
        )
        session.until(lambda: bool(session.of(GapDetected)))
        (gap,) = session.of(GapDetected)
        assert gap.channel == "executions" and gap.policy == policy.value
        if policy is GapPolicy.IGNORE:
            session.until(lambda: "new" in session.execs(placed.order_id))
        else:
            session.until(
                lambda: any(
                    e.snapshot and e.order_id == placed.order_id for e in session.of(Execution)
                )
            )
    finally:
        session.close()


def bad_credentials(kind: str, sim: SimThread) -> None:
    """A refused key closes for good, with Kraken's error in the reason and no retry."""
    wrong = SIM_API_KEY[:-4] + ("BBBB" if SIM_API_KEY.endswith("AAAA") else "AAAA")
    session = Session(kind, sim, api_key=wrong).start()
    try:
        session.until(lambda: session.client.state is S.CLOSED)
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
    session = Session(kind, sim, level3=True).start()
    client = session.client
    try:
        client.subscribe("level3", SYMBOL, depth=10, wait=True, timeout=5.0)
        session.until(lambda: sum(not e.snapshot for e in session.of(L3Update)) >= 20, timeout=8.0)
        book = client.l3_book(SYMBOL)
        assert book is not None and book.is_live
        best_bid, best_ask = book.best_bid(), book.best_ask()
        assert best_bid is not None and best_ask is not None
        assert best_bid.price < best_ask.price
        assert not session.of(BookResync)
        with pytest.raises(LocalProtocolError, match="private client"):
            client.cancel_all()
    finally:
        session.close()


def dead_man_switch(kind: str, sim: SimThread) -> None:
    """Armed before connecting, refreshed by the core, disarmed by close()."""
    session = Session(kind, sim)
    session.client.arm_dead_man_switch(60, interval=20)
    session.start()
    try:
        session.until(lambda: bool(session.of(OrderResponse)))
        (armed,) = session.of(OrderResponse)
        assert armed.method == "cancel_all_orders_after" and armed.outcome is OrderOutcome.OK
        assert isinstance(armed.result, CancelAllOrdersAfterResult) and armed.result.armed
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is not None
        session.client.disarm_dead_man_switch()
        session.until(lambda: len(session.of(OrderResponse)) == 2)
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is None
        session.client.arm_dead_man_switch(60)
        session.until(lambda: len(session.of(OrderResponse)) == 3)
        assert exchange(sim, lambda ex: ex.engine.dead_man_at) is not None
    finally:
        session.close()
    end = time.monotonic() + 5
    while exchange(sim, lambda ex: ex.engine.dead_man_at) is not None:
        assert time.monotonic() < end, "close() did not disarm the dead man's switch"
        time.sleep(0.01)


def secrets_stay_out_of_logs(kind: str, sim: SimThread, caplog: pytest.LogCaptureFixture) -> None:
    """Trading at DEBUG logs neither the token nor the key nor the secret."""
    with caplog.at_level(logging.DEBUG):
        session = Session(kind, sim).start()
        try:
            session.subscribe_private()
            token = session.protocol_token()
            assert token
            bid, _ = prices(sim)
            placed = session.client.add_order(
                order_type="limit",
                side="buy",
                symbol=SYMBOL,
                order_qty=Decimal("0.01"),
                limit_price=bid - Decimal(600),
            )
            session.client.cancel_order(order_id=placed.order_id)
        finally:
            session.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    events = json.dumps([repr(e) for e in session.seen])
    for secret in (token, SIM_API_KEY, SIM_API_SECRET):
        assert secret not in logged
        assert secret not in events
