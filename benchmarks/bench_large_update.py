"""One large book update: the cost of a message must grow linearly with its level count.

Run: ``python benchmarks/bench_large_update.py [--sizes 10000 40000 80000 230000]
[--loop compiled|python] [--cases worse better shuffled] [--repeat R]``

A live depth-10 BTC/USD book (through ``KrakenProtocol.receive_data``, as a client would
see it) gets one update frame of N distinct ask levels, padded as on the wire. Cases:

- ``worse``: every level worse than all before it (issue 9: each was an insert at the
  cold end of an ever-longer list, so the message cost time quadratic in N);
- ``better``: every level a new best ask (the book keeps the last 10);
- ``shuffled``: the prices of ``worse`` in random order, and every fourth level deletes
  one sent earlier in the message (some of them near the top, lifting deep levels).

230000 levels make an 8.05 MB frame, under the default 8 MiB ``max_message_size``. Each
size prints the best ``receive_data`` time over the repeats, the bare ``msgspec`` decode of
the same frame, and the time per level; the frame's checksum comes from a plain model, so a
resync (a wrong book) fails the run. ``--loop python`` times the reference loop.
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

import msgspec

import kraken_proto.protocol as protocol_module
from kraken_proto import BookResync, BookUpdate, ClientConfig, Emit, KrakenProtocol
from kraken_proto.actions import Send
from kraken_proto.book import ACCELERATED, OrderBook
from kraken_proto.checksum import book_checksum

SYMBOL = "BTC/USD"
STAMP = "2026-08-01T02:53:53.398143Z"


def _levels(pairs: list[tuple[int, int]]) -> str:
    """Levels of (price in tenths, qty in 1e-8) as JSON, padded to 1 and 8 decimals."""
    return ",".join(
        f'{{"price":{p // 10}.{p % 10},"qty":{q // 10**8}.{q % 10**8:08d}}}' for p, q in pairs
    )


def _frame(kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]], crc: int) -> bytes:
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{SYMBOL}",'
        f'"bids":[{_levels(bids)}],"asks":[{_levels(asks)}],"checksum":{crc},'
        f'"timestamp":"{STAMP}"}}]}}'
    ).encode()


def _checksum(bids: dict[int, int], asks: dict[int, int]) -> int:
    def side(levels: dict[int, int], reverse: bool) -> list[tuple[Decimal, Decimal]]:
        best = sorted(levels, reverse=reverse)[:10]
        return [(Decimal(p).scaleb(-1), Decimal(levels[p]).scaleb(-8)) for p in best]

    return book_checksum(side(asks, False), side(bids, True), 1, 8)


def case(name: str, size: int, seed: int = 9) -> tuple[bytes, bytes]:
    """The snapshot frame and the large update frame of one case."""
    rng = random.Random(seed)
    bids = {620_000 - 10 * k: 100_000_000 + k for k in range(10)}
    asks = {630_000 + 10 * k: 200_000_000 + k for k in range(10)}
    snapshot = _frame("snapshot", sorted(bids.items())[::-1], sorted(asks.items()), 0)
    snapshot = snapshot.replace(b'"checksum":0', f'"checksum":{_checksum(bids, asks)}'.encode())
    if name == "worse":
        update = [(630_100 + k, 50_000_000 + k) for k in range(size)]
    elif name == "better":
        update = [(630_000 - 1 - k, 50_000_000 + k) for k in range(size)]
    else:
        prices = [630_100 + k for k in range(size)]
        rng.shuffle(prices)
        update = []
        for k, price in enumerate(prices):
            if k % 4 == 3:
                update.append((update[rng.randrange(len(update))][0], 0))
            else:
                update.append((price, 50_000_000 + k))
    final = dict(asks)
    for price, qty in update:
        if qty:
            final[price] = qty
        else:
            final.pop(price, None)
    return snapshot, _frame("update", [], update, _checksum(bids, final))


def ready(snapshot: bytes) -> KrakenProtocol:
    proto = KrakenProtocol(ClientConfig(ping_interval=None, stale_timeout=1e9))
    proto.subscribe("book", [SYMBOL], 0.0, depth=10)
    proto.connect(0.0)
    [send] = [action for action in proto.connection_made(0.0) if isinstance(action, Send)]
    request = msgspec.json.decode(send.text)
    ack = {
        "method": "subscribe",
        "req_id": request["req_id"],
        "result": {"channel": "book", "depth": 10, "snapshot": True, "symbol": SYMBOL},
        "success": True,
        "time_in": STAMP,
        "time_out": STAMP,
    }
    proto.receive_data(msgspec.json.encode(ack), 0.1)
    proto.receive_data(snapshot, 0.2)
    return proto


def timed(snapshot: bytes, update: bytes) -> float:
    proto = ready(snapshot)
    start = time.perf_counter()
    actions = proto.receive_data(update, 1.0)
    seconds = time.perf_counter() - start
    emitted = [action.event for action in actions if isinstance(action, Emit)]
    if any(isinstance(event, BookResync) for event in emitted) or not any(
        isinstance(event, BookUpdate) for event in emitted
    ):
        raise SystemExit("the book diverged from the model")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000, 80_000, 230_000])
    parser.add_argument("--loop", choices=["compiled", "python"], default="compiled")
    parser.add_argument("--cases", nargs="+", default=["worse", "better", "shuffled"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.loop == "python":
        vars(protocol_module)["apply_live_update"] = OrderBook._apply_update_py
    elif not ACCELERATED:
        raise SystemExit("the compiled loop is not built")
    print(f"loop: {args.loop}")
    for name in args.cases:
        for size in args.sizes:
            snapshot, update = case(name, size)
            best = min(timed(snapshot, update) for _ in range(args.repeat))
            start = time.perf_counter()
            msgspec.json.decode(update)
            decode = time.perf_counter() - start
            print(
                f"{name:>8} {size:>7} levels {len(update) / 1e6:5.2f} MB: "
                f"receive_data {best * 1e3:9.1f} ms (decode {decode * 1e3:6.1f} ms), "
                f"{best / size * 1e6:6.2f} us/level"
            )


if __name__ == "__main__":
    main()
