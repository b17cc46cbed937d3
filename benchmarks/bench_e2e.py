"""End to end over loopback: the aiohttp and threaded drivers against bare aiohttp + msgspec.

    python benchmarks/bench_e2e.py [--frames 20000] [--rounds 5] [--latency]

The frames are the simulator's mixed stream, served by the separate blaster process as fast
as the socket takes them (see bench_drivers.py). Three receivers, alternated round by round
(their order rotating) so that all see the same background load:

- ``ceiling``: a bare ``aiohttp.ClientSession().ws_connect`` that decodes every frame with
  ``msgspec.json.decode`` and does nothing else: the most any driver on aiohttp can reach;
- ``aiohttp``: ``kraken_transports.aio.connect``, events consumed with ``async for``;
- ``threaded``: ``ThreadedClient``, events consumed from ``client.events()``.

With ``--latency`` two more receivers join the alternation: ``aiohttp+lat`` and
``threaded+lat``, the same drivers with ``ClientConfig(latency=True)`` (latency tracking,
default sampling), and their rates are compared with the plain drivers' (the issue's bound:
at most 5% slower); the tracker's report is checked to count (about) the timed events.

Each is timed from its first timed frame (the ceiling) or event (the drivers, as
bench_drivers.py does) to the last one consumed; the rate is timed frames per second. The
best round and the range over rounds are printed, then the issue's targets: the aiohttp
driver at least 40% of the ceiling, the threaded driver at least 50% of the aiohttp driver
(best against best, and the range of the same ratio taken round by round). Every expected
event must arrive, or the run exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from kraken_proto import ClientConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blaster
from bench_core import check
from bench_drivers import SUBSCRIPTIONS, Clock, config, expected_events, setup_event_count
from streams import SYMBOLS, Stream, mixed_stream

from kraken_transports.aio import connect
from kraken_transports.threaded import ThreadedClient

TARGET_AIO = 0.40  # aiohttp driver / ceiling
TARGET_THREADED = 0.50  # threaded driver / aiohttp driver
TARGET_LATENCY = 0.95  # a driver tracking latency / the same driver without


class MissingError(Exception):
    """A round ended (deadline or closed connection) before every expected message arrived."""


def run_ceiling(port: int, stream: Stream, deadline: float) -> float:
    """Bare aiohttp: subscribe (the blaster waits for that), then decode every frame."""
    setup, timed = len(stream.setup), len(stream.timed)

    async def go() -> float:
        decode = msgspec.json.decode
        text = aiohttp.WSMsgType.TEXT
        start = 0.0
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/v2", max_msg_size=0) as ws,
        ):
            for req_id, (channel, params) in enumerate(SUBSCRIPTIONS, start=1):
                request = {"channel": channel, "symbol": SYMBOLS, **params}
                await ws.send_str(
                    msgspec.json.encode(
                        {"method": "subscribe", "params": request, "req_id": req_id}
                    ).decode()
                )
            received = 0
            receive = ws.receive
            while received < setup + timed:
                msg = await receive()
                if msg.type is not text:
                    raise MissingError(
                        f"ceiling: {setup + timed - received} frames missing ({msg.type})"
                    )
                decode(msg.data)
                received += 1
                if received == setup + 1:
                    start = time.perf_counter()
            end = time.perf_counter()
        return end - start

    async def bounded() -> float:
        try:
            return await asyncio.wait_for(go(), deadline)
        except asyncio.TimeoutError:
            raise MissingError(
                f"ceiling: not every frame arrived within {deadline:.0f} s"
            ) from None

    return asyncio.run(bounded())


def latency_config(port: int) -> ClientConfig:
    """The benchmark's configuration with latency tracking on."""
    return dataclasses.replace(config(port), latency=True)


def check_latency(name: str, counted: int, timed_events: int) -> None:
    """The tracker saw the stream: its delivery counts stand for about the timed events (a
    sample: the events skipped since the last measurement are not counted yet)."""
    if counted < 0.9 * timed_events:
        raise MissingError(f"{name}: latency report counts {counted} of {timed_events} events")


def delivered_count(client: Any) -> int:
    """Events the client's latency report counts as delivered, over every channel."""
    return sum(channel.delivery.count for channel in client.latency.channels.values())


def run_aio(
    port: int, clock: Clock, deadline: float, make: Callable[[int], ClientConfig] = config
) -> int:
    """The aiohttp driver, consumed with ``async for`` (as bench_drivers.run_aio, bounded);
    returns the delivered events its latency report counts (0 without tracking)."""
    delivered = 0

    async def go() -> None:
        nonlocal delivered
        async with connect(make(port)) as client:
            client.on(None, clock.produced)
            for channel, params in SUBSCRIPTIONS:
                await client.subscribe(channel, SYMBOLS, wait=False, **params)
            async for event in client:
                if clock.see(event):
                    break
            if client.config.latency:
                delivered = delivered_count(client)

    async def bounded() -> None:
        with contextlib.suppress(asyncio.TimeoutError):  # measure() reports clock.left
            await asyncio.wait_for(go(), deadline)

    asyncio.run(bounded())
    return delivered


