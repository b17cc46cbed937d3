"""The sans-IO fan-out (kraken_transports.fanout.encoding): stream ids, records, the
encoder's shadow books and snapshot cadence, sequencing, and the reader's follower."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from books import SYMBOL, Market, level, sessions
from budget import sized
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.config import Precision
from kraken_proto.events import BookResync, BookUpdate, StateChanged, Ticker, Trade
from kraken_transports.fanout.encoding import (
    RESYNC,
    SNAPSHOT,
    UPDATE,
    FanoutEncoder,
    Outgoing,
    Record,
    Sequencer,
    StreamFollower,
    StreamGap,
    StreamId,
    decode_record,
    encode_record,
    shard_of,
)

BOOK = StreamId("book", SYMBOL)
TRADES = StreamId("trade", SYMBOL)


def trade(trade_id: int) -> Trade:
    return Trade(SYMBOL, "buy", Decimal("63000.1"), Decimal("0.5"), "market", trade_id, "t")


def records(outgoing: list[Outgoing], origin: str = "run1") -> list[Record]:
    """``outgoing`` numbered (each stream from 1) and decoded, as a reader gets them."""
    sequencer = Sequencer()
    result = []
    for out in outgoing:
        if sequencer.needs_resume(out.stream):
            sequencer.resume(out.stream, 0)
        data = encode_record(sequencer.seq(out), out.kind, origin, out.sent, out.body)
        result.append(decode_record(data))
    return result


# ------------------------------------------------------------------ names and records


def test_stream_ids_are_checked() -> None:
    assert StreamId.of("book", "BTC/USD") == BOOK and BOOK.is_book and not TRADES.is_book
    with pytest.raises(ValueError, match="channel must be one of"):
        StreamId.of("level3", "BTC/USD")
    with pytest.raises(ValueError, match="symbol must be"):
        StreamId.of("book", "BTC /USD")
    with pytest.raises(ValueError, match="symbol must be"):
        StreamId.of("book", "")


def test_shards_are_a_stable_hash() -> None:
    # CRC32 of the UTF-8 text: the same on every machine and Python version.
    assert [shard_of(s, 2) for s in ("BTC/USD", "ETH/USD", "ADA/USD", "XRP/USD")] == [1, 0, 1, 0]
    assert shard_of("BTC/USD", 1) == 0
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="shards must be an int >= 1"):
            shard_of("BTC/USD", bad)  # type: ignore[arg-type]


def test_records_round_trip_and_garbage_is_refused() -> None:
    data = encode_record(7, UPDATE, "abc", 1.5, msgspec.json.encode(trade(1)))
    record = decode_record(data)
    assert (record.seq, record.kind, record.origin, record.sent) == (7, UPDATE, "abc", 1.5)
    assert msgspec.json.decode(record.body, type=Trade) == trade(1)
    for bad in (b"not json", b'{"seq": 1}', encode_record(0, UPDATE, "a", 0, b"{}")):
        with pytest.raises(ValueError, match="not a fan-out record"):
            decode_record(bad)
    with pytest.raises(ValueError, match="not a fan-out record"):
        decode_record(encode_record(1, "other", "a", 0, b"{}"))


# ------------------------------------------------------------------ the encoder


def test_the_encoder_publishes_market_data_only() -> None:
    encoder = FanoutEncoder()
    ticker = Ticker.of(SYMBOL, 1, 1, 2, 1, 1, 1, 1, 1, 2, 0, 0)
    assert [o.stream for o in encoder.encode(ticker, 1.0)] == [StreamId("ticker", SYMBOL)]
    assert [o.ordinal for o in encoder.encode(trade(1), 1.0) + encoder.encode(trade(2), 2.0)] == [
        0,
        1,
    ]
    assert encoder.encode(StateChanged("a", "b"), 1.0) == []
    assert encoder.stats.ignored == 1 and encoder.stats.events == 3


def test_book_records_snapshot_at_start_every_n_and_when_due() -> None:
    market = Market()
    encoder = FanoutEncoder(snapshot_every=3)
    # An update before any snapshot has no book to apply to: ignored.
    assert encoder.encode(BookUpdate(SYMBOL, (), (), 0), 0.0) == []
    kinds = [o.kind for o in encoder.encode(market.snapshot([level(600_000, 5)], []), 0.0)]
    assert kinds == [SNAPSHOT]
    for _ in range(2):
        assert [o.kind for o in encoder.encode(market.update([level(600_001, 1)], []), 0.0)] == [
            UPDATE
        ]
    third = encoder.encode(market.update([level(600_002, 1)], []), 0.0)
    assert [o.kind for o in third] == [UPDATE, SNAPSHOT]
    encoder.snapshot_due(SYMBOL)
    encoder.snapshot_due("ETH/USD")  # no such book: nothing to do
    assert [o.kind for o in encoder.encode(market.update([], [level(600_100, 1)]), 0.0)] == [
        UPDATE,
        SNAPSHOT,
    ]
    encoder.snapshot_all_due()
    assert len(encoder.encode(market.update([], [level(600_101, 1)]), 0.0)) == 2
    book = encoder.book(SYMBOL)
    assert book is not None and (book.bids(), book.asks()) == market.levels()
    assert encoder.book("ETH/USD") is None


def test_a_resync_of_the_driver_or_a_lost_shadow_publishes_a_resync_record() -> None:
    market = Market()
    encoder = FanoutEncoder()
    encoder.encode(market.snapshot([level(600_000, 5)], [level(600_100, 5)]), 0.0)
    out = encoder.encode(BookResync(SYMBOL, "checksum mismatch", 1), 0.0)
    assert [(o.stream, o.kind) for o in out] == [(BOOK, RESYNC)]
    assert encoder.encode(market.update([level(600_001, 1)], []), 0.0) == []  # not live
    encoder.encode(market.snapshot([level(600_000, 5)], []), 0.0)
    wrong = BookUpdate(SYMBOL, (level(600_003, 1),), (), 12345)
    out = encoder.encode(wrong, 0.0)
    assert [o.kind for o in out] == [RESYNC] and encoder.stats.mismatches == 1
    bad_snapshot = BookUpdate(SYMBOL, (level(600_003, 1),), (), 12345, snapshot=True)
    assert [o.kind for o in encoder.encode(bad_snapshot, 0.0)] == [RESYNC]
    assert encoder.encode(BookResync("ETH/USD", "x", 1), 0.0)[0].kind == RESYNC


def test_encoder_options_are_checked_and_books_take_the_drivers_depth() -> None:
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="snapshot_every"):
            FanoutEncoder(snapshot_every=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth must be None or one of"):
        FanoutEncoder(depth=7)
    market = Market()
    snapshot = market.snapshot([level(600_000, 5)], [])
    encoder = FanoutEncoder(book_info=lambda symbol: (25, 1, 8))
    encoder.encode(snapshot, 0.0)
    book = encoder.book(SYMBOL)
    assert book is not None and (book.depth, book.price_precision, book.qty_precision) == (
        25,
        1,
        8,
    )
    configured = FanoutEncoder(depth=100, precisions={SYMBOL: Precision(price=1, qty=8)})
    configured.encode(snapshot, 0.0)
    book = configured.book(SYMBOL)
    assert book is not None and (book.depth, book.price_precision) == (100, 1)
    inferred = FanoutEncoder(book_info=lambda symbol: None)
    inferred.encode(snapshot, 0.0)
    book = inferred.book(SYMBOL)
    assert book is not None and book.depth == 10 and book.price_precision is None


def test_the_sequencer_continues_after_the_engines_last_number() -> None:
    sequencer = Sequencer()
    out = Outgoing(BOOK, 0, UPDATE, b"{}", 0.0)
    assert sequencer.needs_resume(BOOK)
    sequencer.resume(BOOK, 41)
    assert not sequencer.needs_resume(BOOK) and sequencer.seq(out) == 42
    assert sequencer.seq(out._replace(ordinal=4)) == 46  # 1..3 dropped: a hole
    with pytest.raises(ValueError, match="last_seq"):
        sequencer.resume(BOOK, -1)


# ------------------------------------------------------------------ the follower


def follow(follower: StreamFollower, got: list[Record]) -> list[Any]:
    events: list[Any] = []
    for record in got:
        events.extend(follower.on_record(record, 1.0))
    return events


@given(
    sessions(),
    st.integers(1, 8),
    st.lists(st.integers(0, 60), max_size=4),
    st.integers(0, 3),
)
@sized(40, 400)
def test_reader_books_equal_the_publishers_and_gaps_are_reported(
    events: list[BookUpdate], every: int, lost: list[int], late: int
) -> None:
    """Whatever records are lost or skipped by a late start, every BookUpdate the follower
    yields leaves its book equal to the publisher's after the same event, verified."""
    market = Market()  # replays the events to know the publisher's book after each
    encoder = FanoutEncoder(snapshot_every=every)
    stream: list[tuple[Record, Any]] = []
    out_all: list[Outgoing] = []
    after: list[Any] = []
    for event in events:
        if event.snapshot:
            market.snapshot(list(event.bids), list(event.asks))
        else:
            market.update(list(event.bids), list(event.asks))
        produced = encoder.encode(event, 0.0)
        out_all.extend(produced)
        after.extend([market.levels()] * len(produced))
    numbered = records(out_all)
    stream = [(r, levels) for r, levels in zip(numbered, after, strict=True)]
    kept_at = [i for i in range(len(stream)) if i not in lost and i >= late]
    kept = [stream[i] for i in kept_at]
    follower = StreamFollower(BOOK)
    for record, levels in kept:
        for event in follower.on_record(record, 1.0):
            if type(event) is BookUpdate:
                assert follower.book is not None and follower.book.is_live
                assert follower.book.checksum() == event.checksum
                assert (follower.book.bids(), follower.book.asks()) == levels
            else:
                assert type(event) is BookResync and "lost" in event.reason
    if any(kept_at[0] < i < kept_at[-1] for i in lost if kept_at):
        assert follower.gaps >= 1  # a lost record between two read ones is always seen
    if not lost and not late:
        assert follower.gaps == 0 and follower.book is not None and follower.book.is_live


