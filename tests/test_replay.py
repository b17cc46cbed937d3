"""Tests for kraken_proto.replay: the capture format and deterministic replay of real captures.

Every book message of the real captures must come out as a checksum-verified ``BookUpdate``;
the final books are checked against an independent naive dict model that verifies every
checksum itself.
"""

from __future__ import annotations

import json
import random
import re
import sys
import textwrap
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kraken_proto.actions import Action, CloseConnection, Emit, OpenConnection, ReconnectAfter, Send
from kraken_proto.config import ClientConfig, Precision
from kraken_proto.errors import LocalProtocolError, ParseError
from kraken_proto.events import (
    BookResync,
    BookUpdate,
    Execution,
    GapDetected,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SystemStatus,
    Unsubscribed,
)
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import (
    REPLAY_TOKEN,
    CaptureLine,
    ReplayResult,
    encode_capture_line,
    read_capture,
    replay,
)
from kraken_proto.state import ConnectionState
from kraken_proto.wire import BookFrame, decode_data_frame

# Every test here runs with the compiled L2 update loop and with the Python one.
pytestmark = pytest.mark.usefixtures("book_loop")

# stem: (symbol, depth, book messages, snapshots)
EXPECTED = {
    "btcusd_l2": ("BTC/USD", 10, 301, 5),
    "btcusd_sample": ("BTC/USD", 25, 2052, 1),
    "ethusd_sample": ("ETH/USD", 25, 1129, 1),
    "xrpusd_sample": ("XRP/USD", 25, 1147, 1),
}
STEMS = sorted(EXPECTED)
PRECISIONS = {
    "BTC/USD": Precision(price=1, qty=8),
    "ETH/USD": Precision(price=2, qty=8),
    "XRP/USD": Precision(price=5, qty=8),
}


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def entries(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.strip()]


def with_text(line: str, text: str) -> str:
    entry = json.loads(line)
    return encode_capture_line(entry["t"], entry["dir"], text)


@pytest.fixture(scope="module")
def replays(real_capture_paths: dict[str, Path]) -> dict[str, ReplayResult]:
    return {stem: replay(path) for stem, path in real_capture_paths.items()}


# ----------------------------------------------------------------------------- naive model


def naive_digits(value: Decimal) -> str:
    return format(value, "f").replace(".", "").lstrip("0")


