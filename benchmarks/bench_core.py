"""Core throughput: decode + dispatch + book apply + checksum + typed events, vs bare decode.

    python benchmarks/bench_core.py [--frames 20000] [--rounds 15]

The mixed stream (from the simulator, 8 symbols, depth 10) is about 70% book updates, 15%
trades, 10% tickers and the rest ohlc and heartbeats. Each round feeds a fresh
``KrakenProtocol`` (subscriptions acknowledged and snapshots applied outside the timing),
then times ``receive_data`` over every frame; the same frames are timed through bare
``msgspec.json.decode`` in the same process, alternating with the core rounds. The best
round of each is reported, since other load on the machine only ever adds time. A second
part compares the per-update cost of book-only streams at depth 10 and depth 1000 (also
alternated; the depth-1000 stream carries about 14% more levels per message).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import Stream, book_stream, mixed_stream

from kraken_proto import BookResync, BookUpdate, ClientConfig, Emit, KrakenProtocol
from kraken_proto import ProtocolError as ProtocolErrorEvent
from kraken_proto.book import ACCELERATED


def ready_protocol(stream: Stream) -> KrakenProtocol:
    """A protocol with every subscription acknowledged and every snapshot applied.

    The stream is recorded frames fed without requests, so the protocol is in replay mode
    (it adopts the recorded acks and snapshots, as a live connection never does).
    """
    proto = KrakenProtocol(ClientConfig(ping_interval=None, stale_timeout=1e9), replay=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    for frame in stream.setup:
        proto.receive_data(frame, 0.0)
    return proto


def time_core(stream: Stream) -> float:
    proto = ready_protocol(stream)
    receive = proto.receive_data
    frames = stream.timed
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        receive(frame, 1.0)
    return time.perf_counter() - start


def time_bare(stream: Stream) -> float:
    decode = msgspec.json.decode
    frames = stream.timed
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        decode(frame)
    return time.perf_counter() - start


def check(stream: Stream) -> int:
    """Run once untimed: every book update must verify; returns the BookUpdate count."""
    proto = ready_protocol(stream)
    verified = 0
    for frame in stream.timed:
        for action in proto.receive_data(frame, 1.0):
            if isinstance(action, Emit):
                event = action.event
                if isinstance(event, (BookResync, ProtocolErrorEvent)):
                    raise SystemExit(f"benchmark stream is not clean: {event}")
                verified += isinstance(event, BookUpdate)
    return verified


def best(fn: Callable[[Stream], float], stream: Stream, rounds: int) -> float:
    return min(fn(stream) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    mixed = mixed_stream(args.frames)
    verified = check(mixed)
    n = len(mixed.timed)
    # Alternate the two so that both see the same background load; keep each one's best.
    bare = core = float("inf")
    for _ in range(args.rounds):
        bare = min(bare, time_bare(mixed))
        core = min(core, time_core(mixed))
    loop = "compiled" if ACCELERATED else "Python (KRAKEN_WS_PURE_PYTHON or not built)"
    print(f"book update loop: {loop}")
    print(f"mixed stream: {n} frames {mixed.counts}, {verified} book updates verified")
    print(f"  bare msgspec.json.decode : {n / bare:>12,.0f} msg/s  {bare / n * 1e6:6.2f} us/msg")
    print(f"  KrakenProtocol core path : {n / core:>12,.0f} msg/s  {core / n * 1e6:6.2f} us/msg")
    print(f"  ratio core / bare decode : {core / bare:6.2f}x")

    streams = {depth: book_stream(depth, updates=args.frames // 2) for depth in (10, 1000)}
    for books in streams.values():
        check(books)
    # Alternated as above, so that both depths see the same background load.
    best_time = dict.fromkeys(streams, float("inf"))
    for _ in range(args.rounds):
        for depth, books in streams.items():
            best_time[depth] = min(best_time[depth], time_core(books))
    per_update = {depth: best_time[depth] / len(streams[depth].timed) for depth in streams}
    for depth, cost in per_update.items():
        print(f"book-only depth {depth:>4}: {cost * 1e6:6.2f} us/update")
    print(f"  depth 1000 / depth 10    : {per_update[1000] / per_update[10]:6.2f}x")


if __name__ == "__main__":
    main()
