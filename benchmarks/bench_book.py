"""Micro-benchmark of OrderBook.apply_update (levels + truncation + checksum).

Run: ``python benchmarks/bench_book.py [--messages N] [--repeat R] [--chunk C]``

Prints the time per update message at depth 10 and at depth 1000 and their ratio. The
updates are generated once per depth against a plain model of the book and stay in the top
region, like a real feed: a quantity changes at one of the top 10 levels, a level is
inserted in a gap within the top 10, or a top-10 level is deleted and (as Kraken does) the
level entering at the bottom of the subscribed depth is sent in the same message. Each
message carries one or two levels on one side; numbers are padded to BTC/USD's precisions
(1/8), as on the wire. The book is checked against the model after each timed run.

Timing: the messages are timed in chunks and each chunk keeps its fastest time over the
repeats (the two depths interleaved), so load from other processes on a shared machine
does not inflate the result; the printed figure is the sum of those minima per message.
"""

from __future__ import annotations

import argparse
import random
import time
from bisect import bisect_left, insort
from decimal import Decimal

from kraken_proto.book import OrderBook
from kraken_proto.checksum import book_checksum
from kraken_proto.events import BookLevel

BASE_TICK = 630_000  # 63000.0 at one decimal
TOP = 10

Message = tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]


def _level(tick: int, rng: random.Random) -> BookLevel:
    price = Decimal(f"{tick // 10}.{tick % 10}")
    qty = Decimal(f"{rng.randrange(1, 300_000_000) / 1e8:.8f}")
    return BookLevel.of(price, qty)


def _zero(tick: int) -> BookLevel:
    return BookLevel.of(f"{tick // 10}.{tick % 10}", "0.00000000")


class _Side:
    """A plain model of one side in ticks; ``sign`` is +1 for asks, -1 for bids."""

    def __init__(self, sign: int, depth: int, rng: random.Random) -> None:
        self.sign = sign
        self.depth = depth
        # Keys are "distance from the middle" so both sides sort best first ascending.
        self.keys = [1 + 2 * i for i in range(depth)]
        self.levels = {k: _level(self.tick(k), rng) for k in self.keys}

    def tick(self, key: int) -> int:
        return BASE_TICK + self.sign * key

    def set(self, key: int, level: BookLevel) -> None:
        if key not in self.levels:
            insort(self.keys, key)
        self.levels[key] = level
        for gone in self.keys[self.depth :]:
            del self.levels[gone]
        del self.keys[self.depth :]

    def delete(self, key: int) -> None:
        del self.levels[key]
        del self.keys[bisect_left(self.keys, key)]

    def message(self, rng: random.Random) -> list[BookLevel]:
        top = self.keys[: min(TOP, len(self.keys))]
        roll = rng.random()
        if roll < 0.5 or len(self.keys) < 2:
            key = rng.choice(top)
            level = _level(self.tick(key), rng)
            self.set(key, level)
            return [level]
        if roll < 0.75:
            gaps = [k for k in range(max(1, top[0] - 1), top[-1]) if k not in self.levels]
            key = rng.choice(gaps) if gaps else top[-1] + 1
            level = _level(self.tick(key), rng)
            self.set(key, level)
            return [level]
        key = rng.choice(top)
        self.delete(key)
        refill = self.keys[-1] + rng.randrange(1, 4)
        level = _level(self.tick(refill), rng)
        self.set(refill, level)
        return [_zero(self.tick(key)), level]

    def best_first(self) -> list[tuple[Decimal, Decimal]]:
        return [(self.levels[k].price, self.levels[k].qty) for k in self.keys]


def build(
    depth: int, count: int, seed: int
) -> tuple[list[BookLevel], list[BookLevel], list[Message], int]:
    """Snapshot sides, ``count`` update messages and the model's final checksum."""
    rng = random.Random(seed)
    asks = _Side(+1, depth, rng)
    bids = _Side(-1, depth, rng)
    snap_asks = [asks.levels[k] for k in asks.keys]
    snap_bids = [bids.levels[k] for k in bids.keys]
    messages: list[Message] = []
    for _ in range(count):
        if rng.random() < 0.5:
            messages.append(((), tuple(asks.message(rng))))
        else:
            messages.append((tuple(bids.message(rng)), ()))
    final = book_checksum(asks.best_first(), bids.best_first(), 1, 8)
    return snap_bids, snap_asks, messages, final


def _timed_run(
    book: OrderBook, snapshot: tuple[list[BookLevel], list[BookLevel]], chunks: list[list[Message]]
) -> list[float]:
    """Apply the snapshot, then every chunk; the seconds each chunk took."""
    book.apply_snapshot(*snapshot)
    apply = book.apply_update
    clock = time.perf_counter
    times = []
    for chunk in chunks:
        start = clock()
        for bids, asks in chunk:
            apply(bids, asks)
        times.append(clock() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    # The machine may be shared: runs of the two depths are interleaved, and each chunk of
    # messages keeps its fastest time over the repeats, which filters out other load.
    cases = {}
    for depth in (10, 1000):
        snap_bids, snap_asks, messages, final = build(depth, args.messages, seed=depth)
        chunks = [messages[i : i + args.chunk] for i in range(0, len(messages), args.chunk)]
        book = OrderBook("BTC/USD", depth, price_precision=1, qty_precision=8)
        cases[depth] = (book, (snap_bids, snap_asks), chunks, final, [float("inf")] * len(chunks))
    for _ in range(args.repeat):
        for depth, (book, snapshot, chunks, final, best) in cases.items():
            for index, seconds in enumerate(_timed_run(book, snapshot, chunks)):
                best[index] = min(best[index], seconds)
            if book.checksum() != final:
                raise SystemExit(f"depth {depth}: the book diverged from the model")
    result = {depth: sum(case[4]) / args.messages * 1e6 for depth, case in cases.items()}
    print(f"depth   10: {result[10]:.3f} us/update")
    print(f"depth 1000: {result[1000]:.3f} us/update")
    print(f"ratio 1000/10: {result[1000] / result[10]:.2f}")


if __name__ == "__main__":
    main()
