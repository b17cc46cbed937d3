"""The asyncio driver's authenticated half against the simulator, on loopback only.

Token fetch, private streams, trading, faults on the auth host (lost responses, sequence
gaps, bad credentials), the level3 host, the dead man's switch and secret redaction. Every
test is bounded by ``asyncio.wait_for``; none asserts on timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aiohttp import web

from kraken_proto import (
    BookResync,
    ClientConfig,
    ConnectionState,
    KrakenConnectionError,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
)
from kraken_proto.auth import TOKEN_PATH, TokenRequest
from kraken_proto.config import GapPolicy
from kraken_proto.errors import (
    InvalidRequestError,
    OrderError,
    UnknownOutcomeError,
)
from kraken_proto.events import Event
from kraken_proto.level3 import L3Update
from kraken_proto.private import Balance, Execution, GapDetected
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
from kraken_proto.simulator.faults import Drop, LoseResponse, SequenceGap
from kraken_proto.trading import (
    AddOrder,
    AddOrderResult,
    BatchOrder,
    CancelAllOrdersAfterResult,
    OrderOutcome,
    OrderResponse,
)
from kraken_transports import aio
from kraken_transports.aio import AsyncClient, connect
from kraken_transports.simserver import SimServer, run_simulator

T = TypeVar("T")
S = ConnectionState
FAST_RECONNECT = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)
SYMBOL = "BTC/USD"


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run ``coro`` on a fresh event loop, failing the test after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def private_config(sim: SimServer, **overrides: Any) -> ClientConfig:
    """A configuration for the simulator's hosts with its test credentials."""
    values: dict[str, Any] = {
        "endpoint": sim.url,
        "auth_endpoint": sim.auth_url,
        "level3_endpoint": sim.level3_url,
        "rest_url": sim.rest_url,
        "api_key": SIM_API_KEY,
        "api_secret": SIM_API_SECRET,
        "reconnect": FAST_RECONNECT,
        "ping_interval": None,
        "ack_timeout": 2.0,
        "timeout": 3.0,
        "request_timeout": 3.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def prices(sim: SimServer, symbol: str = SYMBOL) -> tuple[Decimal, Decimal]:
    """The simulated market's best bid and ask now."""
    bids, asks = sim.exchange.markets[symbol].book(1)
    return bids[0].price, asks[0].price


def execs(seen: list[Event], order_id: str) -> list[str]:
    """The exec_types reported for ``order_id``, in order (snapshots left out)."""
    return [
        e.exec_type
        for e in seen
        if isinstance(e, Execution) and e.order_id == order_id and not e.snapshot
    ]


async def subscribed_client(sim: SimServer, seen: list[Event], **overrides: Any) -> AsyncClient:
    client = connect(private_config(sim, **overrides), private=True)
    client.on(None, seen.append)
    await client.start()
    await client.subscribe("executions", snap_orders=True)
    await client.subscribe("balances")
    return client


# --------------------------------------------------------------------------- construction


def test_private_and_level3_need_credentials() -> None:
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        connect(ClientConfig(), private=True)
    with pytest.raises(LocalProtocolError, match="api_key and api_secret"):
        AsyncClient(ClientConfig(), level3=True)


def test_trading_needs_a_private_running_client() -> None:
    async def main() -> None:
        public = connect(ClientConfig())
        with pytest.raises(LocalProtocolError, match="private client"):
            await public.cancel_all()
        async with run_simulator(seed=1) as sim:
            client = connect(private_config(sim), private=True)
            with pytest.raises(LocalProtocolError, match="running client"):
                await client.cancel_all()
            # Bad fields raise before anything happens, unchanged.
            with pytest.raises(InvalidRequestError) as info:
                await client.add_order(order_type="limit", side="buy", symbol=SYMBOL)
            assert info.value.field == "order_qty"

    run(main())


# --------------------------------------------------------------------------- end to end


def test_token_streams_and_a_full_order_life_cycle() -> None:
    async def main() -> None:
        async with run_simulator(seed=3) as sim:
            seen: list[Event] = []
            client = connect(private_config(sim), private=True)
            client.on(None, seen.append)
            async with client:
                # Submitted before the connection is up: waits for 'subscribed'.
                bid, _ = prices(sim)
                rest_price = bid - Decimal("500.0")
                placed = await client.add_order(
                    order_type="limit",
                    side="buy",
                    symbol=SYMBOL,
                    order_qty=Decimal("0.01"),
                    limit_price=rest_price,
                    cl_ord_id="resting-1",
                    timeout=5.0,
                )
                assert isinstance(placed, AddOrderResult)
                assert placed.order_id.startswith("O") and placed.cl_ord_id == "resting-1"
                assert states(seen)[:3] == ["connecting", "authenticating", "subscribing"]
                assert client.state is S.SUBSCRIBED

                acks = await client.subscribe("executions", snap_orders=True)
                assert [(a.channel, a.symbol) for a in acks] == [("executions", None)]
                await client.subscribe("balances")
                await until(lambda: any(isinstance(e, Balance) and e.snapshot for e in seen))
                snap = [e for e in seen if isinstance(e, Execution) and e.snapshot]
                assert [(e.order_id, e.limit_price) for e in snap] == [
                    (placed.order_id, rest_price)
                ]
                usd = next(e for e in seen if isinstance(e, Balance) and e.asset == "USD")
                assert usd.balance == Decimal("1000000")

                amended = await client.amend_order(
                    order_id=placed.order_id, order_qty=Decimal("0.02"), limit_price=rest_price
                )
                assert amended.order_id == placed.order_id and amended.amend_id
                await until(lambda: "amended" in execs(seen, placed.order_id))
                report = [e for e in seen if isinstance(e, Execution) and e.exec_type == "amended"][
                    -1
                ]
                assert report.order_qty == Decimal("0.02")

                cancelled = await client.cancel_order(order_id=placed.order_id)
                assert [c.order_id for c in cancelled] == [placed.order_id]
                await until(lambda: "canceled" in execs(seen, placed.order_id))
                assert client.pending_requests == 0

                # A marketable order fills; the balances move by exactly the fill.
                before = len(seen)
                taken = await client.add_order(
                    order_type="market", side="buy", symbol=SYMBOL, order_qty=Decimal("0.001")
                )
                await until(lambda: "filled" in execs(seen, taken.order_id))
                fills = [
                    e
                    for e in seen[before:]
                    if isinstance(e, Execution)
                    and e.order_id == taken.order_id
                    and e.exec_type == "trade"
                ]
                assert sum((f.last_qty or Decimal(0)) for f in fills) == Decimal("0.001")
                await until(
                    lambda: any(
                        isinstance(e, Balance) and e.asset == "BTC" and not e.snapshot
                        for e in seen[before:]
                    )
                )
                btc = [
                    e
                    for e in seen[before:]
                    if isinstance(e, Balance) and e.asset == "BTC" and not e.snapshot
                ]
                assert sum((b.amount or Decimal(0)) for b in btc) == Decimal("0.001")
                assert btc[-1].balance == Decimal("10.001")
                assert sim.exchange.account.balances["BTC"] == Decimal("10.001")

                # Every request settled once, as an event too, with its req_id.
                responses = [e for e in seen if isinstance(e, OrderResponse)]
                assert [r.method for r in responses] == [
                    "add_order",
                    "amend_order",
                    "cancel_order",
                    "add_order",
                ]
                assert len({r.req_id for r in responses}) == 4
                assert all(r.outcome is OrderOutcome.OK for r in responses)
                assert client.rate_counter(SYMBOL).symbol == SYMBOL

    run(main())


def test_batches_cancel_all_and_a_refusal() -> None:
    async def main() -> None:
        async with run_simulator(seed=4) as sim:
            seen: list[Event] = []
            client = await subscribed_client(sim, seen)
            try:
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
                batch = await client.batch_add(SYMBOL, orders)
                ids = [row.order_id or "" for row in batch.orders]
                assert len(ids) == 3 and all(ids)
                cancelled = await client.batch_cancel([ids[0], ids[1]])
                assert cancelled.count == 2
                edited = await client.edit_order(
                    order_id=ids[2], symbol=SYMBOL, limit_price=bid - Decimal(300)
                )
                assert edited.original_order_id == ids[2] and edited.order_id != ids[2]
                assert (await client.cancel_all()).count == 1
                with pytest.raises(OrderError) as info:
                    await client.add_order(
                        order_type="limit",
                        side="buy",
                        symbol=SYMBOL,
                        order_qty=Decimal("0.00000001"),
                        limit_price=bid - Decimal(100),
                    )
                assert info.value.error == "EOrder:Order minimum not met"
                refused = [
                    e
                    for e in seen
                    if isinstance(e, OrderResponse) and e.outcome is OrderOutcome.REJECTED
                ]
                assert [r.error for r in refused] == ["EOrder:Order minimum not met"]
            finally:
                await client.close()

    run(main())


def test_lost_response_is_an_unknown_outcome_and_the_order_still_shows() -> None:
    async def main() -> None:
        async with run_simulator(seed=5) as sim:
            seen: list[Event] = []
            client = await subscribed_client(sim, seen, request_timeout=0.3)
            try:
                await sim.inject(LoseResponse("add_order"))
                bid, _ = prices(sim)
                with pytest.raises(UnknownOutcomeError) as info:
                    await client.add_order(
                        order_type="limit",
                        side="buy",
                        symbol=SYMBOL,
                        order_qty=Decimal("0.01"),
                        limit_price=bid - Decimal(200),
                        cl_ord_id="lost-1",
                    )
                assert info.value.method == "add_order"
                assert "no response within 0.3 s" in str(info.value)
                # The order was placed: the executions stream tells what happened.
                await until(
                    lambda: any(
                        isinstance(e, Execution)
                        and e.cl_ord_id == "lost-1"
                        and e.exec_type == "new"
                        for e in seen
                    )
                )
                unknown = [e for e in seen if isinstance(e, OrderResponse)]
                assert [r.outcome for r in unknown] == [OrderOutcome.UNKNOWN]
                assert client.state is S.SUBSCRIBED
            finally:
                await client.close()

    run(main())


def test_submit_timeout_leaves_the_request_in_flight() -> None:
    async def main() -> None:
        async with run_simulator(seed=6) as sim:
            seen: list[Event] = []
            client = await subscribed_client(sim, seen, request_timeout=0.5)
            try:
                await sim.inject(LoseResponse())
                bid, _ = prices(sim)
                request = AddOrder(
                    order_type="limit",
                    side="sell",
                    symbol=SYMBOL,
                    order_qty=Decimal("0.01"),
                    limit_price=bid + Decimal(900),
                )
                with pytest.raises(TimeoutError, match="still in flight"):
                    await client.submit(request, timeout=0.05)
                assert client.pending_requests == 1
                await until(lambda: any(isinstance(e, OrderResponse) for e in seen))
                (late,) = [e for e in seen if isinstance(e, OrderResponse)]
                assert late.outcome is OrderOutcome.UNKNOWN and late.method == "add_order"
                assert client.pending_requests == 0
            finally:
                await client.close()

    run(main())


def test_submit_waits_for_the_connection_and_honours_its_timeout() -> None:
    async def main() -> None:
        async with run_simulator(seed=7) as sim:
            sim.exchange.inject_token_error("EService:Unavailable", count=1000)
            async with connect(private_config(sim), private=True) as client:
                with pytest.raises(TimeoutError, match="did not become 'subscribed'"):
                    await client.cancel_all(timeout=0.3)
                assert client.pending_requests == 0
                sim.exchange.inject_token_error("EService:Unavailable", 1)  # then tokens flow
                result = await client.cancel_all(timeout=5.0)
                assert result.count == 0
            # A closed client cannot trade.
            with pytest.raises(KrakenConnectionError):
                await client.cancel_all()

    run(main())


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_sequence_gap_under_each_policy(policy: GapPolicy) -> None:
    async def main() -> None:
        async with run_simulator(seed=8) as sim:
            seen: list[Event] = []
            client = await subscribed_client(sim, seen, gap_policy=policy, gap_buffer_timeout=0.2)
            try:
                await sim.inject(SequenceGap("executions"))
                bid, _ = prices(sim)
                placed = await client.add_order(
                    order_type="limit",
                    side="buy",
                    symbol=SYMBOL,
                    order_qty=Decimal("0.01"),
                    limit_price=bid - Decimal(400),
                )
                await until(lambda: any(isinstance(e, GapDetected) for e in seen))
                (gap,) = [e for e in seen if isinstance(e, GapDetected)]
                assert gap.channel == "executions" and gap.policy == policy.value
                assert gap.received == gap.expected + 1
                if policy is GapPolicy.IGNORE:
                    # Reported and carried on: the reports after the hole are delivered.
                    await until(lambda: "new" in execs(seen, placed.order_id))
                else:
                    # A fresh snapshot rebuilds the stream; it lists the open order.
                    await until(
                        lambda: any(
                            isinstance(e, Execution)
                            and e.snapshot
                            and e.order_id == placed.order_id
                            for e in seen
                        )
                    )
                assert client.state is S.SUBSCRIBED
            finally:
                await client.close()

    run(main())


def test_bad_credentials_close_for_good_with_the_auth_error() -> None:
    wrong_key = SIM_API_KEY[:-4] + ("AAAA" if not SIM_API_KEY.endswith("AAAA") else "BBBB")

    async def main() -> None:
        async with run_simulator(seed=9) as sim:
            seen: list[StateChanged] = []
            client = connect(private_config(sim, api_key=wrong_key), private=True)
            client.on(StateChanged, seen.append)
            async with client:
                with pytest.raises(KrakenConnectionError) as info:
                    await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                assert "EAPI:Invalid key" in str(info.value)
                assert client.state is S.CLOSED
            assert states(seen) == ["connecting", "authenticating", "closed"]
            reason = seen[-1].reason
            assert "EAPI:Invalid key" in reason and "not retrying" in reason
            assert wrong_key not in reason and SIM_API_SECRET not in reason
            assert sim.exchange.tokens.issued == 0

    run(main())


def test_token_request_cancelled_when_the_connection_drops() -> None:
    """A drop while the token is being fetched cancels that fetch; the reconnect asks again."""

    async def main() -> None:
        async with run_simulator(seed=10) as sim:
            arrived = asyncio.Event()
            calls: list[int] = []

            async def token(request: web.Request) -> web.Response:
                calls.append(len(calls))
                if len(calls) == 1:
                    arrived.set()
                    await asyncio.sleep(30)  # never answers: the client gives up on it
                return await sim._token(request)

            app = web.Application()
            app.router.add_post(TOKEN_PATH, token)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            rest_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            try:
                seen: list[Event] = []
                client = connect(private_config(sim, rest_url=rest_url), private=True)
                client.on(StateChanged, seen.append)
                async with client:
                    await arrived.wait()
                    first = client._token_task
                    assert first is not None and not first.done()
                    await sim.inject(Drop())
                    await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                    assert first.cancelled()
                    assert len(calls) == 2
                    assert sim.exchange.tokens.issued == 1
                    assert states(seen)[:4] == [
                        "connecting",
                        "authenticating",
                        "degraded",
                        "connecting",
                    ]
            finally:
                await runner.cleanup()

    run(main())


def test_closing_while_the_token_is_fetched_cancels_the_fetch() -> None:
    async def main() -> None:
        async with run_simulator(seed=14) as sim:
            arrived = asyncio.Event()

            async def token(request: web.Request) -> web.Response:
                arrived.set()
                await asyncio.sleep(30)
                raise AssertionError("never answered")  # pragma: no cover

            app = web.Application()
            app.router.add_post(TOKEN_PATH, token)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            rest_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            try:
                client = connect(private_config(sim, rest_url=rest_url), private=True)
                async with client:
                    await arrived.wait()
                    fetch = client._token_task
                    assert fetch is not None
                    with pytest.raises(TimeoutError, match="did not become 'subscribed'"):
                        await client.cancel_all(timeout=0)
                assert fetch.cancelled()
                assert client.state is S.CLOSED and client._token_task is None
            finally:
                await runner.cleanup()

    run(main())


def test_a_failing_token_fetch_is_retried_and_a_stale_answer_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = aio.fetch_token_async  # type: ignore[attr-defined]
    calls: list[int] = []

    async def flaky(session: Any, request: Any, timeout: float) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the fetch")
        return await real(session, request, timeout)

    monkeypatch.setattr(aio, "fetch_token_async", flaky)

    async def main() -> None:
        async with run_simulator(seed=15) as sim:
            seen: list[StateChanged] = []
            client = connect(private_config(sim), private=True)
            client.on(StateChanged, seen.append)
            async with client:
                await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                assert states(seen) == [
                    "connecting",
                    "authenticating",
                    "degraded",
                    "connecting",
                    "authenticating",
                    "subscribing",
                    "subscribed",
                ]
                assert "token request failed: RuntimeError" in seen[2].reason
                # An answer for a connection that is no longer current is dropped.
                stale = aio._Connection(sim.auth_url)
                request = TokenRequest(
                    rest_url=sim.rest_url, api_key=SIM_API_KEY, api_secret=SIM_API_SECRET
                )
                await client._token(stale, request)
                assert client.state is S.SUBSCRIBED

    with caplog.at_level(logging.DEBUG, logger="kraken_transports"):
        run(main())
    assert len(calls) == 3
    assert "token result dropped" in caplog.text


def test_level3_book_is_live_and_verified() -> None:
    async def main() -> None:
        async with run_simulator(seed=11) as sim:
            seen: list[Event] = []
            client = connect(private_config(sim), level3=True)
            client.on(None, seen.append)
            async with client:
                await client.subscribe("level3", SYMBOL, depth=10)
                await until(
                    lambda: sum(isinstance(e, L3Update) and not e.snapshot for e in seen) >= 20,
                    timeout=8.0,
                )
                book = client.l3_book(SYMBOL)
                assert book is not None and book.is_live
                assert book.checksum() == [e for e in seen if isinstance(e, L3Update)][-1].checksum
                best_bid, best_ask = book.best_bid(), book.best_ask()
                assert best_bid is not None and best_ask is not None
                assert best_bid.price < best_ask.price
                assert not [e for e in seen if isinstance(e, BookResync)]
                assert client.l3_book("ETH/USD") is None
                with pytest.raises(LocalProtocolError):
                    await client.cancel_all()

    run(main())


def test_dead_man_switch_armed_then_disarmed_on_close() -> None:
    async def main() -> None:
        async with run_simulator(seed=12) as sim:
            seen: list[OrderResponse] = []
            sent: list[str] = []
            client = connect(
                private_config(sim),
                private=True,
                frame_hook=lambda d, text, now: sent.append(str(text)) if d == "out" else None,
            )
            client.on(OrderResponse, seen.append)
            client.arm_dead_man_switch(60, interval=20)  # before start: sent once authenticated
            async with client:
                await until(lambda: bool(seen))
                (armed,) = seen
                assert armed.method == "cancel_all_orders_after"
                assert armed.outcome is OrderOutcome.OK
                assert isinstance(armed.result, CancelAllOrdersAfterResult)
                assert armed.result.armed
                assert sim.exchange.engine.dead_man_at is not None
                result = await client.cancel_all_orders_after(60)
                assert result.armed
            await until(lambda: sim.exchange.engine.dead_man_at is None)
            disarms = [
                json.loads(t) for t in sent if "cancel_all_orders_after" in t and '"timeout":0' in t
            ]
            assert len(disarms) == 1

            # Disarming by hand sends timeout 0 while connected.
            seen.clear()
            again = connect(private_config(sim), private=True)
            again.on(OrderResponse, seen.append)
            async with again:
                again.arm_dead_man_switch(30)
                await again.cancel_all()  # settled while the switch's answer also arrives
                await until(lambda: len(seen) == 2)
                seen.remove(next(r for r in seen if r.method == "cancel_all"))
                again.disarm_dead_man_switch()
                await until(lambda: len(seen) == 2)
                assert isinstance(seen[1].result, CancelAllOrdersAfterResult)
                assert not seen[1].result.armed
                assert sim.exchange.engine.dead_man_at is None

    run(main())


def test_secrets_never_reach_logs_or_the_frame_hook(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        async with run_simulator(seed=13) as sim:
            frames: list[str] = []
            client = connect(
                private_config(sim),
                private=True,
                frame_hook=lambda d, text, now: frames.append(f"{d} {text!s}"),
            )
            async with client:
                await client.subscribe("executions")
                await client.subscribe("balances")
                token = client.protocol._token
                assert token
                bid, _ = prices(sim)
                placed = await client.add_order(
                    order_type="limit",
                    side="buy",
                    symbol=SYMBOL,
                    order_qty=Decimal("0.01"),
                    limit_price=bid - Decimal(600),
                )
                await client.cancel_order(order_id=placed.order_id)
                await sim.inject(Drop())  # the reconnect fetches a second token
                await client.wait_until(S.DEGRADED, timeout=5.0)
                await client.wait_until(S.SUBSCRIBED, timeout=5.0)
                second = client.protocol._token
                assert second and second != token
                await client.cancel_all()
            outgoing = [f for f in frames if f.startswith("out ")]
            assert any('"token":"***"' in f for f in outgoing)
            return [token, second, "\n".join(frames)]

    with caplog.at_level(logging.DEBUG):
        token, second, frames = run(main())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token request" not in logged or "failed" not in logged
    for secret in (token, second, SIM_API_KEY, SIM_API_SECRET):
        assert secret not in frames
        assert secret not in logged


def states(events: Sequence[Event]) -> list[str]:
    """The ``new`` states of the StateChanged events, in order."""
    return [e.new for e in events if isinstance(e, StateChanged)]
