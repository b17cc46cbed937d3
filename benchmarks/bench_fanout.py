"""The fan-out through each engine: driver rate with and without publishing, published and
read-back rates, and the latency from the publisher's receipt to the reader's event.

    python benchmarks/bench_fanout.py [--frames 20000] [--rounds 3] [--only redis]

Starts its own ``redis-server`` and ``nats-server -js`` on free loopback ports (each
skipped when its binary is missing). The frames are the simulator's mixed stream of 8
pairs (book, trade, ticker, ohlc), served by blaster.py in a process of its own:

- driver rate: the asyncio client alone, then with a publisher attached, with the frames
  paced at ``--rate`` msg/s (10,000 by default: the issue's target is that publishing
  costs at most 10% of it) and unpaced (as fast as the client takes them);
- published: records written per second, from the first event to the last record the
  engine acknowledged;
- read back: events per second a reader yields, reading every stream from its start;
- latency: a reader in a process of its own follows the streams live while the publisher
  runs at ``--latency-rate`` msg/s; for each event, its ``time.time()`` when yielded minus
  the publisher's ``time.time()`` when its client handed it the event (``Record.sent``),
  p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blaster
from bench_drivers import SUBSCRIPTIONS, Clock, config, expected_events, setup_event_count
from streams import SYMBOLS, Stream, mixed_stream

from kraken_transports.aio import connect
from kraken_transports.fanout import EngineSettings, Publisher, Reader, open_sink, open_source

CHANNELS = [channel for channel, _ in SUBSCRIPTIONS]
STREAMS = [(channel, symbol) for channel in CHANNELS for symbol in SYMBOLS]


# --------------------------------------------------------------------------- engines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def engine(kind: str) -> Iterator[str | None]:
    """A fresh engine of ``kind`` on loopback: its URL, or None when not installed."""
    if kind == "redis":
        binary = shutil.which("redis-server")
    else:
        beside = Path(sys.executable).parent / "nats-server"
        binary = str(beside) if beside.exists() else shutil.which("nats-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        if kind == "redis":
            command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            command += ["--appendonly", "no", "--dir", folder]
            url = f"redis://127.0.0.1:{port}/0"
        else:
            command = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", folder]
            url = f"nats://127.0.0.1:{port}"
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{kind} server did not start")
                time.sleep(0.02)
            yield url
        finally:
            process.terminate()
            process.wait(10)


# --------------------------------------------------------------------------- driver rate


def drive(
    stream: Stream,
    setup_events: int,
    timed_events: int,
    rate: float | None,
    url: str | None,
    prefix: str,
) -> tuple[float, float, int]:
    """One run: (driver seconds, publishing seconds until flushed, records written)."""
    process, port = blaster.start(stream.setup, stream.timed, len(SUBSCRIPTIONS), 1, rate)
    clock = Clock(setup_events, timed_events)
    result: list[Any] = []

    async def go() -> None:
        publisher = None
        if url is not None:
            publisher = Publisher(
                open_sink(url, EngineSettings(prefix=prefix, maxlen=1_000_000)),
                max_queue=1_000_000,
            )
            await publisher.start()
        async with connect(config(port)) as client:
            if publisher is not None:
                publisher.attach(client)
            client.on(None, clock.produced)
            for channel, params in SUBSCRIPTIONS:
                await client.subscribe(channel, SYMBOLS, wait=False, **params)
            async for event in client:
                if clock.see(event):
                    break
        driver = clock.end - clock.start
        if publisher is None:
            result.append((driver, 0.0, 0))
            return
        await publisher.flush(120)
        flushed = time.perf_counter()
        written = publisher.stats.written
        await publisher.close()
        result.append((driver, flushed - clock.start, written))

    asyncio.run(go())
    process.join(5)
    if clock.left:
        raise SystemExit(f"{clock.left} events missing")
    return result[0]  # type: ignore[no-any-return]


async def read_back(url: str, prefix: str) -> tuple[float, int]:
    """Read every stream from its start until nothing came for a second: (seconds,
    events). Book streams start at their latest snapshot, as a reader's do."""
    reader = Reader(open_source(url, EngineSettings(prefix=prefix)), STREAMS, read_timeout=0.2)
    await reader.open()
    events = reader.events()
    count = 0
    start = last = time.perf_counter()
    while True:
        try:
            await asyncio.wait_for(events.__anext__(), 1.0)
        except (asyncio.TimeoutError, StopAsyncIteration):
            break
        count += 1
        last = time.perf_counter()
    await reader.close()
    return last - start, count


