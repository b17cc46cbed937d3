"""Cost of OrderFlowTracker.track_update per book update, on a depth-100 book of real updates.

    python benchmarks/bench_flow.py [--rounds 15] [--capture btcusd_sample]

The updates are real: every book message of a capture in ``tests/data/kraken-v2-real``
(default ``btcusd_sample``: BTC/USD, 2,051 updates recorded at depth 25), replayed through
``KrakenProtocol`` to get its ``BookUpdate`` events. They are applied to an ``OrderBook``
subscribed at depth 100. The capture's snapshot has 25 levels a side, so the book starts
with them plus 75 more a side below them (the snapshot's own quantities again, one price
step further out each), and keeps the levels Kraken's depth-25 feed pushes out of its range
without a delete: a full depth-100 book throughout.

Each configuration (threshold kind x ``track_depth``) runs ``--rounds`` rounds over every
update with a fresh book and tracker; in a round, each update is applied outside the timing
and the ``track_update`` call that follows is timed alone with ``time.perf_counter``. The
best round is reported (load from other processes only ever adds time), as microseconds per
call, net of the timer's own overhead (measured the same way around an empty call, printed
too). ``OrderBook.apply_update`` per update is printed for scale.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from kraken_proto import BookUpdate
from kraken_proto.analytics import LargeOrderThreshold, OrderFlowTracker
from kraken_proto.book import OrderBook
from kraken_proto.events import BookLevel
from kraken_proto.replay import replay

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "kraken-v2-real"
DEPTH = 100


def book_messages(capture: str) -> tuple[BookUpdate, list[BookUpdate]]:
    """The capture's first book snapshot and the updates that follow it."""
    updates = replay(DATA / f"{capture}.jsonl").of_type(BookUpdate)
    first = next(i for i, update in enumerate(updates) if update.snapshot)
    rest = updates[first + 1 :]
    if any(update.snapshot for update in rest):
        rest = rest[: next(i for i, update in enumerate(rest) if update.snapshot)]
    return updates[first], rest


def deepened(levels: tuple[BookLevel, ...], step: Decimal, depth: int) -> list[BookLevel]:
    """``levels`` followed by more, each ``step`` beyond the last, reusing their quantities."""
    out = list(levels)
    price = levels[-1].price
    quantum = levels[-1].price.as_tuple().exponent
    while len(out) < depth:
        price += step
        out.append(
            BookLevel.of(
                price.quantize(Decimal(1).scaleb(quantum)), out[len(out) % len(levels)].qty
            )
        )
    return out


def fresh_book(snapshot: BookUpdate, tick: Decimal) -> OrderBook:
    book = OrderBook(snapshot.symbol, DEPTH)
    book.apply_snapshot(deepened(snapshot.bids, -tick, DEPTH), deepened(snapshot.asks, tick, DEPTH))
    return book


def timer_overhead(calls: int, rounds: int) -> float:
    """Seconds one timed empty call costs, best of ``rounds``."""

    def empty(book: object, now: float) -> tuple[()]:
        return ()

    clock = time.perf_counter
    best = float("inf")
    for _ in range(rounds):
        total = 0.0
        for _ in range(calls):
            start = clock()
            empty(None, 1.0)
            total += clock() - start
        best = min(best, total)
    return best / calls


def time_round(
    snapshot: BookUpdate,
    updates: list[BookUpdate],
    tick: Decimal,
    make: Callable[[], OrderFlowTracker],
) -> tuple[float, float, int]:
    """One round: (seconds in track_update, seconds in apply_update, events) over ``updates``."""
    book = fresh_book(snapshot, tick)
    tracker = make()
    track = tracker.track_update
    apply = book.apply_update
    clock = time.perf_counter
    track(book, 0.0)
    tracking = applying = 0.0
    events = 0
    gc.collect()
    for now, update in enumerate(updates, start=1):
        start = clock()
        apply(update.bids, update.asks)
        middle = clock()
        flow = track(book, float(now))
        tracking += clock() - middle
        events += len(flow)
        applying += middle - start
    return tracking, applying, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--capture", default="btcusd_sample")
    args = parser.parse_args()

    snapshot, updates = book_messages(args.capture)
    prices = [level.price for level in snapshot.asks]
    tick = min(b - a for a, b in pairwise(prices))
    book = fresh_book(snapshot, tick)
    for update in updates:
        book.apply_update(update.bids, update.asks)
    levels = (len(book.bids()), len(book.asks()))
    n = len(updates)
    print(
        f"{args.capture}: {n} real updates of {snapshot.symbol} on a depth-{DEPTH} book "
        f"({levels[0]}/{levels[1]} bid/ask levels at the end), best of {args.rounds} rounds"
    )
    overhead = timer_overhead(n, args.rounds)
    print(f"  timer overhead per timed call : {overhead * 1e6:6.3f} us (subtracted below)")

    configs: dict[str, Callable[[], OrderFlowTracker]] = {
        "absolute 1 BTC, track_depth  25": lambda: OrderFlowTracker(Decimal(1)),
        "relative 5x,    track_depth  25": lambda: OrderFlowTracker(
            LargeOrderThreshold.relative(Decimal(5))
        ),
        "absolute 1 BTC, track_depth 100": lambda: OrderFlowTracker(Decimal(1), track_depth=100),
        "relative 5x,    track_depth 100": lambda: OrderFlowTracker(
            LargeOrderThreshold.relative(Decimal(5)), track_depth=100
        ),
    }
    best = dict.fromkeys(configs, float("inf"))
    applying = float("inf")
    events = dict.fromkeys(configs, 0)
    # Alternate the configurations so that all see the same background load.
    for _ in range(args.rounds):
        for name, make in configs.items():
            tracking, applied, count = time_round(snapshot, updates, tick, make)
            best[name] = min(best[name], tracking)
            applying = min(applying, applied)
            events[name] = count
    print(f"  OrderBook.apply_update        : {(applying / n - overhead) * 1e6:6.2f} us/update")
    for name in configs:
        per_call = best[name] / n - overhead
        print(
            f"  track_update, {name} : {per_call * 1e6:6.2f} us/update  "
            f"({events[name] / n:.2f} events/update)"
        )


if __name__ == "__main__":
    main()
