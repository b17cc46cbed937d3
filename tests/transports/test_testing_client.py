"""The in-memory client (:mod:`kraken_transports.testing`) and the pytest plugin's fixtures.

The client answers every call as the blocking drivers do (the same Driver underneath), with
waits counted in fake seconds; faults reach it as they reach the real drivers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kraken_proto import (
    BookUpdate,
    Execution,
    KrakenConnectionError,
    LocalProtocolError,
    OrderError,
    StateChanged,
    Subscribed,
    Ticker,
    Trade,
)
from kraken_proto.errors import UnknownOutcomeError, WaitTimeoutError
from kraken_proto.replay import replay
from kraken_proto.simulator import Stall
from kraken_proto.testing import deterministic_config
from kraken_pytest import _capture_path, _marker_options
from kraken_transports import ThreadedClient
from kraken_transports.simserver import SimulatorThread
from kraken_transports.testing import MemoryClient, RecordedKraken, SimulatedKraken

BTC = "BTC/USD"
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "kraken-v2-real" / "btcusd_l2.jsonl"
MARKET: dict[str, Any] = {
    "order_type": "market",
    "side": "buy",
    "symbol": BTC,
    "order_qty": Decimal("0.001"),
}


def test_subscribe_waits_in_fake_time_and_callbacks_see_every_event() -> None:
    kraken = SimulatedKraken(2, symbols=[BTC])
    seen: list[BookUpdate] = []
    with kraken.client() as client:
        client.on(BookUpdate, seen.append)
        (ack,) = client.subscribe("book", BTC, depth=10)
        assert isinstance(ack, Subscribed) and client.state.value == "subscribed"
        first = next(e for e in client.events(idle_timeout=5.0) if isinstance(e, BookUpdate))
        assert first.snapshot
        kraken.advance(5.0)
        assert client.book(BTC).is_live  # type: ignore[union-attr]
        bids, asks = client.book_snapshot(BTC, 3)  # type: ignore[misc]
        assert len(bids) == len(asks) == 3 and bids[0].price < asks[0].price
        assert client.poll() is not None
        read = sum(1 for _ in client.events(idle_timeout=0.0))
        assert read > 10 and client.poll() is None
        assert len(seen) == len(client.of(BookUpdate)) and client.history[0] is not None
        assert client.stats.received == len(client.history)
        assert [r["params"]["channel"] for r in client.requests("subscribe")] == ["book"]
        assert client.running and client.network is kraken
    assert not client.running and client.state.value == "closed"
    assert isinstance(client.get(timeout=1.0), StateChanged)  # queued events stay readable
    assert client.get(timeout=1.0) is None  # closed and drained


def test_trading_calls_return_results_and_the_executions_follow() -> None:
    kraken = SimulatedKraken(3, symbols=[BTC])
    client = kraken.client(private=True)
    client.subscribe("executions")
    result = client.add_order(**MARKET)
    assert result.order_id
    kraken.advance(1.0)
    fills = [e for e in client.of(Execution) if e.exec_type == "trade"]
    assert fills and fills[0].order_id == result.order_id
    best_bid = kraken.exchange.markets[BTC].best()[0].price
    resting = client.add_order(
        order_type="limit", side="buy", symbol=BTC, order_qty=Decimal("0.001"),
        limit_price=best_bid - 100,
    )  # fmt: skip
    (cancelled,) = client.cancel_order(order_id=resting.order_id)
    assert cancelled.order_id == resting.order_id
    kraken.halt(BTC)
    with pytest.raises(OrderError, match="cancel_only"):
        client.add_order(**MARKET)
    client.close()


def test_blocking_calls_refuse_inside_callbacks_and_non_blocking_ones_work() -> None:
    kraken = SimulatedKraken(4, symbols=[BTC])
    client = kraken.client()
    errors: list[Exception] = []

    def on_book(event: BookUpdate) -> None:
        try:
            client.subscribe("ticker", BTC)
        except LocalProtocolError as exc:
            errors.append(exc)
            if not client.subscriptions.pending and not client.subscriptions.active[1:]:
                client.subscribe("ticker", BTC, wait=False)

    client.on(BookUpdate, on_book)
    client.subscribe("book", BTC, depth=10)
    kraken.run_until(lambda: client.of(Ticker))
    assert errors and "inside a callback" in str(errors[0])
    client.close()


def test_moving_the_clock_from_a_callback_is_refused_and_counted() -> None:
    kraken = SimulatedKraken(4, symbols=[BTC])
    client = kraken.client()
    refused: list[Exception] = []

    def on_book(event: BookUpdate) -> None:
        try:
            kraken.advance(1.0)
        except LocalProtocolError as exc:
            refused.append(exc)
            raise

    client.on(BookUpdate, on_book)
    client.subscribe("book", BTC, depth=10)
    kraken.run_until(lambda: refused)
    assert "advance() cannot run inside a callback" in str(refused[0])
    assert client.stats.callback_errors == len(refused) and client.book(BTC) is not None
    client.close()


def test_a_lost_response_is_an_unknown_outcome_after_the_fake_timeout() -> None:
    kraken = SimulatedKraken(5, symbols=[BTC])
    client = kraken.client(private=True)
    client.wait_until("subscribed")
    kraken.lose_response("add_order")
    start = kraken.now
    with pytest.raises(UnknownOutcomeError):
        client.add_order(**MARKET)
    assert kraken.now - start == pytest.approx(client.config.request_timeout)
    client.close()


def test_a_stall_times_a_subscribe_out_in_fake_seconds_and_a_drop_reconnects() -> None:
    kraken = SimulatedKraken(6, symbols=[BTC])
    client = kraken.client()
    client.subscribe("book", BTC, depth=10)
    kraken.inject(Stall(None))
    with pytest.raises(WaitTimeoutError, match="within 2 s"):
        client.subscribe("trade", BTC, timeout=2.0)
    kraken.drop(client.peer)
    client.wait_until("subscribed")
    assert client.stats.reconnects == 1
    kraken.run_until(lambda: client.of(Trade))
    client.close()
    with pytest.raises(KrakenConnectionError):
        client.subscribe("ticker", BTC)


def test_a_wait_on_a_network_where_nothing_can_happen_says_so() -> None:
    kraken = RecordedKraken([])
    client = kraken.client()
    while client.poll() is not None:  # the connection's state changes
        pass
    with pytest.raises(WaitTimeoutError, match="nothing is scheduled"):
        client.get()
    client.close()


def test_a_capture_answers_a_waiting_subscribe_and_replays_exactly() -> None:
    kraken = RecordedKraken(CAPTURE)
    client = kraken.client(start=False)
    client.subscribe("book", BTC, depth=10, wait=False)
    client.start()
    kraken.finish()
    updates = client.of(BookUpdate)
    assert updates == replay(CAPTURE).of_type(BookUpdate)
    again = RecordedKraken(CAPTURE).client()
    (ack,) = again.subscribe("book", BTC, depth=10)
    assert ack.received_at == pytest.approx(0.157151)


def test_latency_tracking_reads_the_fake_wall_clock() -> None:
    kraken = SimulatedKraken(7, symbols=[BTC])
    client = MemoryClient(kraken, deterministic_config(latency=True))
    client.start()
    client.subscribe("book", BTC, depth=10)
    kraken.advance(2.0)
    assert client.latency is not None
    client.close()


def strategy(client: MemoryClient, network: SimulatedKraken | RecordedKraken) -> list[str]:
    """A user's code: the best bid after each of the first updates, the same on both."""
    bids: list[str] = []
    client.on(BookUpdate, lambda _: bids.append(str(client.book(BTC).bids(1)[0].price)))  # type: ignore[union-attr]
    client.subscribe("book", BTC, depth=10)
    network.run_until(lambda: len(bids) >= 5)
    return bids[:5]