def naive_checksum(bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> int:
    text = "".join(
        naive_digits(price) + naive_digits(asks[price]) for price in sorted(asks)[:10]
    ) + "".join(
        naive_digits(price) + naive_digits(bids[price]) for price in sorted(bids, reverse=True)[:10]
    )
    return zlib.crc32(text.encode("ascii"))


class NaiveBook:
    """A dict book fed from ``json.loads(parse_float=Decimal)`` that checks every checksum."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.messages = 0

    def apply(self, frame: dict[str, Any]) -> None:
        (entry,) = frame["data"]
        if frame["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, entry["bids"]), (self.asks, entry["asks"])):
            for level in levels:
                if level["qty"] == 0:
                    side.pop(level["price"], None)
                else:
                    side[level["price"]] = level["qty"]
        for price in sorted(self.bids, reverse=True)[self.depth :]:
            del self.bids[price]
        for price in sorted(self.asks)[self.depth :]:
            del self.asks[price]
        assert naive_checksum(self.bids, self.asks) == entry["checksum"]
        self.messages += 1


def naive_replay(lines: list[str], *, from_last_snapshot: bool = False) -> NaiveBook:
    frames = [
        json.loads(entry["text"], parse_float=Decimal)
        for entry in entries(lines)
        if entry["dir"] == "in"
    ]
    depth = next(f["result"]["depth"] for f in frames if f.get("method") == "subscribe")
    books = [f for f in frames if f.get("channel") == "book"]
    if from_last_snapshot:
        last = max(i for i, f in enumerate(books) if f["type"] == "snapshot")
        books = books[last:]
    book = NaiveBook(depth)
    for frame in books:
        book.apply(frame)
    return book


def as_pairs(levels: list[Any]) -> list[tuple[str, str]]:
    return [(format(level.price, "f"), format(level.qty, "f")) for level in levels]


def naive_pairs(side: dict[Decimal, Decimal], *, reverse: bool) -> list[tuple[str, str]]:
    return [
        (format(price, "f"), format(side[price], "f")) for price in sorted(side, reverse=reverse)
    ]


# ----------------------------------------------------------------------------- real captures


@pytest.mark.parametrize("stem", STEMS)
def test_replay_real_capture_every_book_message_verified(
    stem: str, replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    symbol, _, messages, snapshots = EXPECTED[stem]
    result = replays[stem]
    updates = result.of_type(BookUpdate)
    assert len(updates) == messages
    assert sum(1 for u in updates if u.snapshot) == snapshots
    assert updates[0].snapshot is True
    assert result.of_type(BookResync) == []
    assert result.of_type(ProtocolError) == []
    assert result.of_type(SubscriptionFailed) == []
    assert result.sent == []
    assert result.protocol.state is ConnectionState.SUBSCRIBED
    # one BookUpdate per book frame, in order, equal to the frame's own entry
    book_lines = [
        e
        for e in entries(lines_of(real_capture_paths[stem]))
        if e["text"].startswith('{"channel":"book"')
    ]
    assert len(book_lines) == messages
    for update, entry in zip(updates, book_lines, strict=True):
        frame = decode_data_frame(entry["text"])
        assert isinstance(frame, BookFrame)
        expected = msgspec.structs.replace(
            frame.data[0], snapshot=frame.type == "snapshot", received_at=entry["t"]
        )
        assert update == expected
        assert update.symbol == symbol


@pytest.mark.parametrize("stem", STEMS)
def test_replay_final_book_equals_naive_model(
    stem: str, replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    symbol, depth, messages, _ = EXPECTED[stem]
    naive = naive_replay(lines_of(real_capture_paths[stem]))
    assert naive.messages == messages  # the naive model verified every checksum itself
    book = replays[stem].protocol.book(symbol)
    assert book is not None
    assert book.is_live
    assert book.depth == depth
    assert as_pairs(book.bids()) == naive_pairs(naive.bids, reverse=True)
    assert as_pairs(book.asks()) == naive_pairs(naive.asks, reverse=False)
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert best_bid is not None
    assert best_ask is not None
    assert best_bid.price == max(naive.bids)
    assert best_bid.qty == naive.bids[max(naive.bids)]
    assert best_ask.price == min(naive.asks)
    assert best_ask.qty == naive.asks[min(naive.asks)]
    assert best_bid.price < best_ask.price
    assert book.checksum() == replays[stem].of_type(BookUpdate)[-1].checksum


def test_btcusd_l2_final_book_is_last_snapshot_plus_its_updates(
    replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    lines = lines_of(real_capture_paths["btcusd_l2"])
    naive = naive_replay(lines, from_last_snapshot=True)
    updates = replays["btcusd_l2"].of_type(BookUpdate)
    last_snapshot = max(i for i, u in enumerate(updates) if u.snapshot)
    assert last_snapshot == 63  # the last snapshot is book message 64 of 301
    assert naive.messages == len(updates) - last_snapshot == 238
    book = replays["btcusd_l2"].protocol.book("BTC/USD")
    assert book is not None
    assert as_pairs(book.bids()) == naive_pairs(naive.bids, reverse=True)
    assert as_pairs(book.asks()) == naive_pairs(naive.asks, reverse=False)
    best_bid = book.best_bid()
    best_ask = book.best_ask()
    assert best_bid is not None
    assert best_ask is not None
    assert (best_bid.price, best_ask.price) == (max(naive.bids), min(naive.asks))


def test_btcusd_l2_each_snapshot_replaces_the_book(real_capture_paths: dict[str, Path]) -> None:
    lines = lines_of(real_capture_paths["btcusd_l2"])
    snapshot_indexes = [i for i, line in enumerate(lines) if '\\"type\\":\\"snapshot\\"' in line]
    assert len(snapshot_indexes) == 5
    previous_count = 0
    for number, index in enumerate(snapshot_indexes):
        # the (re)subscribe ack came first: a fresh book waits for its snapshot
        prefix = replay(lines[:index])
        before = prefix.protocol.book("BTC/USD")
        assert before is not None
        assert not before.is_live
        assert isinstance(prefix.events[-1], Subscribed)
        assert len(prefix.of_type(BookUpdate)) == (0 if number == 0 else previous_count)
        result = replay(lines[: index + 1])
        frame = decode_data_frame(json.loads(lines[index])["text"])
        assert isinstance(frame, BookFrame)
        (snap,) = frame.data
        book = result.protocol.book("BTC/USD")
        assert book is not None
        assert book.is_live
        assert as_pairs(book.bids()) == as_pairs(list(snap.bids))
        assert as_pairs(book.asks()) == as_pairs(list(snap.asks))
        last = result.of_type(BookUpdate)[-1]
        assert last.snapshot is True
        assert last.checksum == snap.checksum
        previous_count = len(result.of_type(BookUpdate)) + updates_between(lines, index)


def updates_between(lines: list[str], index: int) -> int:
    """Book updates after the snapshot at ``index`` up to the next snapshot (or the end)."""
    count = 0
    for line in lines[index + 1 :]:
        text = json.loads(line)["text"]
        if text.startswith('{"channel":"book","type":"snapshot"'):
            break
        if text.startswith('{"channel":"book","type":"update"'):
            count += 1
    return count


def test_a_snapshot_on_a_live_book_replaces_every_level(
    real_capture_paths: dict[str, Path],
) -> None:
    lines = lines_of(real_capture_paths["btcusd_l2"])
    # up to just before the first resubscription: the book is live and has had updates
    result = replay(lines[:18])
    book = result.protocol.book("BTC/USD")
    assert book is not None
    assert book.is_live
    before = (as_pairs(book.bids()), as_pairs(book.asks()))
    snapshot_text = json.loads(lines[116])["text"]  # the last snapshot, 37 s later
    later = decode_data_frame(snapshot_text)
    assert isinstance(later, BookFrame)
    (snap,) = later.data
    expected = (as_pairs(list(snap.bids)), as_pairs(list(snap.asks)))
    assert before != expected
    actions = result.protocol.receive_data(snapshot_text, 10.0)
    events = [a.event for a in actions if isinstance(a, Emit)]
    assert [type(e) for e in events] == [BookUpdate]
    assert events[0].snapshot is True  # type: ignore[union-attr]
    assert (as_pairs(book.bids()), as_pairs(book.asks())) == expected
    assert book.checksum() == snap.checksum


def test_btcusd_l2_acknowledgements(
    replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    result = replays["btcusd_l2"]
    subscribed = result.of_type(Subscribed)
    unsubscribed = result.of_type(Unsubscribed)
    assert len(subscribed) == 8
    assert len(unsubscribed) == 7
    assert {(e.channel, e.symbol, e.req_id) for e in subscribed} == {("book", "BTC/USD", None)}
    assert all(
        e.result == {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"}
        for e in subscribed
    )
    assert {(e.channel, e.symbol, e.req_id) for e in unsubscribed} == {("book", "BTC/USD", None)}
    all_entries = entries(lines_of(real_capture_paths["btcusd_l2"]))
    sub_ts = [e["t"] for e in all_entries if e["text"].startswith('{"method":"subscribe"')]
    unsub_ts = [e["t"] for e in all_entries if e["text"].startswith('{"method":"unsubscribe"')]
    assert [e.received_at for e in subscribed] == sub_ts
    assert [e.received_at for e in unsubscribed] == unsub_ts
    # acks and snapshots alternate as recorded: every unsubscribe is followed by a subscribe
    kinds = [type(e).__name__ for e in result.events if isinstance(e, Subscribed | Unsubscribed)]
    assert kinds[0] == "Subscribed"
    assert "Unsubscribed,Unsubscribed" not in ",".join(kinds)
    subs = result.protocol.subscriptions
    assert [(s.channel, s.symbol) for s in subs.active] == [("book", "BTC/USD")]


@pytest.mark.parametrize("stem", STEMS)
def test_replay_events_received_at_equal_capture_t(
    stem: str, replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    all_entries = entries(lines_of(real_capture_paths[stem]))
    result = replays[stem]
    first_t = all_entries[0]["t"]
    statuses = result.of_type(SystemStatus)
    assert [s.received_at for s in statuses] == [
        e["t"] for e in all_entries if e["text"].startswith('{"channel":"status"')
    ]
    assert [s.connection_id for s in statuses] == [
        json.loads(e["text"])["data"][0]["connection_id"]
        for e in all_entries
        if e["text"].startswith('{"channel":"status"')
    ]
    changes = result.of_type(StateChanged)
    assert [(c.old, c.new) for c in changes] == [
        ("disconnected", "connecting"),
        ("connecting", "subscribing"),
        ("subscribing", "subscribed"),
    ]
    assert all(c.received_at == first_t for c in changes)
    times = {e["t"] for e in all_entries}
    assert all(event.received_at in times for event in result.events)


@pytest.mark.parametrize("stem", STEMS)
def test_replay_is_deterministic(stem: str, real_capture_paths: dict[str, Path]) -> None:
    first = replay(real_capture_paths[stem])
    second = replay(real_capture_paths[stem])
    assert len(first.events) > 1000 or stem == "btcusd_l2"
    assert first.events == second.events
    assert first.actions == second.actions
    assert first.sent == second.sent
    # and the events really compare by value: a changed field breaks equality
    changed = list(second.events)
    changed[-1] = msgspec.structs.replace(changed[-1], received_at=-1.0)
    assert first.events != changed


@pytest.mark.parametrize("stem", STEMS)
def test_replay_with_configured_precisions_gives_the_same_events(
    stem: str, replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    config = ClientConfig(ping_interval=None, precisions=PRECISIONS)
    result = replay(real_capture_paths[stem], config)
    symbol = EXPECTED[stem][0]
    book = result.protocol.book(symbol)
    assert book is not None
    assert (book.price_precision, book.qty_precision) == (
        PRECISIONS[symbol].price,
        PRECISIONS[symbol].qty,
    )
    assert result.events == replays[stem].events
    assert result.of_type(BookResync) == []


def test_replay_with_a_wrong_precision_fails_the_checksum(
    real_capture_paths: dict[str, Path],
) -> None:
    config = ClientConfig(ping_interval=None, precisions={"ETH/USD": {"price": 3, "qty": 8}})
    result = replay(real_capture_paths["ethusd_sample"], config)
    resyncs = result.of_type(BookResync)
    assert [(r.symbol, r.attempt) for r in resyncs] == [("ETH/USD", 1)]
    assert resyncs[0].reason.startswith("checksum mismatch")
    assert result.of_type(BookUpdate) == []


# ----------------------------------------------------------------------------- corrupted checksum


def corrupt_nth_update(lines: list[str], n: int) -> tuple[list[str], float]:
    """Return the lines with the n-th book update's checksum off by one, and its time."""
    out = list(lines)
    seen = 0
    for index, line in enumerate(out):
        entry = json.loads(line)
        if '"type":"update"' in entry["text"] and entry["text"].startswith('{"channel":"book"'):
            seen += 1
            if seen == n:
                match = re.search(r'"checksum":(\d+)', entry["text"])
                assert match is not None
                bad = (int(match.group(1)) + 1) % 2**32
                text = entry["text"].replace(match.group(0), f'"checksum":{bad}')
                out[index] = with_text(line, text)
                return out, entry["t"]
    raise AssertionError("not enough updates")


def test_corrupted_checksum_resyncs_that_symbol_once(real_capture_paths: dict[str, Path]) -> None:
    lines, corrupt_t = corrupt_nth_update(lines_of(real_capture_paths["btcusd_sample"]), 100)
    result = replay(iter(lines))
    resyncs = result.of_type(BookResync)
    assert len(resyncs) == 1
    (resync,) = resyncs
    assert resync.symbol == "BTC/USD"
    assert resync.attempt == 1
    assert resync.reason.startswith("checksum mismatch: computed ")
    assert resync.received_at == corrupt_t
    assert result.sent == [
        '{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},'
        '"req_id":1}',
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},'
        '"req_id":2}',
    ]
    # the snapshot and the 99 good updates before it; later deltas are dropped while resyncing
    assert len(result.of_type(BookUpdate)) == 100
    assert result.of_type(ProtocolError) == []
    changes = [(c.old, c.new) for c in result.of_type(StateChanged)]
    assert ("subscribed", "resyncing") in changes
    # a capture cannot answer the resubscribe: it times out and the symbol is reported failed
    failed = result.of_type(SubscriptionFailed)
    assert [(f.symbol, f.error, f.req_id) for f in failed] == [
        ("BTC/USD", "no acknowledgement within 10 s", 2)
    ]
    assert failed[0].received_at == pytest.approx(corrupt_t + 10.0)
    book = result.protocol.book("BTC/USD")
    assert book is not None
    assert not book.is_live


