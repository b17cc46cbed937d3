"""The simulator served on loopback: today's date, and books both reference clients keep."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from test_like_kraken import PRECISIONS, analyse, parse_time

from kraken_transports.simserver import run_simulator


async def frames_for(url: str, request: dict[str, Any], seconds: float) -> list[tuple[float, str]]:
    """Every frame of one socket that sends ``request``, for ``seconds``, with arrival times."""
    out: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps(request))
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                message = await ws.receive(timeout=left)
            except asyncio.TimeoutError:
                break
            assert message.type is aiohttp.WSMsgType.TEXT
            out.append((loop.time(), message.data))
    return out


def test_served_timestamps_are_todays_and_books_verify_for_both_clients() -> None:
    async def scenario() -> None:
        async with run_simulator(seed=3) as sim:
            symbols = ["BTC/USD", "ETH/USD"]
            request = {
                "method": "subscribe",
                "params": {"channel": "book", "symbol": symbols, "depth": 25},
                "req_id": 1,
            }
            frames = await frames_for(sim.url, request, 3.0)
        now = time.time()
        status = json.loads(frames[0][1])
        assert status["channel"] == "status"
        assert status["data"][0]["upcoming_maintenance"] == []
        ack = json.loads(frames[1][1])
        assert abs(parse_time(ack["time_in"]) - now) < 60.0  # today, not 2026-08-01
        for symbol in symbols:
            stats = analyse(frames, symbol, PRECISIONS[symbol])
            assert stats.updates > 10
            assert stats.mismatches == {"level": 0, "message": 0}
            assert stats.violations == [] and stats.disagreements == 0
            assert all(0.01 <= delay <= 0.5 for delay in stats.snapshot_delays)
            # Stamped with the simulator's clock as frames leave: the skew stays small.
            assert all(abs(skew) < 0.5 for skew in stats.skews)

    asyncio.run(scenario())


def test_a_fixed_epoch_still_gives_a_deterministic_start() -> None:
    async def scenario() -> None:
        async with run_simulator(seed=3, epoch=1_785_542_400.0) as sim:
            frames = await frames_for(sim.url, {"method": "ping", "req_id": 1}, 0.3)
        pong = json.loads(frames[1][1])
        assert pong["time_in"].startswith("2026-08-01T00:00:0")

    asyncio.run(scenario())