def test_the_follower_ignores_duplicates_and_reports_restarts_and_resyncs() -> None:
    market = Market()
    encoder = FanoutEncoder()
    out = encoder.encode(market.snapshot([level(600_000, 5)], [level(600_100, 5)]), 0.0)
    out += encoder.encode(market.update([level(600_001, 1)], []), 0.0)
    out += encoder.encode(BookResync(SYMBOL, "checksum mismatch", 1), 0.0)
    first = records(out)
    follower = StreamFollower(BOOK)
    events = follow(follower, first)
    assert [type(e) for e in events] == [BookUpdate, BookUpdate, BookResync]
    assert "publisher: checksum mismatch" in events[2].reason
    assert follow(follower, first) == [] and follower.duplicates == 3
    # The next run numbers on; its first record (a snapshot) rebuilds the book.
    again = FanoutEncoder().encode(market.snapshot([level(600_000, 7)], []), 0.0)
    rerun = Sequencer()
    rerun.resume(BOOK, 3)
    data = encode_record(rerun.seq(again[0]), SNAPSHOT, "run2", 0.0, again[0].body)
    events = follower.on_record(decode_record(data), 2.0)
    # Already resyncing: no second BookResync, the snapshot makes it live again.
    assert [type(e) for e in events] == [BookUpdate] and events[0].snapshot
    assert follower.origin == "run2" and follower.gaps == 1


