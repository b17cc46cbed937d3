"""End to end over loopback: the aiohttp and threaded drivers against bare aiohttp + msgspec.

    python benchmarks/bench_e2e.py [--frames 20000] [--rounds 5]

The frames are the simulator's mixed stream, served by the separate blaster process as fast
as the socket takes them (see bench_drivers.py). Three receivers, alternated round by round
(their order rotating) so that all see the same background load:

- ``ceiling``: a bare ``aiohttp.ClientSession().ws_connect`` that decodes every frame with
  ``msgspec.json.decode`` and does nothing else: the most any driver on aiohttp can reach;
- ``aiohttp``: ``kraken_transports.aio.connect``, events consumed with ``async for``;
- ``threaded``: ``ThreadedClient``, events consumed from ``client.events()``.

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
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blaster
from bench_core import check
from bench_drivers import SUBSCRIPTIONS, Clock, config, expected_events, setup_event_count
from streams import SYMBOLS, Stream, mixed_stream

from kraken_transports.aio import connect
from kraken_transports.threaded import ThreadedClient

TARGET_AIO = 0.40  # aiohttp driver / ceiling
TARGET_THREADED = 0.50  # threaded driver / aiohttp driver


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


def run_aio(port: int, clock: Clock, deadline: float) -> None:
    """The aiohttp driver, consumed with ``async for`` (as bench_drivers.run_aio, bounded)."""

    async def go() -> None:
        async with connect(config(port)) as client:
            client.on(None, clock.produced)
            for channel, params in SUBSCRIPTIONS:
                await client.subscribe(channel, SYMBOLS, wait=False, **params)
            async for event in client:
                if clock.see(event):
                    break

    async def bounded() -> None:
        with contextlib.suppress(asyncio.TimeoutError):  # measure() reports clock.left
            await asyncio.wait_for(go(), deadline)

    asyncio.run(bounded())


def run_threaded(port: int, clock: Clock, deadline: float) -> None:
    """The threaded driver, consumed from ``events()`` (closed from a timer at the deadline)."""
    expired = threading.Event()
    with ThreadedClient(config(port)) as client:

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
    if expired.is_set():
        raise MissingError(f"threaded: not every event arrived within {deadline:.0f} s")


DriverRunner = Callable[[int, Clock, float], None]
DRIVERS: dict[str, DriverRunner] = {"aiohttp": run_aio, "threaded": run_threaded}
NAMES = ["ceiling", *DRIVERS]


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
            DRIVERS[name](port, clock, deadline)
            if clock.left:
                raise MissingError(f"{name}: {clock.left} of {timed_events} events missing")
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
    args = parser.parse_args()

    stream = mixed_stream(args.frames)
    check(stream)
    frames = len(stream.timed)
    timed_events = expected_events(stream)
    setup_events = setup_event_count(stream)
    print(f"{frames} frames, {timed_events} events, {args.rounds} rounds (alternated)")

    rates: dict[str, list[float]] = {name: [] for name in NAMES}
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(NAMES)
            for name in NAMES[shift:] + NAMES[:shift]:
                rates[name].append(measure(name, stream, setup_events, timed_events, args.deadline))
    except MissingError as exc:
        raise SystemExit(f"events missing: {exc}") from None

    ceiling = rates["ceiling"]
    print(f"  {'receiver':<9} {'best msg/s':>11}   {'range over rounds':>21}")
    for name in NAMES:
        values = rates[name]
        spread = f"{min(values):,.0f} - {max(values):,.0f}"
        print(f"  {name:<9} {max(values):>11,.0f}   {spread:>21}")
    pairs = [
        ("aiohttp / ceiling", rates["aiohttp"], ceiling, TARGET_AIO),
        ("threaded / aiohttp", rates["threaded"], rates["aiohttp"], TARGET_THREADED),
    ]
    for label, part, whole, target in pairs:
        ratio = max(part) / max(whole)
        per_round = [p / w for p, w in zip(part, whole, strict=True)]
        print(
            f"  {label:<19} {ratio:6.1%} (rounds {min(per_round):.1%} - {max(per_round):.1%})"
            f"  target >= {target:.0%}: {verdict(ratio, target)}"
        )


if __name__ == "__main__":
    main()
