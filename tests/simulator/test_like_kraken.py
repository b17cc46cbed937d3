"""The simulator publishes books like Kraken: measured on its stream and on real captures.

Two reference clients, written here with plain ``Decimal`` and ``zlib.crc32``, replay every
book message: one truncates its book to the depth after every level (as python-kraken-sdk
does), the other after every message. Both must verify every checksum, end every message
with the same book, and every message must follow Kraken's publishing rule (issue 11, 1):
applied change by change to the top N levels, a quantity change or a new price inside
the top N is sent, a removal inside it is sent as qty 0 and at once followed by the
refill (the level now at rank N), nothing outside it is sent, and no new price comes
before a removal on the same side.

:func:`analyse` also measures what a client can notice: levels per message, two-sided
messages, repeated prices, the spread in ticks, the gaps between messages, the delay
from ack to snapshot and the skew of the timestamps against the arrival time. The ranges
asserted (:data:`RANGES`, :data:`SPREADS`) are checked against the real captures in
``tests/data/kraken-v2-real`` as well, so they are grounded in data.
"""

from __future__ import annotations

import json
import statistics
import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kraken_proto.actions import Send
from kraken_proto.simulator import DEFAULT_SYMBOLS, FakeExchange, ServerAction

REAL = Path(__file__).resolve().parent.parent / "data" / "kraken-v2-real"
PRECISIONS = {"BTC/USD": (1, 8), "ETH/USD": (2, 8), "XRP/USD": (5, 8)}
SYMBOLS = tuple(PRECISIONS)

# --------------------------------------------------------------------------- reference books


def digits(value: Decimal, precision: int) -> str:
    """Kraken's checksum digits: the value at its precision, no dot, no leading zeros."""
    return f"{value:.{precision}f}".replace(".", "").lstrip("0")


class Side:
    """One side of a client book: prices kept sorted best first, quantities by price."""

    def __init__(self, best_first_sign: int) -> None:
        self.sign = best_first_sign  # sort key = sign * price: asks 1, bids -1
        self.keys: list[Decimal] = []
        self.qty: dict[Decimal, Decimal] = {}

    def __contains__(self, price: Decimal) -> bool:
        return price in self.qty

    def __len__(self) -> int:
        return len(self.keys)

    def set(self, price: Decimal, qty: Decimal) -> None:
        if price not in self.qty:
            insort(self.keys, self.sign * price)
        self.qty[price] = qty

    def remove(self, price: Decimal) -> None:
        del self.keys[bisect_left(self.keys, self.sign * price)]
        del self.qty[price]

    def worse_than_all(self, price: Decimal) -> bool:
        return bool(self.keys) and self.sign * price > self.keys[-1]

    def truncate(self, depth: int) -> None:
        while len(self.keys) > depth:
            del self.qty[self.sign * self.keys.pop()]

    def top(self, count: int) -> list[tuple[Decimal, Decimal]]:
        return [(self.sign * key, self.qty[self.sign * key]) for key in self.keys[:count]]

    def best(self) -> Decimal:
        return self.sign * self.keys[0]