def test_one_strategy_reads_the_same_on_the_simulator_and_on_a_capture() -> None:
    simulated = SimulatedKraken(8, symbols=[BTC])
    recorded = RecordedKraken(CAPTURE)
    on_simulator = strategy(simulated.client(), simulated)
    on_capture = strategy(recorded.client(), recorded)
    assert len(on_simulator) == len(on_capture) == 5
    assert on_capture[0] == "63004.9"  # the capture's snapshot


# ---------------------------------------------------------------------- the plugin


@pytest.mark.kraken(seed=11, symbols=[BTC], tick_rate=5.0)
def test_the_kraken_exchange_fixture_takes_the_marker(kraken_exchange: SimulatedKraken) -> None:
    assert kraken_exchange.exchange.seed == 11 and list(kraken_exchange.exchange.markets) == [BTC]
    assert kraken_exchange.exchange.tick_rate == 5.0
    client = kraken_exchange.client()
    client.subscribe("ticker", BTC)  # closed by the fixture after the test


def test_the_factories_and_the_capture_fixture(
    kraken_exchange_factory: Any, kraken_capture_factory: Any
) -> None:
    first, second = kraken_exchange_factory(seed=1), kraken_exchange_factory(seed=1)
    assert first is not second and first.exchange.seed == second.exchange.seed == 1
    capture = kraken_capture_factory(CAPTURE)
    assert capture.lines