def test_corrupted_checksum_in_a_replayed_frame_of_btcusd_l2(
    real_capture_paths: dict[str, Path],
) -> None:
    # btcusd_l2 resubscribes by itself: the recorded acks and snapshot heal the book
    lines, corrupt_t = corrupt_nth_update(lines_of(real_capture_paths["btcusd_l2"]), 3)
    result = replay(lines)
    resyncs = result.of_type(BookResync)
    assert [(r.symbol, r.received_at) for r in resyncs] == [("BTC/USD", corrupt_t)]
    assert result.sent[0] == (
        '{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":1}'
    )
    assert result.sent[1] == (
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        '"req_id":2}'
    )
    assert result.of_type(ProtocolError) == []


# ----------------------------------------------------------------------------- read_capture


def test_read_capture_bad_json_names_the_line() -> None:
    lines = [
        encode_capture_line(0.0, "in", '{"channel":"heartbeat"}'),
        "",
        '{"t":1.0,"dir":"in","text":',
    ]
    reader = read_capture(lines)
    assert next(reader) == CaptureLine(0.0, "in", '{"channel":"heartbeat"}')
    with pytest.raises(ParseError, match=r"^capture line 3: ") as info:
        next(reader)
    assert info.value.payload == '{"t":1.0,"dir":"in","text":'