class Book:
    """A client book at one depth that verifies Kraken's checksum after every message.

    ``per_level`` truncates to the depth after every level and checks every level against
    Kraken's publishing rule; otherwise the book truncates once, after the message.
    """

    def __init__(self, depth: int, precisions: tuple[int, int], *, per_level: bool) -> None:
        self.depth = depth
        self.precisions = precisions
        self.per_level = per_level
        self.bids = Side(-1)
        self.asks = Side(1)
        self.violations: list[str] = []

    def checksum(self) -> int:
        price, qty = self.precisions
        text = "".join(
            digits(p, price) + digits(q, qty)
            for side in (self.asks, self.bids)
            for p, q in side.top(10)
        )
        return zlib.crc32(text.encode("ascii"))

    def apply(self, entry: dict[str, Any], snapshot: bool) -> bool:
        """Apply one book message; whether the checksum verified."""
        if snapshot:
            self.bids, self.asks = Side(-1), Side(1)
        for side, levels in ((self.bids, entry["bids"]), (self.asks, entry["asks"])):
            if self.per_level and not snapshot:
                self._checked(side, levels)
            else:
                for level in levels:
                    if level["qty"] == 0:
                        if level["price"] in side:
                            side.remove(level["price"])
                    else:
                        side.set(level["price"], level["qty"])
            side.truncate(self.depth)
        return self.checksum() == entry["checksum"]

    def _checked(self, side: Side, levels: list[dict[str, Any]]) -> None:
        depth, fail = self.depth, self.violations.append
        refill_due = inserted = False
        for level in levels:
            price, qty = level["price"], level["qty"]
            if refill_due:
                refill_due = False
                if qty == 0 or price in side or not (side.worse_than_all(price) or not side):
                    fail(f"a removal not followed by its refill: {price} {qty}")
            elif qty == 0:
                if price not in side:
                    fail(f"a removal of a price outside the window: {price}")
                    continue
                if inserted:
                    fail(f"a removal after a new price on the same side: {price}")
                refill_due = len(side) == depth
                side.remove(price)
                continue
            elif price not in side and len(side) == depth and side.worse_than_all(price):
                fail(f"a level outside the window: {price} {qty}")
            elif price not in side:
                inserted = True
            side.set(price, qty)
            side.truncate(depth)
        if refill_due:
            fail("a removal not followed by its refill (end of message)")

    def same_as(self, other: Book) -> bool:
        """Whether both books hold the same levels."""
        return self.bids.qty == other.bids.qty and self.asks.qty == other.asks.qty


# --------------------------------------------------------------------------- analysis


def parse_time(text: str) -> float:
    """Unix seconds of an RFC3339 ``...Z`` stamp with any number of fraction digits."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return seconds.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


@dataclass
class Stats:
    """What :func:`analyse` measured on one symbol's book stream."""

    updates: int = 0
    levels: list[int] = field(default_factory=list)
    two_sided: int = 0
    repeated: int = 0  # messages with the same price twice on one side
    spreads: list[int] = field(default_factory=list)  # in ticks, after each update
    gaps: list[float] = field(default_factory=list)  # seconds between update timestamps
    snapshot_delays: list[float] = field(default_factory=list)  # seconds after the ack
    skews: list[float] = field(default_factory=list)  # timestamp minus arrival, seconds
    on_grid: int = 0  # timestamps on a 50 ms grid
    mismatches: dict[str, int] = field(default_factory=lambda: {"level": 0, "message": 0})
    disagreements: int = 0  # messages after which the two clients' books differ
    violations: list[str] = field(default_factory=list)


def analyse(frames: Iterable[tuple[float, str]], symbol: str, precisions: tuple[int, int]) -> Stats:
    """Replay one symbol's book frames (arrival time, text) through both reference books."""
    tick = Decimal(1).scaleb(-precisions[0])
    stats = Stats()
    books: dict[str, Book] = {}
    acked_at = anchor = last_stamp = None
    for t, text in frames:
        frame = json.loads(text, parse_float=Decimal)
        result = frame.get("result")
        if frame.get("method") == "subscribe" and frame.get("success") and result:
            if result["channel"] == "book" and result["symbol"] == symbol:
                depth = result["depth"]
                books = {
                    "level": Book(depth, precisions, per_level=True),
                    "message": Book(depth, precisions, per_level=False),
                }
                acked_at = t
                if anchor is None:  # wall clock minus arrival time, from the first ack
                    anchor = parse_time(frame["time_out"]) - t
            continue
        if frame.get("channel") != "book" or frame["data"][0]["symbol"] != symbol:
            continue
        (entry,) = frame["data"]
        snapshot = frame["type"] == "snapshot"
        for name, book in books.items():
            stats.mismatches[name] += not book.apply(entry, snapshot)
        if not books["level"].same_as(books["message"]):
            stats.disagreements += 1
        stamp = parse_time(entry["timestamp"])
        stats.on_grid += round(stamp * 1e6) % 50_000 == 0
        if snapshot:
            assert acked_at is not None
            stats.snapshot_delays.append(t - acked_at)
            last_stamp = None
            continue
        stats.updates += 1
        bids, asks = entry["bids"], entry["asks"]
        stats.levels.append(len(bids) + len(asks))
        stats.two_sided += bool(bids) and bool(asks)
        stats.repeated += any(
            len({lv["price"] for lv in side}) < len(side) for side in (bids, asks)
        )
        book = books["level"]
        stats.spreads.append(int((book.asks.best() - book.bids.best()) / tick))
        if last_stamp is not None:
            stats.gaps.append(stamp - last_stamp)
        last_stamp = stamp
        assert anchor is not None
        stats.skews.append(stamp - (anchor + t))
    stats.violations = books["level"].violations if books else []
    return stats


