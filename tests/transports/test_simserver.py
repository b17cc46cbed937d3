"""The simulator's loopback aiohttp server: real sockets on 127.0.0.1, bounded waits."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar, get_type_hints

import aiohttp
import pytest

from kraken_proto import ClientConfig, ConnectionState, ReconnectConfig
from kraken_proto.auth import TOKEN_PATH, TokenRequest, parse_token_response
from kraken_proto.checksum import book_checksum
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    SIM_API_KEY,
    SIM_API_SECRET,
    Close,
    CorruptChecksum,
    Drop,
    FakeExchange,
    RateLimit,
    Stall,
)
from kraken_transports import SimulatorThread as ExportedSimulatorThread
from kraken_transports import SocketClient
from kraken_transports.simserver import (
    ClientSettings,
    SimulatorThread,
    _is_loopback,
    client_settings,
    run_simulator,
)

T = TypeVar("T")
SYMBOLS = ["BTC/USD", "ETH/USD"]


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> Any:
    message = await ws.receive(timeout)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> Any:
    """Read until the socket ends; the last message (CLOSE, CLOSED or ERROR)."""
    while True:
        message = await ws.receive(timeout)
        if message.type is not aiohttp.WSMsgType.TEXT:
            return message


def subscribe(channel: str, **params: Any) -> str:
    return json.dumps({"method": "subscribe", "params": {"channel": channel, **params}})


def test_streams_all_public_channels_for_two_symbols() -> None:
    async def main() -> None:
        async with run_simulator(seed=1) as sim, aiohttp.ClientSession() as session:
            assert sim.url.startswith("ws://127.0.0.1:") and sim.url.endswith("/v2")
            assert sim.port > 0 and isinstance(sim.exchange, FakeExchange)
            async with session.ws_connect(sim.url) as ws:
                status = await receive_json(ws)
                assert status["channel"] == "status"
                await sim.wait_for_connections(1)
                assert (
                    status["data"][0]["connection_id"] == sim.connections[0].protocol.connection_id
                )
                await ws.send_str(subscribe("book", symbol=SYMBOLS, depth=25))
                await ws.send_str(subscribe("ticker", symbol=SYMBOLS))
                await ws.send_str(subscribe("trade", symbol=SYMBOLS, snapshot=True))
                await ws.send_str(subscribe("ohlc", symbol=SYMBOLS, interval=1))
                acks: list[tuple[str, str]] = []
                snapshots: set[tuple[str, str]] = set()
                updates: set[tuple[str, str]] = set()
                heartbeats = 0
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline and (len(updates) < 8 or heartbeats < 1):
                    frame = await receive_json(ws)
                    if frame.get("method") == "subscribe":
                        assert frame["success"] is True
                        acks.append((frame["result"]["channel"], frame["result"]["symbol"]))
                    elif frame["channel"] == "heartbeat":
                        heartbeats += 1
                    else:
                        data = frame["data"]
                        entry = data[0] if data else {"symbol": "?"}
                        kind = (frame["channel"], entry["symbol"])
                        (snapshots if frame["type"] == "snapshot" else updates).add(kind)
                wanted = {(c, s) for c in ("book", "ticker", "trade", "ohlc") for s in SYMBOLS}
                assert sorted(acks) == sorted(wanted)
                assert snapshots == wanted
                assert updates == wanted
                assert heartbeats >= 1

    run(main(), timeout=15)


def test_two_clients_at_once_on_both_paths() -> None:
    async def main() -> None:
        # Snapshots right after the ack: both clients' updates then start together.
        async with (
            run_simulator(seed=2, snapshot_delay=None) as sim,
            aiohttp.ClientSession() as session,
        ):
            root = sim.url.removesuffix("/v2") + "/"
            async with session.ws_connect(sim.url) as one, session.ws_connect(root) as two:
                for ws in (one, two):
                    assert (await receive_json(ws))["channel"] == "status"
                    await ws.send_str(subscribe("book", symbol=["BTC/USD"]))
                await sim.wait_for_connections(2)
                ids = {c.protocol.connection_id for c in sim.connections}
                assert len(ids) == 2
                seen: list[list[dict[str, Any]]] = [[], []]
                for index, ws in enumerate((one, two)):
                    while len(seen[index]) < 6:
                        frame = await receive_json(ws)
                        if frame.get("channel") == "book" and frame["type"] == "update":
                            seen[index].append(frame["data"][0])
                # The market is shared: both clients see the same updates.
                first = {entry["timestamp"]: entry for entry in seen[0]}
                common = [entry for entry in seen[1] if entry["timestamp"] in first]
                assert common and all(first[e["timestamp"]] == e for e in common)
            for _ in range(100):
                if not sim.connections:
                    break
                await asyncio.sleep(0.02)
            assert sim.connections == []

    run(main())


def test_drop_ends_the_connection_without_a_close_frame() -> None:
    async def main() -> None:
        async with (
            run_simulator(seed=3) as sim,
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.url) as ws,
        ):
            await receive_json(ws)
            await ws.send_str(subscribe("ticker", symbol=["BTC/USD"]))
            await receive_json(ws)
            await sim.inject(Drop())
            final = await until_closed(ws)
            assert final.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert final.type is not aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1006

    run(main())


def test_close_1008_reaches_the_client_and_the_rest_go_on() -> None:
    async def main() -> None:
        async with (
            run_simulator(seed=4) as sim,
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.url) as ws,
            session.ws_connect(sim.url) as other,
        ):
            await receive_json(ws)
            await receive_json(other)
            await sim.wait_for_connections(2)
            await other.send_str(json.dumps({"method": "ping", "req_id": 1}))
            assert (await receive_json(other))["method"] == "pong"
            first = sim.connections[0]
            await sim.inject(Close(1008, "policy"), first)
            final = await until_closed(ws)
            assert final.type is aiohttp.WSMsgType.CLOSE
            assert final.data == 1008 and final.extra == "policy"
            assert first.closed and first.protocol.closed
            await sim.inject(RateLimit(), first)  # finished: ignored
            await other.send_str(json.dumps({"method": "ping", "req_id": 2}))
            assert (await receive_json(other))["req_id"] == 2

    run(main())


def test_corrupt_checksum_and_stall_over_the_wire() -> None:
    async def main() -> None:
        async with run_simulator(seed=5, tick_rate=50.0) as sim, aiohttp.ClientSession() as s:
            assert sim.exchange.tick_rate == 50.0
            async with s.ws_connect(sim.url) as ws:
                await receive_json(ws)
                await ws.send_str(subscribe("book", symbol=["BTC/USD"]))
                bids: dict[Decimal, Decimal] = {}
                asks: dict[Decimal, Decimal] = {}
                results = []
                while len(results) < 30:
                    message = await ws.receive(3.0)
                    frame = json.loads(message.data, parse_float=Decimal)
                    if frame.get("channel") != "book":
                        continue
                    entry = frame["data"][0]
                    for side, levels, best_first in (
                        (bids, entry["bids"], True),
                        (asks, entry["asks"], False),
                    ):
                        for level in levels:
                            if level["qty"] == 0:
                                side.pop(level["price"])
                            else:
                                side[level["price"]] = level["qty"]
                        for price in sorted(side, reverse=best_first)[10:]:
                            del side[price]
                    top = (sorted(asks.items())[:10], sorted(bids.items(), reverse=True)[:10])
                    results.append(book_checksum(*top, 1, 8) == entry["checksum"])
                    if len(results) == 10:
                        await sim.inject(CorruptChecksum("BTC/USD"))
                assert results.count(False) == 1 and results.index(False) >= 10

                await sim.inject(Stall(0.6))
                await ws.send_str(json.dumps({"method": "ping"}))  # ignored while stalled
                arrivals = [time.monotonic()]
                end = time.monotonic() + 1.5
                while time.monotonic() < end:
                    frame = await receive_json(ws)
                    arrivals.append(time.monotonic())
                    assert frame.get("method") != "pong"
                gaps = [b - a for a, b in itertools.pairwise(arrivals)]
                assert 0.45 < max(gaps) < 1.5

    run(main())


def test_exit_closes_clients_with_1001_quickly() -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with run_simulator(seed=6) as sim:
                ws = await session.ws_connect(sim.url)
                await receive_json(ws)
                await ws.send_str(subscribe("book", symbol=["BTC/USD"], depth=1000))
                await sim.wait_for_connections(1)
                started = time.monotonic()
            # The client never read nor answered the close; the server did not wait for it.
            assert time.monotonic() - started < 2.0
            final = await until_closed(ws)
            assert final.type is aiohttp.WSMsgType.CLOSE
            assert (final.data, final.extra) == (1001, "Server shutdown")
            await ws.close()

    run(main())


def test_a_given_exchange_and_loopback_only() -> None:
    exchange = FakeExchange(seed=9, symbols={"ETH/USD": DEFAULT_SYMBOLS["ETH/USD"]})

    async def main() -> None:
        async with run_simulator("::1", exchange=exchange) as sim, aiohttp.ClientSession() as s:
            assert sim.url.startswith("ws://[::1]:")
            assert sim.exchange is exchange
            async with s.ws_connect(sim.url) as ws:
                await receive_json(ws)
                await ws.send_str(subscribe("book", symbol=["BTC/USD"]))
                frame = await receive_json(ws)
                assert frame["error"] == "Currency pair not supported BTC/USD"
        with pytest.raises(ValueError, match="allow_remote"):
            async with run_simulator("0.0.0.0"):
                pass  # pragma: no cover

    try:
        run(main())
    except OSError as exc:  # pragma: no cover - a host without IPv6
        pytest.skip(f"no IPv6 loopback: {exc}")
    assert _is_loopback("localhost") and _is_loopback("127.0.0.2") and _is_loopback("::1")
    assert not _is_loopback("example.com") and not _is_loopback("10.0.0.1")


def test_serve_prints_the_url_and_stops_on_ctrl_c() -> None:
    code = "from kraken_transports.simserver import serve; serve('127.0.0.1', 0, 7)"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Kraken simulator (seed 7) listening on 127.0.0.1:")
        while not line.startswith("  endpoint "):
            line = process.stdout.readline()
            assert line, "no endpoint printed"
        url = line.split()[1]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v2")

        async def probe() -> Any:
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                return await receive_json(ws)

        assert run(probe())["channel"] == "status"
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0
        assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:  # pragma: no cover
            process.kill()
            process.wait(5)


def test_token_post_then_auth_subscribe_and_trade_over_loopback() -> None:
    async def main() -> None:
        async with run_simulator(seed=4, symbols={"BTC/USD": DEFAULT_SYMBOLS["BTC/USD"]}) as sim:
            assert sim.rest_url == f"http://127.0.0.1:{sim.port}"
            assert sim.auth_url == f"ws://127.0.0.1:{sim.port}/auth/v2"
            assert sim.level3_url == f"ws://127.0.0.1:{sim.port}/l3/v2"
            request = TokenRequest(sim.rest_url, SIM_API_KEY, SIM_API_SECRET).build(time.time())
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    request.url, data=request.body, headers=dict(request.headers)
                ) as response:
                    assert response.status == 200
                    token = parse_token_response(await response.read())
                async with session.post(sim.rest_url + TOKEN_PATH, data=b"nonce=1") as response:
                    assert json.loads(await response.read()) == {"error": ["EAPI:Invalid key"]}
                async with session.ws_connect(sim.auth_url) as ws:
                    assert (await receive_json(ws))["channel"] == "status"
                    await ws.send_str(subscribe("book", symbol=["BTC/USD"]))
                    error = await receive_json(ws)
                    assert error["error"].startswith("Public market data subscriptions")
                    await ws.send_str(subscribe("executions", token=token))
                    assert (await receive_json(ws))["result"]["channel"] == "executions"
                    assert (await receive_json(ws))["sequence"] == 1
                    order = {
                        "order_type": "market",
                        "side": "buy",
                        "order_qty": 0.001,
                        "symbol": "BTC/USD",
                        "token": token,
                    }
                    await ws.send_str(json.dumps({"method": "add_order", "params": order}))
                    response = await receive_json(ws)
                    assert response["method"] == "add_order" and response["success"] is True
                    report = await receive_json(ws)
                    assert report["channel"] == "executions" and report["sequence"] == 2
                async with session.ws_connect(sim.level3_url) as ws:
                    assert (await receive_json(ws))["channel"] == "status"
                    await ws.send_str(subscribe("level3", symbol=["BTC/USD"], token=token))
                    assert (await receive_json(ws))["result"]["channel"] == "level3"
                    snapshot = await receive_json(ws)
                    assert snapshot["channel"] == "level3" and snapshot["type"] == "snapshot"

    run(main())


# --------------------------------------------------------------------------- SimulatorThread

FIELDS = ("endpoint", "auth_endpoint", "level3_endpoint", "rest_url", "api_key", "api_secret")


def test_client_settings_are_typed_ClientConfig_fields() -> None:
    # ClientConfig(**client_settings(sim)) type-checks: each key is a field taking a str.
    assert get_type_hints(client_settings)["return"] is ClientSettings
    hints = get_type_hints(ClientSettings)
    assert tuple(hints) == FIELDS and set(hints.values()) == {str}
    field_types = {f.name: f.type for f in dataclasses.fields(ClientConfig)}
    assert all(field_types[name] in ("str", "str | None") for name in FIELDS), field_types


def test_simulator_thread_serves_blocking_clients_and_injects_faults() -> None:
    started = time.monotonic()
    with SimulatorThread(seed=3, timeout=5.0) as sim:
        assert time.monotonic() - started < 5.0
        assert sim.url.startswith("ws://127.0.0.1:") and sim.url.endswith("/v2")
        assert sim.url == sim.server.url
        # client_config: every host and the test credentials, overrides win
        fast = ReconnectConfig(initial_delay=0.05, jitter=0.0)
        config = sim.client_config(reconnect=fast, ping_interval=None)
        assert isinstance(config, ClientConfig)
        assert {name: getattr(config, name) for name in FIELDS} == sim.client_settings()
        assert (config.endpoint, config.api_key) == (sim.url, SIM_API_KEY)
        assert (config.reconnect, config.ping_interval) == (fast, None)
        assert sim.server.client_config() == ClientConfig(**client_settings(sim.server))

        with SocketClient(config) as client:
            client.subscribe("ticker", ["BTC/USD"], timeout=5)
            sim.wait_for_connections(1, timeout=5)
            assert sim.call(lambda: len(sim.server.connections)) == 1  # plain function
            sim.inject(Drop())  # thread-safe: applied on the simulator's loop
            client.wait_until(ConnectionState.DEGRADED, timeout=5)
            client.wait_until(ConnectionState.SUBSCRIBED, timeout=5)
            assert client.stats.reconnects == 1
            sim.call(sim.server.inject, Drop())  # a coroutine function: awaited
            client.wait_until(ConnectionState.DEGRADED, timeout=5)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5.0
    with pytest.raises(RuntimeError, match="not running"):
        sim.inject(Drop())
    sim.close()  # idempotent
    with pytest.raises(RuntimeError, match="started before"):
        sim.start()
    assert ExportedSimulatorThread is SimulatorThread


def test_simulator_thread_calls_are_bounded() -> None:
    never = SimulatorThread()
    never.close()  # never started: nothing to stop
    with pytest.raises(RuntimeError, match="not started"):
        never.server  # noqa: B018
    with pytest.raises(RuntimeError, match="not running"):
        never.call(lambda: None)
    with pytest.raises(RuntimeError, match="failed to start") as refused:
        SimulatorThread("192.0.2.1").start()  # not loopback
    assert isinstance(refused.value.__cause__, ValueError)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="failed to start") as busy:
            SimulatorThread(port=port).start()
        assert isinstance(busy.value.__cause__, OSError)

    sim = SimulatorThread().start()  # a loaded machine may take longer than 0.3 s to start it
    sim.timeout = 0.3
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"did not answer within 0\.3 s"):
            sim.call(asyncio.sleep, 30)
        assert time.monotonic() - started < 2.0
        with pytest.raises(RuntimeError, match="own loop"):  # would wait for itself
            sim.call(lambda: sim.call(lambda: None))
        with pytest.raises(TimeoutError, match="did not answer"):
            sim.call(time.sleep, 1.5)  # blocks the simulator's loop beyond the timeout
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"did not stop within 0\.2 s"):
            sim.close(timeout=0.2)  # the loop is stuck: close gives up, it does not hang
        assert time.monotonic() - started < 1.0
    finally:
        sim.close(timeout=5)
    with pytest.raises(RuntimeError, match="not running"):
        sim.call(lambda: None)