def test_read_capture_bad_dir_names_the_line() -> None:
    lines = ['{"t":0.0,"dir":"in","text":"x"}', '{"t":0.5,"dir":"sideways","text":"x"}']
    with pytest.raises(ParseError, match=r"^capture line 2: dir must be 'in' or 'out'"):
        list(read_capture(lines))


@pytest.mark.parametrize(
    "bad",
    [
        '{"t":"soon","dir":"in","text":"x"}',
        '{"dir":"in","text":"x"}',
        '{"t":1.0,"dir":"in","text":{"channel":"heartbeat"}}',
        '[1.0,"in","x"]',
        "not json at all",
    ],
)
def test_read_capture_rejects_lines_that_are_not_capture_lines(bad: str) -> None:
    with pytest.raises(ParseError, match=r"^capture line 4: "):
        list(read_capture(["", "  ", '{"t":0.0,"dir":"out","text":"x"}', bad]))


def test_read_capture_from_a_path_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        encode_capture_line(0.0, "in", '{"channel":"heartbeat"}') + "\n\n{oops}\n",
        encoding="utf-8",
    )
    with pytest.raises(ParseError, match=r"^capture line 3: "):
        list(read_capture(path))
    with pytest.raises(ParseError, match=r"^capture line 3: "):
        list(read_capture(str(path)))
    with pytest.raises(ParseError, match=r"^capture line 3: "):
        replay(path)


