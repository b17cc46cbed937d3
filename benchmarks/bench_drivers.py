"""End to end: frames from a loopback server through each driver to the user's iterator.

    python benchmarks/bench_drivers.py [--frames 20000] [--rounds 3] [--only aiohttp]

The frames are the simulator's mixed stream (see bench_core.py), served by a separate
process that writes them as fast as the socket accepts (benchmarks/blaster.py), so the
client side is what is measured. Each driver subscribes exactly as the stream was
recorded, then the time from the first timed event to the last one delivered is taken.
The core-only rate (the same frames through ``KrakenProtocol.receive_data`` in-process) is
measured in the same run for comparison. The buffer is made deep enough that nothing is
dropped, and the run checks that every expected event arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blaster
from bench_core import best, check, ready_protocol, time_core
from streams import SYMBOLS, Stream, mixed_stream

from kraken_proto import BackpressureConfig, ClientConfig, Emit, Event, KrakenProtocol
from kraken_transports.aio import connect
from kraken_transports.sockets import SocketClient
from kraken_transports.threaded import ThreadedClient

SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("book", {"depth": 10}),
    ("trade", {}),
    ("ticker", {}),
    ("ohlc", {"interval": 1}),
]


def config(port: int) -> ClientConfig:
    return ClientConfig(
        endpoint=f"ws://127.0.0.1:{port}/v2",
        ping_interval=None,
        stale_timeout=60.0,
        backpressure=BackpressureConfig(max_queue_depth=10_000_000),
    )


def expected_events(stream: Stream) -> int:
    """How many events the timed frames produce (one per data entry)."""
    proto = ready_protocol(stream)
    return sum(
        isinstance(action, Emit)
        for frame in stream.timed
        for action in proto.receive_data(frame, 1.0)
    )


class Clock:
    """Starts when the driver produces the first timed event; stops when the consumer has
    received the last one (so a consumer lagging behind an IO thread is timed too)."""

    def __init__(self, setup_events: int, timed_events: int) -> None:
        self.setup_left = setup_events
        self.produced_setup_left = setup_events
        self.left = timed_events
        self.start = 0.0
        self.end = 0.0

    def produced(self, event: Event) -> None:
        """A callback on the driver's IO side: notes when the first timed event arrived."""
        if self.produced_setup_left:
            self.produced_setup_left -= 1
        elif not self.start:
            self.start = time.perf_counter()

    def see(self, event: Event) -> bool:
        """The consumer got ``event``; True when every timed event has arrived."""
        if self.setup_left:
            self.setup_left -= 1
            return False
        self.left -= 1
        if self.left == 0:
            self.end = time.perf_counter()
            return True
        return False


def setup_event_count(stream: Stream) -> int:
    """Events a client sees before the timed frames: its state changes, acks, snapshots."""
    proto = KrakenProtocol(config(1))
    for channel, params in SUBSCRIPTIONS:
        proto.subscribe(channel, SYMBOLS, 0.0, **params)
    count = sum(isinstance(a, Emit) for a in proto.connect(0.0) + proto.connection_made(0.0))
    for frame in stream.setup:
        count += sum(isinstance(a, Emit) for a in proto.receive_data(frame, 0.0))
    return count


def run_aio(port: int, clock: Clock) -> None:
    async def go() -> None:
        async with connect(config(port)) as client:
            client.on(None, clock.produced)
            for channel, params in SUBSCRIPTIONS:
                await client.subscribe(channel, SYMBOLS, wait=False, **params)
            async for event in client:
                if clock.see(event):
                    break

    asyncio.run(go())


def run_sockets(port: int, clock: Clock) -> None:
    with SocketClient(config(port)) as client:
        client.on(None, clock.produced)
        for channel, params in SUBSCRIPTIONS:
            client.subscribe(channel, SYMBOLS, wait=False, **params)
        for event in client.events():
            if clock.see(event):
                break


def run_threaded(port: int, clock: Clock) -> None:
    with ThreadedClient(config(port)) as client:
        client.on(None, clock.produced)
        for channel, params in SUBSCRIPTIONS:
            client.subscribe(channel, SYMBOLS, wait=False, **params)
        for event in client.events():
            if clock.see(event):
                break


DRIVERS: list[tuple[str, Callable[[int, Clock], None]]] = [
    ("aiohttp", run_aio),
    ("sockets", run_sockets),
    ("threaded", run_threaded),
]


def measure(
    name: str,
    runner: Callable[[int, Clock], None],
    stream: Stream,
    setup_events: int,
    timed_events: int,
    rounds: int,
) -> float:
    times = []
    for _ in range(rounds):
        process, port = blaster.start(stream.setup, stream.timed, len(SUBSCRIPTIONS), 1)
        clock = Clock(setup_events, timed_events)
        runner(port, clock)
        process.join(5)
        if clock.left:
            raise SystemExit(f"{name}: {clock.left} events missing")
        times.append(clock.end - clock.start)
    return min(times)


def report(rows: Iterable[tuple[str, float]], frames: int, core_rate: float) -> None:
    for name, seconds in rows:
        rate = frames / seconds
        print(f"  {name:<9} {rate:>10,.0f} msg/s   {rate / core_rate:6.1%} of core-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _ in DRIVERS],
        help="measure only this driver (may be given several times); default: all",
    )
    args = parser.parse_args()

    stream = mixed_stream(args.frames)
    check(stream)
    frames = len(stream.timed)
    timed_events = expected_events(stream)
    setup_events = setup_event_count(stream)
    core = best(time_core, stream, max(5, args.rounds))
    core_rate = frames / core
    print(f"{frames} frames, {timed_events} events; core-only {core_rate:,.0f} msg/s")
    rows = [
        (name, measure(name, runner, stream, setup_events, timed_events, args.rounds))
        for name, runner in DRIVERS
        if not args.only or name in args.only
    ]
    report(rows, frames, core_rate)


if __name__ == "__main__":
    main()