# --------------------------------------------------------------------------- latency


def _follow(url: str, prefix: str, count: int, ready: Any, out: Any) -> None:
    async def go() -> list[float]:
        reader = Reader(open_source(url, EngineSettings(prefix=prefix)), STREAMS, read_timeout=0.05)
        await reader.open()
        ready.send(True)
        latencies: list[float] = []
        async for _event in reader:
            sent = reader.last_sent
            if sent:
                latencies.append(time.time() - sent)
            if len(latencies) >= count:
                break
        await reader.close()
        return latencies

    out.send(asyncio.run(asyncio.wait_for(go(), 120)))


def latency(
    stream: Stream, setup_events: int, timed_events: int, rate: float, url: str, prefix: str
) -> list[float]:
    """Publisher at ``rate`` msg/s, reader in another process: the reader's latencies."""
    ready_in, ready_out = multiprocessing.Pipe()
    result_in, result_out = multiprocessing.Pipe()
    count = int(timed_events * 0.9)
    follower = multiprocessing.Process(
        target=_follow, args=(url, prefix, count, ready_out, result_out), daemon=True
    )
    follower.start()
    ready_in.recv()
    drive(stream, setup_events, timed_events, rate, url, prefix)
    latencies: list[float] = result_in.recv()
    follower.join(10)
    # Leave out the start (the snapshots and the first frames while the reader starts).
    return latencies[len(latencies) // 10 :]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--latency-rate", type=float, default=10_000.0)
    parser.add_argument("--only", action="append", choices=["redis", "nats"])
    args = parser.parse_args()

    stream = mixed_stream(args.frames)
    frames = len(stream.timed)
    timed_events = expected_events(stream)
    setup_events = setup_event_count(stream)
    print(f"{frames} frames, {timed_events} events, {len(STREAMS)} streams")
    kinds = args.only or ["redis", "nats"]
    for kind in kinds:
        with engine(kind) as url:
            if url is None:
                print(f"{kind}: no server binary, skipped")
                continue
            print(f"{kind} ({url}):")
            for rate in (args.rate, None):
                label = f"paced {rate:,.0f} msg/s" if rate else "unpaced"
                alone, published = [], []
                written = 0
                for round_ in range(args.rounds):  # alternate: the machine is noisy
                    alone.append(drive(stream, setup_events, timed_events, rate, None, "x")[0])
                    prefix = f"b{int(rate or 0)}r{round_}"
                    run = drive(stream, setup_events, timed_events, rate, url, prefix)
                    published.append(run)
                    written = run[2]
                best_alone = min(alone)
                best = min(published)
                print(
                    f"  driver {label:<20} alone {frames / best_alone:>9,.0f} msg/s, "
                    f"publishing {frames / best[0]:>9,.0f} msg/s "
                    f"({best[0] / best_alone - 1:+.1%} time)"
                )
                print(
                    f"  published ({label}) {written / min(r[1] for r in published):>9,.0f} "
                    f"records/s ({written} records)"
                )
            seconds, count = asyncio.run(read_back(url, f"b{int(args.rate)}r0"))
            print(f"  read back          {count / seconds:>9,.0f} events/s ({count} events)")
            values = latency(stream, setup_events, timed_events, args.latency_rate, url, "lat")
            p50, p99 = percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3
            print(
                f"  latency at {args.latency_rate:,.0f} msg/s: p50 {p50:.2f} ms, "
                f"p99 {p99:.2f} ms ({len(values)} events)"
            )


if __name__ == "__main__":
    main()