def test_read_capture_skips_blank_lines_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text(
        "\n"
        + encode_capture_line(1.0, "out", '{"method":"ping"}')
        + "\n   \n"
        + encode_capture_line(2.0, "in", '{"channel":"heartbeat"}')
        + "\n\n",
        encoding="utf-8",
    )
    assert list(read_capture(path)) == [
        CaptureLine(1.0, "out", '{"method":"ping"}'),
        CaptureLine(2.0, "in", '{"channel":"heartbeat"}'),
    ]


def test_replay_ignores_out_lines(
    replays: dict[str, ReplayResult], real_capture_paths: dict[str, Path]
) -> None:
    lines = lines_of(real_capture_paths["btcusd_l2"])
    mixed: list[str] = [encode_capture_line(0.0, "out", "garbage that is not JSON")]
    for line in lines:
        mixed.append(line)
        mixed.append(encode_capture_line(json.loads(line)["t"], "out", '{"method":"ping"}'))
        mixed.append("")
    result = replay(mixed)
    assert result.events == replays["btcusd_l2"].events
    assert result.sent == []


def test_replay_of_only_out_lines_does_nothing() -> None:
    result = replay([encode_capture_line(0.0, "out", '{"method":"ping"}'), ""])
    assert result.actions == []
    assert result.events == []
    assert result.protocol.state is ConnectionState.DISCONNECTED