@pytest.mark.kraken_capture("../data/kraken-v2-real/btcusd_l2.jsonl")
def test_the_kraken_capture_fixture_reads_the_marker(kraken_capture: RecordedKraken) -> None:
    client = kraken_capture.client()
    client.subscribe("book", BTC, depth=10)
    assert client.book(BTC) is not None


@pytest.mark.kraken(seed=3, symbols=[BTC])
def test_the_kraken_server_fixture_serves_on_loopback(kraken_server: SimulatorThread) -> None:
    assert kraken_server.url.startswith("ws://127.0.0.1:")
    with ThreadedClient(kraken_server.client_config()) as client:
        (ack,) = client.subscribe("ticker", BTC, timeout=20.0)
        assert ack.symbol == BTC


def test_the_markers_are_checked(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("kraken_ws_sdk")  # the pytest11 entry point

    def request(**markers: Any) -> Any:
        return SimpleNamespace(node=SimpleNamespace(get_closest_marker=markers.get))

    assert _marker_options(request()) == {}
    with pytest.raises(pytest.UsageError, match="keyword arguments only"):
        _marker_options(request(kraken=pytest.mark.kraken(7).mark))
    with pytest.raises(pytest.UsageError, match=r"needs @pytest\.mark\.kraken_capture"):
        _capture_path(request())
    capture = pytest.mark.kraken_capture
    assert _capture_path(request(kraken_capture=capture("a.jsonl").mark)) == "a.jsonl"
    assert _capture_path(request(kraken_capture=capture(path="b.jsonl").mark)) == "b.jsonl"
    for wrong in (capture(), capture("a", "b"), capture("a", path="b"), capture(file="c")):
        with pytest.raises(pytest.UsageError, match=r"needs @pytest\.mark\.kraken_capture"):
            _capture_path(request(kraken_capture=wrong.mark))


def test_importing_the_plugin_imports_nothing_of_the_sdk() -> None:
    # pytest loads entry-point plugins before coverage starts: whatever the plugin imported
    # then would count as never run. The fixtures import what they need when used.
    code = (
        "import sys, threading, kraken_pytest;"
        "print(threading.active_count(), sorted(m for m in sys.modules"
        " if m.startswith(('hypothesis', 'kraken_proto', 'kraken_transports'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "[]"]


# ---------------------------------------------------------------------- the asyncio twin


async def async_strategy(network: SimulatedKraken) -> tuple[int, str]:
    """Code written for ``connect()``: the same calls, awaited."""
    async with network.async_client(private=True) as trading:
        await trading.subscribe("executions")
        result = await trading.add_order(**MARKET)
        async with network.async_client() as market:
            await market.subscribe("book", BTC, depth=10)
            updates = 0
            async for event in market:
                if isinstance(event, BookUpdate):
                    updates += 1
                    if updates == 20:
                        break
        return updates, result.order_id


def test_the_async_client_runs_code_written_for_connect_deterministically() -> None:
    runs = [asyncio.run(async_strategy(SimulatedKraken(9, symbols=[BTC]))) for _ in range(2)]
    assert runs[0] == runs[1] and runs[0][0] == 20


def test_the_async_client_times_out_in_fake_seconds_and_iteration_ends_when_closed() -> None:
    async def run() -> None:
        kraken = SimulatedKraken(10, symbols=[BTC])
        client = kraken.async_client()
        assert not client.running and client.network is kraken
        await client.start()
        await client.subscribe("book", BTC, depth=10)
        kraken.advance(1.0)
        kraken.stall(None)
        start = kraken.now
        with pytest.raises(WaitTimeoutError):
            await client.subscribe("trade", BTC, timeout=3.0)
        assert kraken.now - start == pytest.approx(3.0)
        assert client.of(BookUpdate) and client.history and client.peer.frames
        await client.close()
        drained = [event async for event in client.events()]
        assert drained and not client.running
        empty = RecordedKraken([]).async_client()
        await empty.start()
        with pytest.raises(WaitTimeoutError, match="nothing is scheduled"):
            await empty.wait_until("closed")

    asyncio.run(run())


@pytest.mark.kraken(seed=1, symbols=[BTC])
def test_the_fixture_closes_async_clients_too(kraken_exchange: SimulatedKraken) -> None:
    client = kraken_exchange.async_client()
    asyncio.run(client.start())
    assert client.running  # left open: the fixture closes it
