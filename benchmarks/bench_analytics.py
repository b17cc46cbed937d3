"""Book analytics: the cost of each call on a depth-100 book, beside one book update.

    python benchmarks/bench_analytics.py [--rounds 15] [--calls 2000]

The book comes from a real capture, ``tests/data/kraken-v2-real/btcusd_sample.jsonl``
(BTC/USD subscribed at depth 25, 2051 updates): its final book, 25 levels a side, each side
extended to 100 levels by repeating its own price gaps and quantities further out (a
depth-25 subscription never shows more, nor does any capture here). A level3 ``L3Book`` with
the same levels, each split into one to three orders, is timed too.

Reference costs, per book message of the capture:

- ``book.apply_update``: the capture's 2051 updates applied to the depth-100 book (its
  snapshot restored, untimed, before each round);
- ``KrakenProtocol.receive_data``: the capture's book frames through the whole core path
  (decode, apply, checksum, ``BookUpdate`` event), as ``bench_core.py`` times a book update.

Each analytics call is timed two ways:

- ``static``: ``--calls`` times in a row on the unchanging book;
- ``after each update`` (L2 only): once after each of the capture's updates applied to the
  depth-100 book, as a program calling it on every ``BookUpdate`` would (the update itself
  untimed; each call timed alone with ``time.perf_counter``, net of the timer's own
  overhead, measured the same way around an empty call). The levels change between calls,
  so this is the figure to set beside the update's cost.

Every figure is the best of ``--rounds`` rounds (the rounds of all cases interleaved), since
other load on a shared machine only ever adds time. Only files inside the repository are
read.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from itertools import pairwise
from pathlib import Path

import msgspec

from kraken_proto import BookResync, BookUpdate, ClientConfig, Emit, KrakenProtocol
from kraken_proto import ProtocolError as ProtocolErrorEvent
from kraken_proto.analytics import (
    aggregate,
    book_pressure,
    depth_ladder,
    fill_estimate,
    imbalance,
    imbalance_metrics,
    microprice,
)
from kraken_proto.book import ACCELERATED, OrderBook
from kraken_proto.events import BookLevel, L3Order
from kraken_proto.level3 import L3Book

CAPTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "data"
    / "kraken-v2-real"
    / "btcusd_sample.jsonl"
)
DEPTH = 100


class _Envelope(msgspec.Struct):
    channel: str | None = None


class _BookFrame(msgspec.Struct):
    type: str
    data: list[BookUpdate]


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_book = msgspec.json.Decoder(_BookFrame).decode

Message = tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]


class Capture:
    """The capture's frames: all of them, the book ones decoded."""

    def __init__(self, path: Path) -> None:
        self.texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        self.snapshot: Message | None = None
        self.updates: list[Message] = []
        self.setup: list[str] = []  # the frames up to the snapshot (status, ack, snapshot)
        self.timed: list[str] = []  # the book update frames after it
        for text in self.texts:
            if _decode_envelope(text).channel != "book":
                if self.snapshot is None:
                    self.setup.append(text)
                continue
            frame = _decode_book(text)
            (entry,) = frame.data
            if frame.type == "snapshot":
                assert self.snapshot is None, "one snapshot expected"
                self.snapshot = (entry.bids, entry.asks)
                self.setup.append(text)
            else:
                self.updates.append((entry.bids, entry.asks))
                self.timed.append(text)


def deep_snapshot(capture: Capture) -> tuple[list[BookLevel], list[BookLevel]]:
    """The depth-100 snapshot the benchmark's book is built from (see the module doc)."""
    assert capture.snapshot is not None
    book = OrderBook("BTC/USD", 25, price_precision=1, qty_precision=8)
    book.apply_snapshot(*capture.snapshot)
    for bids, asks in capture.updates:
        book.apply_update(bids, asks)
    return extended(book.bids(), -1), extended(book.asks(), 1)


def extended(levels: list[BookLevel], direction: int) -> list[BookLevel]:
    """A side (best first) extended to DEPTH levels by repeating its gaps and quantities."""
    gaps = [abs(b.price - a.price) for a, b in pairwise(levels)]
    out = list(levels)
    for index in range(len(levels), DEPTH):
        price = out[-1].price + direction * gaps[index % len(gaps)]
        out.append(BookLevel.of(price, levels[index % len(levels)].qty))
    return out


def l3_book(bids: list[BookLevel], asks: list[BookLevel]) -> L3Book:
    """A level3 book with the same levels, each split into one to three orders."""
    book = L3Book("BTC/USD", DEPTH, price_precision=1, qty_precision=8)
    ids = iter(range(10**6))

    def orders(levels: list[BookLevel]) -> list[L3Order]:
        out = []
        for index, level in enumerate(levels):
            parts = 1 + index % 3
            unit = Decimal("0.00000001")
            share = (level.qty / parts).quantize(unit) if parts > 1 else level.qty
            shares = [share] * (parts - 1) + [level.qty - share * (parts - 1)]
            out += [L3Order(f"O{next(ids)}", level.price, qty) for qty in shares if qty]
        return out

    book.apply_snapshot(orders(bids), orders(asks))
    return book


def time_updates(
    book: OrderBook, snapshot: tuple[list[BookLevel], list[BookLevel]], updates: list[Message]
) -> float:
    """Seconds per ``apply_update`` over the capture's updates."""
    book.apply_snapshot(*snapshot)
    apply = book.apply_update
    gc.collect()
    start = time.perf_counter()
    for bids, asks in updates:
        apply(bids, asks)
    return (time.perf_counter() - start) / len(updates)