def test_replay_connects_at_the_first_in_line() -> None:
    result = replay(
        [
            encode_capture_line(5.0, "out", "x"),
            encode_capture_line(7.25, "in", '{"channel":"heartbeat"}'),
        ]
    )
    assert result.actions[1] == OpenConnection("wss://ws.kraken.com/v2")
    changes = result.of_type(StateChanged)
    assert [(c.new, c.received_at) for c in changes] == [
        ("connecting", 7.25),
        ("subscribing", 7.25),
        ("subscribed", 7.25),
    ]


# ----------------------------------------------------------------------------- encode_capture_line


def test_encode_capture_line_exact_text() -> None:
    assert (
        encode_capture_line(1.5, "in", '{"channel":"heartbeat"}')
        == '{"t":1.5,"dir":"in","text":"{\\"channel\\":\\"heartbeat\\"}"}'
    )
    assert encode_capture_line(0.0, "out", "") == '{"t":0.0,"dir":"out","text":""}'


@pytest.mark.parametrize(
    ("t", "direction", "text"),
    [
        (0.0, "in", '{"channel":"heartbeat"}'),
        (1234.000001, "out", '{"method":"ping","req_id":1}'),
        (0.1, "in", 'line\nbreak\t"quotes" \\ back\u2603 \u00e9 \x00'),
        (1e-9, "out", ""),
    ],
)
def test_encode_capture_line_round_trips(t: float, direction: str, text: str) -> None:
    line = encode_capture_line(t, direction, text)
    assert "\n" not in line
    assert list(read_capture([line])) == [CaptureLine(t, direction, text)]


def test_encode_capture_line_reproduces_every_real_line(
    real_capture_paths: dict[str, Path],
) -> None:
    count = 0
    for path in real_capture_paths.values():
        for line in lines_of(path):
            entry = json.loads(line)
            assert encode_capture_line(entry["t"], entry["dir"], entry["text"]) == line
            count += 1
    assert count == 377 + 2104 + 1170 + 1192


@pytest.mark.parametrize("direction", ["IN", "inbound", "", "both"])
def test_encode_capture_line_rejects_a_bad_direction(direction: str) -> None:
    with pytest.raises(ValueError, match=r"direction must be 'in' or 'out', not "):
        encode_capture_line(0.0, direction, "x")


# ----------------------------------------------------------------------------- gaps


def without_window(lines: list[str], start: float, end: float) -> list[str]:
    return [line for line in lines if not start <= json.loads(line)["t"] < end]


def test_gap_longer_than_stale_timeout_reconnects(real_capture_paths: dict[str, Path]) -> None:
    lines = lines_of(real_capture_paths["btcusd_sample"])
    kept = without_window(lines, 20.0, 35.0)
    last_before_gap = max(json.loads(line)["t"] for line in kept if json.loads(line)["t"] < 20.0)
    config = ClientConfig(ping_interval=None, rng=random.Random(7))
    result = replay(kept, config)  # must not raise
    changes = result.of_type(StateChanged)
    moves = [(c.old, c.new) for c in changes]
    assert moves[:6] == [
        ("disconnected", "connecting"),
        ("connecting", "subscribing"),
        ("subscribing", "subscribed"),
        ("subscribed", "degraded"),
        ("degraded", "connecting"),
        ("connecting", "subscribing"),
    ]
    degraded = changes[3]
    assert degraded.reason == "stale: no message from Kraken for 10.0 s"
    assert degraded.retry == 1
    assert degraded.delay is not None
    assert 0 < degraded.delay <= 0.1
    assert degraded.received_at == pytest.approx(last_before_gap + 10.0)
    assert changes[4].received_at == pytest.approx(degraded.received_at + degraded.delay)
    others = [a for a in result.actions if not isinstance(a, Emit)]
    assert others == [
        OpenConnection("wss://ws.kraken.com/v2"),
        CloseConnection(1000, degraded.reason),
        ReconnectAfter(degraded.delay, degraded.reason),
        OpenConnection("wss://ws.kraken.com/v2"),
        Send(
            '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},'
            '"req_id":1}'
        ),
    ]
    # only the updates before the gap were applied: after the reconnect no snapshot came
    before_gap = sum(
        1
        for line in kept
        if json.loads(line)["t"] < 20.0 and json.loads(line)["text"].startswith('{"channel":"book"')
    )
    assert len(result.of_type(BookUpdate)) == before_gap
    assert result.of_type(ProtocolError) == []
    # the same seed gives the same session
    assert replay(kept, ClientConfig(ping_interval=None, rng=random.Random(7))).events == (
        result.events
    )


