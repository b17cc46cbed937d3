"""Latency of the aiohttp driver at a paced rate: frame receipt to callback and to ``async for``.

    python benchmarks/bench_latency.py [--rate 2000] [--frames 20000] [--rounds 3]

The blaster process sends the simulator's mixed stream over loopback at a fixed rate, one
frame per write (``blaster.start(..., rate=...)``). "Frame receipt" is the moment the driver
took the frame off the WebSocket: the ``received_at`` every event carries, which is the
driver's ``loop.time()`` read right after ``ws.receive()`` returned, before the protocol saw
the frame. It is compared with ``loop.time()`` (the same clock) in a callback registered
with ``client.on(None, ...)`` and in the ``async for`` body, for every market event the
timed frames produce (a frame that carries several events is counted once per event; the
later ones include the callbacks of the earlier ones). Both are measured on the same
connection; nothing in the driver is changed. Percentiles are over every event of every
round together, with the best and worst round's p99 beside them.

The issue's targets: callback p99 <= 50 us, ``async for`` p99 <= 100 us. Every expected
event must arrive, or the run exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blaster
from bench_core import check
from bench_drivers import SUBSCRIPTIONS, config, expected_events, setup_event_count
from streams import SYMBOLS, Stream, mixed_stream

from kraken_proto import Event
from kraken_transports.aio import connect

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
TARGETS = {"callback": 50e-6, "async for": 100e-6}  # p99


class Recorder:
    """Latencies (seconds) of the timed events; the setup events before them are skipped."""

    def __init__(self, setup_events: int, timed_events: int) -> None:
        self.setup_events = setup_events
        self.timed_events = timed_events
        self.callback: list[float] = []
        self.iterated: list[float] = []
        self.first_at = self.last_at = 0.0  # received_at of the first and last timed event


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def run_round(port: int, recorder: Recorder, deadline: float) -> None:
    """One connection: record both latencies until every timed event was iterated."""

    async def go() -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time
        setup, timed = recorder.setup_events, recorder.timed_events
        on_callback = recorder.callback.append
        on_iterated = recorder.iterated.append
        callback_seen = 0

        def measured(event: Event) -> None:
            now = clock()
            nonlocal callback_seen
            callback_seen += 1
            if setup < callback_seen <= setup + timed:  # not the close's own events
                on_callback(now - event.received_at)

        seen = 0
        async with connect(config(port)) as client:
            client.on(None, measured)
            for channel, params in SUBSCRIPTIONS:
                await client.subscribe(channel, SYMBOLS, wait=False, **params)
            async for event in client:
                now = clock()
                seen += 1
                if seen > setup:
                    on_iterated(now - event.received_at)
                    if seen == setup + 1:
                        recorder.first_at = event.received_at
                    elif seen == setup + timed:
                        recorder.last_at = event.received_at
                        break

    async def bounded() -> None:
        with contextlib.suppress(asyncio.TimeoutError):  # main() reports what is missing
            await asyncio.wait_for(go(), deadline)

    asyncio.run(bounded())


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rate", type=float, default=2000.0, help="messages per second")
    parser.add_argument("--frames", type=int, default=20_000, help="timed frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    stream: Stream = mixed_stream(args.frames)
    check(stream)
    timed_events = expected_events(stream)
    setup_events = setup_event_count(stream)
    frames = len(stream.timed)
    deadline = frames / args.rate * 1.5 + 30.0
    print(
        f"{frames} frames ({timed_events} events) per round at {args.rate:,.0f} msg/s, "
        f"{args.rounds} rounds (about {frames / args.rate:.0f} s each)"
    )

    samples: dict[str, list[float]] = {name: [] for name in TARGETS}
    round_p99: dict[str, list[float]] = {name: [] for name in TARGETS}
    achieved: list[float] = []
    for _ in range(args.rounds):
        process, port = blaster.start(
            stream.setup, stream.timed, len(SUBSCRIPTIONS), 1, rate=args.rate
        )
        recorder = Recorder(setup_events, timed_events)
        gc.collect()  # start each round with the same heap
        try:
            run_round(port, recorder, deadline)
        finally:
            process.join(5)
            if process.is_alive():
                process.kill()
        for name, values in (("callback", recorder.callback), ("async for", recorder.iterated)):
            if len(values) != timed_events:
                raise SystemExit(f"{name}: {timed_events - len(values)} events missing")
            samples[name].extend(values)
            round_p99[name].append(percentile(sorted(values), 99.0))
        achieved.append((frames - 1) / (recorder.last_at - recorder.first_at))

    print(f"  received at {min(achieved):,.0f} - {max(achieved):,.0f} msg/s (rounds)")
    header = "".join(f"{f'p{p:g}':>9}" for p in PERCENTILES)
    print(f"  latency (us)  {header}      max   p99 rounds         target p99")
    for name, values in samples.items():
        ordered = sorted(values)
        cells = "".join(f" {us(percentile(ordered, p))}" for p in PERCENTILES)
        p99, target = percentile(ordered, 99.0), TARGETS[name]
        spread = f"{min(round_p99[name]) * 1e6:.0f}-{max(round_p99[name]) * 1e6:.0f}"
        outcome = "met" if p99 <= target else f"MISSED by {(p99 - target) * 1e6:.0f} us"
        print(
            f"  {name:<12}{cells} {us(ordered[-1])}   {spread:>10}   "
            f"<= {target * 1e6:.0f} us: {outcome}"
        )


if __name__ == "__main__":
    main()