def test_a_trade_stream_reports_gaps_and_restarts_as_stream_gaps() -> None:
    encoder = FanoutEncoder()
    out = [o for i in range(1, 6) for o in encoder.encode(trade(i), float(i))]
    numbered = records(out)
    follower = StreamFollower(TRADES)
    assert not follower.need_snapshot
    events = follow(follower, [numbered[0], numbered[3]])
    assert [type(e) for e in events] == [Trade, StreamGap, Trade]
    gap = events[1]
    assert (gap.expected, gap.received, gap.reason) == (2, 4, "records 2..3 lost")
    assert events[2].received_at == 1.0 and follower.last_sent == 4.0
    restarted = encode_record(5, UPDATE, "run2", 5.0, numbered[4].body)
    events = follower.on_record(decode_record(restarted), 1.0)
    assert [type(e) for e in events] == [StreamGap, Trade]
    assert events[0].reason == "publisher restarted at record 5"


def test_latest_snapshots_are_applied_only_when_newer() -> None:
    market = Market()
    encoder = FanoutEncoder(snapshot_every=2)
    out = encoder.encode(market.snapshot([level(600_000, 5)], []), 0.0)
    for qty in (1, 2, 3, 4):
        out += encoder.encode(market.update([level(600_001, qty)], []), 0.0)
    numbered = records(out)  # 1 snap, 2 upd, 3 upd, 4 snap, 5 upd, 6 upd, 7 snap
    follower = StreamFollower(BOOK)
    events = follower.on_snapshot(numbered[3], 1.0)
    assert events is not None and events[0].snapshot and follower.position == 4
    assert follower.on_snapshot(numbered[0], 1.0) is None  # older than what was read
    with pytest.raises(ValueError, match="must be a snapshot"):
        follower.on_snapshot(numbered[1], 1.0)
    assert [type(e) for e in follow(follower, numbered[4:])] == [BookUpdate] * 3
    assert follower.on_snapshot(numbered[6], 1.0) is None
    assert follower.gaps == 0


def test_a_checksum_that_fails_at_the_reader_resyncs_its_book() -> None:
    market = Market()
    encoder = FanoutEncoder()
    out = encoder.encode(market.snapshot([level(600_000, 5)], []), 0.0)
    snapshot = records(out)[0]
    follower = StreamFollower(BOOK)
    follow(follower, [snapshot])
    forged = msgspec.json.encode(BookUpdate(SYMBOL, (level(600_002, 1),), (), 99))
    bad = decode_record(encode_record(2, UPDATE, "run1", 0.0, forged))
    events = follower.on_record(bad, 1.0)
    assert [type(e) for e in events] == [BookResync] and "checksum mismatch" in events[0].reason
    assert follower.mismatches == 1 and follower.need_snapshot
    # A fresh snapshot makes it live again; then an update with a price no book accepts.
    follow(follower, [decode_record(encode_record(3, SNAPSHOT, "run1", 0.0, snapshot.body))])
    assert follower.book is not None and follower.book.is_live
    garbage = forged.replace(b'"price":60000.2', b'"price":-1')
    events = follower.on_record(decode_record(encode_record(4, UPDATE, "run1", 0.0, garbage)), 1.0)
    assert [type(e) for e in events] == [BookResync] and "unusable" in events[0].reason
    wrong = msgspec.json.decode(snapshot.body)
    wrong["checksum"] += 1
    events = follower.on_record(
        decode_record(encode_record(5, SNAPSHOT, "run1", 0.0, msgspec.json.encode(wrong))), 1.0
    )
    assert events == [] and follower.mismatches == 2  # still resyncing: no second notice