def test_replay_with_default_config_is_deterministic_across_a_reconnect(
    real_capture_paths: dict[str, Path],
) -> None:
    kept = without_window(lines_of(real_capture_paths["btcusd_sample"]), 20.0, 35.0)
    assert replay(kept).events == replay(kept).events


# ----------------------------------------------------------------------------- usage & API


def docstring_example() -> str:
    # ``kraken_proto.replay`` is the function (re-exported by the package), not the module
    doc = sys.modules["kraken_proto.replay"].__doc__
    assert doc is not None
    block = doc.split("::", 1)[1]
    return textwrap.dedent(block).strip()


def test_module_docstring_usage_works(real_capture_paths: dict[str, Path]) -> None:
    example = docstring_example()
    assert example.splitlines() == [
        'result = replay("capture.jsonl")',
        "assert not result.of_type(ProtocolError)",
        'book = result.protocol.book("BTC/USD")',
    ]
    path = str(real_capture_paths["btcusd_sample"])
    namespace: dict[str, Any] = {"replay": replay, "ProtocolError": ProtocolError}
    exec(example.replace("capture.jsonl", path), namespace)
    book = namespace["book"]
    assert book is not None
    assert book.is_live
    assert book.best_bid().price < book.best_ask().price
    assert isinstance(namespace["result"], ReplayResult)


def test_replay_result_views_are_consistent(replays: dict[str, ReplayResult]) -> None:
    result = replays["btcusd_l2"]
    assert result.events == [a.event for a in result.actions if isinstance(a, Emit)]
    assert result.sent == [a.text for a in result.actions if isinstance(a, Send)]
    assert result.of_type(SystemStatus) == [e for e in result.events if isinstance(e, SystemStatus)]
    assert result.of_type(BookResync) == []
    kinds = {type(e) for e in result.events}
    assert kinds == {StateChanged, SystemStatus, Subscribed, Unsubscribed, BookUpdate}


def test_replay_into_a_given_protocol(real_capture_paths: dict[str, Path]) -> None:
    protocol = KrakenProtocol(ClientConfig(ping_interval=None, precisions=PRECISIONS), replay=True)
    result = replay(real_capture_paths["xrpusd_sample"], protocol=protocol)
    assert result.protocol is protocol
    book = protocol.book("XRP/USD")
    assert book is not None
    assert book.price_precision == 5
    assert len(result.of_type(BookUpdate)) == 1147


def test_replay_needs_a_protocol_in_replay_mode(real_capture_paths: dict[str, Path]) -> None:
    """Issue 9, item 7: adopting unsolicited subscriptions is replay-only; a live-mode
    protocol would refuse every ack of the capture, so replay() refuses it up front."""
    live = KrakenProtocol(ClientConfig(ping_interval=None))
    with pytest.raises(LocalProtocolError, match="replay=True"):
        replay(real_capture_paths["xrpusd_sample"], protocol=live)
    assert live.state is ConnectionState.DISCONNECTED
    assert replay([]).protocol.is_replay


def test_replay_of_an_iterator_and_of_nothing(real_capture_paths: dict[str, Path]) -> None:
    def generate() -> Iterator[str]:
        yield from lines_of(real_capture_paths["ethusd_sample"])

    assert len(replay(generate()).of_type(BookUpdate)) == 1129
    empty = replay([])
    assert empty.actions == []
    assert empty.protocol.state is ConnectionState.DISCONNECTED


def test_replay_keeps_going_over_malformed_frames() -> None:
    lines = [
        encode_capture_line(0.0, "in", '{"channel":"heartbeat"}'),
        encode_capture_line(0.1, "in", "{not json"),
        encode_capture_line(0.2, "in", '{"Error":"Exceeded msg rate"}'),
        encode_capture_line(
            0.3,
            "in",
            '{"channel":"status","type":"update","data":[{"system":"online",'
            '"connection_id":18125794168470749634}]}',
        ),
    ]
    result = replay(lines)
    errors = result.of_type(ProtocolError)
    assert [e.received_at for e in errors] == [0.1, 0.2]
    assert errors[0].error.startswith("malformed JSON")
    assert errors[1].error == "Kraken error: Exceeded msg rate"
    assert result.of_type(SystemStatus) == [
        SystemStatus("online", None, None, 18125794168470749634, 0.3)
    ]