# Kraken's ranges: every real capture falls in them (test_real_captures_fall_in_the_ranges).
RANGES: dict[str, tuple[float, float]] = {
    "levels_mean": (1.2, 2.0),  # real 1.28-1.94
    "levels_p90": (2, 3),  # real 2-3
    "levels_max": (3, 6),  # real 3-6
    "two_sided_share": (0.0, 0.005),  # real 0-0.24%
    "repeated_share": (0.0, 0.02),  # real 0-1%
    "gap_median_ms": (0.0, 5.0),  # real 0.94-2.67 ms
    "gap_p90_ms": (20.0, 1000.0),  # real 53-735 ms
    "gap_max_s": (0.5, 10.0),  # real 1.5-3.1 s: silences of seconds
    "skew_median_ms": (-10.0, 5.0),  # real -5.8 to -0.4 ms
    "skew_p01_ms": (-150.0, 5.0),  # real 1st percentile -46 to -15 ms
    "on_grid_share": (0.0, 0.01),  # real 0
}
SNAPSHOT_DELAYS = (0.010, 0.500)  # seconds from ack to snapshot: real 0.013-0.466
# Spread in ticks after each update: (median range, 90th percentile range, maximum).
SPREADS: dict[str, tuple[tuple[int, int], tuple[int, int], int]] = {
    "BTC/USD": ((1, 1), (1, 2), 100),  # real median 1, p90 1, max 64
    "ETH/USD": ((2, 6), (8, 24), 120),  # real 4, 16, 25
    "XRP/USD": ((2, 6), (8, 24), 120),  # real 3, 13, 19
}


def measures(stats: Stats) -> dict[str, float]:
    """The measures :data:`RANGES` bounds, from one stream's statistics."""
    return {
        "levels_mean": statistics.mean(stats.levels),
        "levels_p90": quantile(stats.levels, 0.9),
        "levels_max": max(stats.levels),
        "two_sided_share": stats.two_sided / stats.updates,
        "repeated_share": stats.repeated / stats.updates,
        "gap_median_ms": 1000 * statistics.median(stats.gaps),
        "gap_p90_ms": 1000 * quantile(stats.gaps, 0.9),
        "gap_max_s": max(stats.gaps),
        "skew_median_ms": 1000 * statistics.median(stats.skews),
        "skew_p01_ms": 1000 * quantile(stats.skews, 0.01),
        "on_grid_share": stats.on_grid / stats.updates,
    }


def assert_clean(stats: Stats) -> None:
    """Both reference books verified every checksum, agreed, and saw no rule broken."""
    assert stats.mismatches == {"level": 0, "message": 0}
    assert stats.disagreements == 0
    assert stats.violations == []


def assert_like_kraken(stats: Stats, symbol: str) -> None:
    """The checks of every stream, real or simulated."""
    assert stats.updates > 200
    assert_clean(stats)
    for name, value in measures(stats).items():
        low, high = RANGES[name]
        assert low <= value <= high, (symbol, name, value)
    low, high = SNAPSHOT_DELAYS
    assert stats.snapshot_delays and all(low <= d <= high for d in stats.snapshot_delays)
    (median_low, median_high), (p90_low, p90_high), most = SPREADS[symbol]
    assert median_low <= statistics.median(stats.spreads) <= median_high, symbol
    assert p90_low <= quantile(stats.spreads, 0.9) <= p90_high, symbol
    assert max(stats.spreads) <= most, symbol


# --------------------------------------------------------------------------- real captures