def ready_protocol(capture: Capture) -> KrakenProtocol:
    proto = KrakenProtocol(ClientConfig(ping_interval=None, stale_timeout=1e9), replay=True)
    proto.connect(0.0)
    proto.connection_made(0.0)
    for text in capture.setup:
        proto.receive_data(text, 0.0)
    return proto


def check_protocol(capture: Capture) -> None:
    """Untimed: every book frame of the capture must verify."""
    proto = ready_protocol(capture)
    verified = 0
    for text in capture.timed:
        for action in proto.receive_data(text, 1.0):
            if isinstance(action, Emit):
                event = action.event
                if isinstance(event, BookResync | ProtocolErrorEvent):
                    raise SystemExit(f"the capture did not replay cleanly: {event}")
                verified += isinstance(event, BookUpdate)
    if verified != len(capture.timed):
        raise SystemExit(f"{verified} of {len(capture.timed)} book updates verified")


def time_protocol(capture: Capture) -> float:
    """Seconds per book frame through ``KrakenProtocol.receive_data``."""
    proto = ready_protocol(capture)
    receive = proto.receive_data
    frames = capture.timed
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        receive(frame, 1.0)
    return (time.perf_counter() - start) / len(frames)


def timer_overhead(calls: int) -> float:
    """Seconds one timed empty call costs (the timing of :func:`time_after_updates`)."""

    def empty() -> None:
        return None

    clock = time.perf_counter
    total = 0.0
    for _ in range(calls):
        start = clock()
        empty()
        total += clock() - start
    return total / calls


def time_after_updates(
    book: OrderBook,
    snapshot: tuple[list[BookLevel], list[BookLevel]],
    updates: list[Message],
    call: Callable[[], object],
) -> float:
    """Seconds per ``call()`` (of ``book``) made after each update (the updates untimed)."""
    book.apply_snapshot(*snapshot)
    apply = book.apply_update
    clock = time.perf_counter
    total = 0.0
    gc.collect()
    for bids, asks in updates:
        apply(bids, asks)
        start = clock()
        call()
        total += clock() - start
    return total / len(updates)


def time_calls(call: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``call``, made ``calls`` times in a row."""
    loop = range(calls)
    gc.collect()
    start = time.perf_counter()
    for _ in loop:
        call()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    capture = Capture(CAPTURE)
    check_protocol(capture)
    snapshot = deep_snapshot(capture)
    book = OrderBook("BTC/USD", DEPTH, price_precision=1, qty_precision=8)
    book.apply_snapshot(*snapshot)
    updated = OrderBook("BTC/USD", DEPTH, price_precision=1, qty_precision=8)
    level3 = l3_book(*snapshot)
    asks = book.asks()
    one_level = asks[0].qty / 2  # filled by the best ask
    ten_levels = sum((level.qty for level in asks[:10]), Decimal(0))  # walks 10 asks
    everything = sum((level.qty for level in asks), Decimal(0)) + 1  # walks all, incomplete

    def analytics(b: OrderBook | L3Book) -> dict[str, Callable[[], object]]:
        return {
            "depth_ladder(book, 25)": lambda: depth_ladder(b, 25),
            "imbalance(book, 10)": lambda: imbalance(b, 10),
            "microprice(book)": lambda: microprice(b),
            "fill_estimate(buy, 1 level)": lambda: fill_estimate(b, "buy", one_level),
            "fill_estimate(buy, 10 levels)": lambda: fill_estimate(b, "buy", ten_levels),
            "fill_estimate(buy, 100 levels)": lambda: fill_estimate(b, "buy", everything),
            "imbalance_metrics(book, 10)": lambda: imbalance_metrics(b, 10),
            "book_pressure(book, 10)": lambda: book_pressure(b, 10),
            "aggregate(book, 5)": lambda: aggregate(b, 5),
        }

    cases: dict[str, Callable[[], float]] = {
        "book.apply_update (depth 100)": lambda: time_updates(updated, snapshot, capture.updates),
        "KrakenProtocol.receive_data (book frame)": lambda: time_protocol(capture),
    }
    moving: dict[str, Callable[[], float]] = {}
    on_updated = analytics(updated)
    for name, call in analytics(book).items():
        cases[f"L2 {name}"] = partial(time_calls, call, args.calls)
        moving[f"L2 {name}"] = partial(
            time_after_updates, updated, snapshot, capture.updates, on_updated[name]
        )
    for name, call in analytics(level3).items():
        cases[f"L3 {name}"] = partial(time_calls, call, args.calls // 10 or 1)
    best = dict.fromkeys(cases, float("inf"))
    best_moving = dict.fromkeys(moving, float("inf"))
    overhead = float("inf")
    for _ in range(args.rounds):
        for name, case in cases.items():
            best[name] = min(best[name], case())
        for name, case in moving.items():
            best_moving[name] = min(best_moving[name], case())
        overhead = min(overhead, timer_overhead(len(capture.updates)))

    loop = "compiled" if ACCELERATED else "Python (KRAKEN_WS_PURE_PYTHON or not built)"
    print(f"book: BTC/USD from {CAPTURE.name}, {DEPTH} levels a side; update loop: {loop}")
    print(
        f"{len(capture.updates)} updates; best of {args.rounds} rounds of {args.calls} calls; "
        f"timer overhead {overhead * 1e6:.3f} us (subtracted after each update)"
    )
    update = best["book.apply_update (depth 100)"]
    print(f"  {'':<42} {'static':>12}  {'after each update':>17}  (x apply_update)")
    for name, static in best.items():
        after = best_moving.get(name)
        if after is None:
            column, cost = "", static
        else:
            cost = after - overhead  # the figure to compare with an update
            column = f"{cost * 1e6:9.2f} us"
        print(f"  {name:<42} {static * 1e6:9.2f} us  {column:>17}  {cost / update:7.1f}x")


if __name__ == "__main__":
    main()