def heartbeat_capture(last: float, gap: float) -> list[str]:
    """A trade ack, heartbeats every second up to ``last``, then one after ``gap`` seconds."""
    ack = (
        '{"method":"subscribe","result":{"channel":"trade","snapshot":false,'
        '"symbol":"BTC/USD"},"success":true}'
    )
    lines = [encode_capture_line(0.0, "in", ack)]
    t = 0.5
    while t < last:
        lines.append(encode_capture_line(t, "in", '{"channel":"heartbeat"}'))
        t += 1.0
    lines.append(encode_capture_line(last, "in", '{"channel":"heartbeat"}'))
    lines.append(encode_capture_line(last + gap, "in", '{"channel":"heartbeat"}'))
    return lines


def stale_moves(lines: list[str]) -> list[tuple[str, str]]:
    result = replay(lines, ClientConfig(ping_interval=None, rng=random.Random(1)))
    return [(c.old, c.new) for c in result.of_type(StateChanged)][3:6]


def test_gap_after_a_heartbeat_reconnects() -> None:
    assert (28.5 + 10.0) - 28.5 == 10.0
    assert stale_moves(heartbeat_capture(28.5, 15.0)) == [
        ("subscribed", "degraded"),
        ("degraded", "connecting"),
        ("connecting", "subscribing"),
    ]
    assert stale_moves(heartbeat_capture(28.5, 9.0)) == []


@pytest.mark.parametrize("last", [28.400893, 14.611357, 8.30947])
def test_gap_after_a_heartbeat_at_an_unlucky_time_reconnects(last: float) -> None:
    assert (last + 10.0) - last < 10.0
    assert stale_moves(heartbeat_capture(last, 15.0)) == [
        ("subscribed", "degraded"),
        ("degraded", "connecting"),
        ("connecting", "subscribing"),
    ]


def test_replay_stops_firing_a_deadline_that_does_not_move(
    real_capture_paths: dict[str, Path],
) -> None:
    class Stuck(KrakenProtocol):
        """A protocol whose timer never advances its deadline (a bug replay must survive)."""

        fired = 0

        def next_deadline(self) -> float | None:
            return 0.5 if self.state is ConnectionState.SUBSCRIBED else super().next_deadline()

        def handle_timer(self, now: float) -> list[Action]:
            Stuck.fired += 1
            return []

    lines = lines_of(real_capture_paths["btcusd_l2"])[:20]
    result = replay(lines, protocol=Stuck(ClientConfig(ping_interval=None), replay=True))
    assert result.of_type(BookUpdate)
    assert 0 < Stuck.fired <= len(lines)


def test_a_private_capture_replays_with_a_stand_in_token() -> None:
    ack = (
        '{"method":"subscribe","req_id":1,"result":{"channel":"executions"},"success":true,'
        '"time_in":"2026-08-01T02:53:53.184174Z","time_out":"2026-08-01T02:53:53.184216Z"}'
    )
    frames = [
        ack,
        '{"channel":"executions","type":"snapshot","data":[],"sequence":1}',
        '{"channel":"executions","type":"update","data":[{"exec_type":"new","order_id":"A"}],'
        '"sequence":2}',
        '{"channel":"executions","type":"update","data":[{"exec_type":"new","order_id":"C"}],'
        '"sequence":4}',
    ]
    lines = [encode_capture_line(0.1 * i, "in", text) for i, text in enumerate(frames)]
    config = ClientConfig(
        ping_interval=None, api_key="KEY123", api_secret="c2VjcmV0c2VjcmV0", rng=random.Random(0)
    )
    result = replay(lines, protocol=KrakenProtocol(config, private=True, replay=True))
    assert [e.order_id for e in result.of_type(Execution)] == ["A"]
    assert [(g.expected, g.received) for g in result.of_type(GapDetected)] == [(3, 4)]
    assert [json.loads(text)["method"] for text in result.sent] == ["unsubscribe", "subscribe"]
    assert all(json.loads(text)["params"]["token"] == REPLAY_TOKEN for text in result.sent)
