"""The test kit's pace: a simulated minute of BTC/USD book (depth 25) and trades, in memory.

    python benchmarks/bench_testkit.py [--seconds 60] [--rounds 3] [--client proto|driver]

Each round builds a fresh :class:`kraken_proto.testing.SimulatedKraken` (BTC/USD only,
seeded), connects one client subscribed to ``book`` at depth 25 and ``trade``, and times
``advance(seconds)``: the exchange's market events, every frame rendered, delivered,
decoded, checksum-verified and turned into events on the fake clock. ``proto`` is the
sans-IO :class:`~kraken_proto.testing.ProtocolClient`; ``driver`` is the drivers' surface
(:class:`~kraken_transports.testing.MemoryClient`: callbacks, the bounded buffer). Every
round is reported with its message counts, then the best; the target is under one second
of wall time per simulated minute, so a suite can afford hundreds of such tests.
"""

from __future__ import annotations

import argparse
import gc
import time

from kraken_proto import BookResync, BookUpdate, KrakenProtocol, ProtocolError, Trade
from kraken_proto.testing import SimulatedKraken, deterministic_config
from kraken_transports.testing import SimulatedKraken as DriverKraken

SYMBOL = "BTC/USD"


def one_round(seconds: float, client: str, seed: int) -> tuple[float, int, int]:
    """Wall seconds of ``advance(seconds)``; the book updates and trades received."""
    gc.collect()
    start = time.perf_counter()  # the setup (the market's 2,400 levels) counts too
    if client == "proto":
        network = SimulatedKraken(seed, symbols=[SYMBOL])
        proto = KrakenProtocol(deterministic_config())
        peer = network.connect(proto, start=False)
        peer.subscribe("book", [SYMBOL], depth=25)
        peer.subscribe("trade", [SYMBOL])
        peer.connect()
        network.advance(seconds)
        events = peer.events
    else:
        kit = DriverKraken(seed, symbols=[SYMBOL])
        memory = kit.client()
        memory.subscribe("book", SYMBOL, depth=25)
        memory.subscribe("trade", SYMBOL)
        kit.advance(seconds)
        events = memory.history
        memory.close()
    took = time.perf_counter() - start
    if any(isinstance(e, (BookResync, ProtocolError)) for e in events):
        raise SystemExit("a book resynced or a frame failed: the run is not valid")
    books = sum(1 for e in events if isinstance(e, BookUpdate))
    trades = sum(1 for e in events if isinstance(e, Trade))
    return took, books, trades


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=("proto", "driver"), default="proto")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    times = []
    for number in range(1, args.rounds + 1):
        took, books, trades = one_round(args.seconds, args.client, args.seed + number)
        times.append(took)
        print(
            f"round {number}: {args.seconds:g} simulated s of {SYMBOL} depth 25 "
            f"({books} book updates, {trades} trade messages) in {took:.3f} s wall "
            f"({client_label(args.client)})"
        )
    print(f"best {min(times):.3f} s, worst {max(times):.3f} s wall per {args.seconds:g} s")


def client_label(client: str) -> str:
    """How the client is named in the output."""
    return "KrakenProtocol client" if client == "proto" else "MemoryClient"


if __name__ == "__main__":
    main()