def real_frames(path: Path) -> list[tuple[float, str]]:
    """The incoming frames of a capture, with their arrival times."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(line["t"], line["text"]) for line in lines if line["dir"] == "in"]


REAL_CAPTURES = {
    "btcusd_l2": "BTC/USD",
    "btcusd_sample": "BTC/USD",
    "ethusd_sample": "ETH/USD",
    "xrpusd_sample": "XRP/USD",
}


@pytest.mark.parametrize("stem", sorted(REAL_CAPTURES))
def test_real_captures_fall_in_the_ranges(stem: str) -> None:
    symbol = REAL_CAPTURES[stem]
    stats = analyse(real_frames(REAL / f"{stem}.jsonl"), symbol, PRECISIONS[symbol])
    assert_like_kraken(stats, symbol)


def test_the_reference_books_catch_what_kraken_never_sends() -> None:
    # Each message below breaks the rule once; the per-level book names how.
    book = Book(2, (1, 8), per_level=True)
    snapshot = {
        "bids": [{"price": Decimal("9.0"), "qty": Decimal(1)}],
        "asks": [
            {"price": Decimal("10.0"), "qty": Decimal(1)},
            {"price": Decimal("10.2"), "qty": Decimal(1)},
        ],
        "checksum": 0,
    }
    cases = [
        ([("10.5", "0")], "a removal of a price outside the window"),
        ([("10.6", "1")], "a level outside the window"),
        ([("10.1", "1"), ("10.0", "0"), ("10.3", "1")], "a removal after a new price"),
        ([("10.0", "0"), ("10.2", "2")], "a removal not followed by its refill"),
        ([("10.0", "0")], "end of message"),
    ]
    for asks, expected in cases:
        book.apply(snapshot, snapshot=True)
        entry = {
            "bids": [],
            "asks": [{"price": Decimal(p), "qty": Decimal(q)} for p, q in asks],
            "checksum": 0,
        }
        book.violations.clear()
        book.apply(entry, snapshot=False)
        assert any(expected in v for v in book.violations), (asks, book.violations)


# --------------------------------------------------------------------------- the simulator


def sent(actions: list[ServerAction], t: float) -> list[tuple[float, str]]:
    """The texts of ``actions`` (all sends), each with arrival time ``t``."""
    out = []
    for action in actions:
        assert isinstance(action, Send), action
        out.append((t, action.text))
    return out


def sim_frames(depth: int, symbols: tuple[str, ...], seconds: float) -> list[tuple[float, str]]:
    """One connection subscribed to ``symbols`` at ``depth``, run on a fake clock."""
    exchange = FakeExchange(
        seed=7, symbols={s: DEFAULT_SYMBOLS[s] for s in symbols}, idle_timeout=None
    )
    connection = exchange.open_connection(0.0)
    frames = sent(connection.connection_made(0.0), 0.0)
    request = {
        "method": "subscribe",
        "params": {"channel": "book", "symbol": list(symbols), "depth": depth},
    }
    frames += sent(connection.receive_data(json.dumps(request), 0.7), 0.7)
    while (deadline := connection.next_deadline()) is not None and deadline <= seconds:
        frames += sent(connection.handle_timer(deadline), deadline)
    return frames


@pytest.mark.parametrize(("depth", "seconds"), [(10, 120.0), (25, 120.0)])
def test_the_simulator_publishes_like_kraken(depth: int, seconds: float) -> None:
    frames = sim_frames(depth, SYMBOLS, seconds)
    for symbol in SYMBOLS:
        assert_like_kraken(analyse(frames, symbol, PRECISIONS[symbol]), symbol)
    stamps: dict[str, set[str]] = {symbol: set() for symbol in SYMBOLS}
    for _, text in frames:
        if '"channel":"book","type":"update"' in text:
            entry = json.loads(text)["data"][0]
            stamps[entry["symbol"]].add(entry["timestamp"])
    # Every market has its own times: no shared grid of stamps.
    assert len(stamps["BTC/USD"] & stamps["ETH/USD"]) < 0.01 * len(stamps["BTC/USD"])


@pytest.mark.parametrize(("depth", "seconds"), [(100, 40.0), (500, 25.0), (1000, 25.0)])
def test_deep_books_follow_the_rule_for_both_clients(depth: int, seconds: float) -> None:
    symbols = ("BTC/USD", "XRP/USD")
    frames = sim_frames(depth, symbols, seconds)
    for symbol in symbols:
        stats = analyse(frames, symbol, PRECISIONS[symbol])
        assert stats.updates > 20 * seconds
        assert_clean(stats)