def run_threaded(
    port: int, clock: Clock, deadline: float, make: Callable[[int], ClientConfig] = config
) -> int:
    """The threaded driver, consumed from ``events()`` (closed from a timer at the deadline);
    returns the delivered events its latency report counts (0 without tracking)."""
    expired = threading.Event()
    delivered = 0
    with ThreadedClient(make(port)) as client:

        def expire() -> None:
            expired.set()
            client.close()

        watchdog = threading.Timer(deadline, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            client.on(None, clock.produced)
            for channel, params in SUBSCRIPTIONS:
                client.subscribe(channel, SYMBOLS, wait=False, **params)
            for event in client.events():
                if expired.is_set():  # the close's own events are not the ones expected
                    break
                if clock.see(event):
                    break
        finally:
            watchdog.cancel()
        if client.config.latency:
            delivered = delivered_count(client)
    if expired.is_set():
        raise MissingError(f"threaded: not every event arrived within {deadline:.0f} s")
    return delivered


DriverRunner = Callable[[int, Clock, float], int]
DRIVERS: dict[str, DriverRunner] = {
    "aiohttp": run_aio,
    "threaded": run_threaded,
    "aiohttp+lat": lambda port, clock, deadline: run_aio(port, clock, deadline, latency_config),
    "threaded+lat": lambda port, clock, deadline: run_threaded(
        port, clock, deadline, latency_config
    ),
}
PLAIN = ["ceiling", "aiohttp", "threaded"]


def measure(
    name: str, stream: Stream, setup_events: int, timed_events: int, deadline: float
) -> float:
    """One round of ``name`` against a fresh blaster; returns the timed frames per second."""
    process, port = blaster.start(stream.setup, stream.timed, len(SUBSCRIPTIONS), 1)
    try:
        if name == "ceiling":
            seconds = run_ceiling(port, stream, deadline)
        else:
            clock = Clock(setup_events, timed_events)
            delivered = DRIVERS[name](port, clock, deadline)
            if clock.left:
                raise MissingError(f"{name}: {clock.left} of {timed_events} events missing")
            if name.endswith("+lat"):
                check_latency(name, delivered, timed_events)
            seconds = clock.end - clock.start
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
    return len(stream.timed) / seconds


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else f"MISSED by {target - ratio:.1%} points"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds a round may take (default 60)"
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="also run both drivers with ClientConfig(latency=True) and compare",
    )
    args = parser.parse_args()
    names = [*PLAIN, "aiohttp+lat", "threaded+lat"] if args.latency else PLAIN

    stream = mixed_stream(args.frames)
    check(stream)
    frames = len(stream.timed)
    timed_events = expected_events(stream)
    setup_events = setup_event_count(stream)
    print(f"{frames} frames, {timed_events} events, {args.rounds} rounds (alternated)")

    rates: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                rates[name].append(measure(name, stream, setup_events, timed_events, args.deadline))
    except MissingError as exc:
        raise SystemExit(f"events missing: {exc}") from None

    ceiling = rates["ceiling"]
    print(f"  {'receiver':<12} {'best msg/s':>11}   {'range over rounds':>21}")
    for name in names:
        values = rates[name]
        spread = f"{min(values):,.0f} - {max(values):,.0f}"
        print(f"  {name:<12} {max(values):>11,.0f}   {spread:>21}")
    pairs = [
        ("aiohttp / ceiling", rates["aiohttp"], ceiling, TARGET_AIO),
        ("threaded / aiohttp", rates["threaded"], rates["aiohttp"], TARGET_THREADED),
    ]
    if args.latency:
        pairs += [
            ("aiohttp+lat / aiohttp", rates["aiohttp+lat"], rates["aiohttp"], TARGET_LATENCY),
            ("threaded+lat / threaded", rates["threaded+lat"], rates["threaded"], TARGET_LATENCY),
        ]
    for label, part, whole, target in pairs:
        ratio = max(part) / max(whole)
        per_round = [p / w for p, w in zip(part, whole, strict=True)]
        print(
            f"  {label:<23} {ratio:6.1%} (rounds {min(per_round):.1%} - {max(per_round):.1%})"
            f"  target >= {target:.0%}: {verdict(ratio, target)}"
        )


if __name__ == "__main__":
    main()
