"""The sans-IO part of the fan-out: streams, records, sequence numbers and the snapshot cadence.

Nothing here does IO or reads a clock; the publisher and the reader feed it.

- Every published event belongs to one *stream*, a :class:`StreamId`: one channel and one
  symbol (``book`` / ``BTC/USD``). Each stream has its own sequence numbers, 1, 2, 3, ...
- A :class:`Record` is what travels through the engine: the stream's sequence number, the
  kind (``update``: an event; ``snapshot``: the whole verified book; ``resync``: the book
  stopped being trustworthy), the publisher's id (``origin``), the publisher's wall-clock
  time of receipt (``sent``) and the event itself, as msgspec JSON (``body``).
- :class:`FanoutEncoder` turns the events of a driver into unsequenced :class:`Outgoing`
  records. It keeps a shadow copy of every book, verified with the checksum each update
  carries, and adds a ``snapshot`` record at the first snapshot, after every resync, every
  ``snapshot_every`` updates and whenever :meth:`FanoutEncoder.snapshot_due` asks for one
  (after records were lost on the way to the engine). Each outgoing record has a per-stream
  *ordinal*; the writer turns it into the sequence number (:class:`Sequencer`), so a record
  dropped between the two leaves a hole in the numbers where it was.
- :class:`StreamFollower` is the reader's side of one stream: it checks that sequence
  numbers are contiguous and rebuilds the book from snapshots and updates, verifying the
  checksum of each exactly as the direct client does; on a gap it reports
  :class:`~kraken_proto.events.BookResync` (book streams) or :class:`StreamGap` (the others),
  and waits for a snapshot.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import msgspec

from kraken_proto.book import OrderBook
from kraken_proto.config import Precision
from kraken_proto.events import OHLC, BookLevel, BookResync, BookUpdate, Event, Ticker, Trade
from kraken_proto.subscriptions import BOOK_DEPTHS

__all__ = [
    "BOOK",
    "CHANNELS",
    "BookInfo",
    "BookSnapshot",
    "EncoderStats",
    "FanoutEncoder",
    "Outgoing",
    "RESYNC",
    "Record",
    "SNAPSHOT",
    "Sequencer",
    "StreamFollower",
    "StreamGap",
    "StreamId",
    "UPDATE",
    "decode_record",
    "encode_record",
    "shard_of",
]

BOOK = "book"
"""The channel whose streams carry snapshots and are verified."""
CHANNELS = ("book", "ticker", "trade", "ohlc")
"""The channels the fan-out publishes (one stream per channel and symbol)."""

UPDATE = "update"
SNAPSHOT = "snapshot"
RESYNC = "resync"
KINDS = (UPDATE, SNAPSHOT, RESYNC)
"""The kinds of record: an event, a full verified book, a book that stopped being valid."""

_CHANNEL_OF: dict[type, str] = {BookUpdate: BOOK, Ticker: "ticker", Trade: "trade", OHLC: "ohlc"}
_TYPE_OF: dict[str, type[Any]] = {BOOK: BookUpdate, "ticker": Ticker, "trade": Trade, "ohlc": OHLC}
_set = msgspec.structs.force_setattr


class StreamId(NamedTuple):
    """One stream: a channel (``book``, ``ticker``, ``trade``, ``ohlc``) and a symbol."""

    channel: str
    symbol: str

    @classmethod
    def of(cls, channel: str, symbol: str) -> StreamId:
        """A checked stream id: raises ``ValueError`` naming a bad ``channel`` or ``symbol``."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        if not isinstance(symbol, str) or not symbol or any(c.isspace() for c in symbol):
            raise ValueError(f"symbol must be a non-empty string without spaces, got {symbol!r}")
        return cls(channel, symbol)

    @property
    def is_book(self) -> bool:
        """Whether this stream carries a book (snapshots, checksums)."""
        return self.channel == BOOK


def shard_of(symbol: str, shards: int) -> int:
    """The shard (``0 .. shards - 1``) that publishes ``symbol``: a stable hash (CRC32 of
    the UTF-8 text) modulo ``shards``, the same on every machine and Python version."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be an int >= 1, got {shards!r}")
    return zlib.crc32(symbol.encode()) % shards


class Record(msgspec.Struct, frozen=True):
    """What one engine entry holds (encoded as JSON by :func:`encode_record`).

    ``seq`` is the stream's sequence number (from 1, contiguous unless records were lost),
    ``kind`` one of ``update``, ``snapshot``, ``resync``, ``origin`` the id of the publisher
    run that wrote it, ``sent`` that publisher's ``time.time()`` when it received the event,
    and ``body`` the event (an ``update``: the event itself; a ``snapshot``: a
    :class:`BookSnapshot`; a ``resync``: a :class:`~kraken_proto.events.BookResync`).
    """

    seq: int
    kind: str
    origin: str
    sent: float
    body: msgspec.Raw


class BookSnapshot(msgspec.Struct, frozen=True):
    """The whole verified book of one symbol, as a snapshot record carries it.

    ``checksum`` is the CRC32 of these levels (Kraken's checksum of the book at this
    point); ``depth`` and the precisions are those of the publisher's book, so that the
    reader's book truncates and checksums exactly as it does.
    """

    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    checksum: int
    depth: int
    price_precision: int | None = None
    qty_precision: int | None = None
    timestamp: str | None = None


_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(Record).decode
_decode_snapshot = msgspec.json.Decoder(BookSnapshot).decode
_decode_resync = msgspec.json.Decoder(BookResync).decode
_DECODERS: dict[str, Callable[[bytes], Any]] = {
    channel: msgspec.json.Decoder(kind).decode for channel, kind in _TYPE_OF.items()
}


def encode_record(seq: int, kind: str, origin: str, sent: float, body: bytes) -> bytes:
    """The bytes of one record (``body`` is already msgspec JSON)."""
    return _encode(Record(seq, kind, origin, sent, msgspec.Raw(body)))


def decode_record(data: bytes | bytearray | memoryview) -> Record:
    """A record from its bytes; ``ValueError`` if they are not one."""
    try:
        record = _decode_record(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a fan-out record: {exc}") from None
    if record.kind not in KINDS or record.seq < 1:
        raise ValueError(f"not a fan-out record: kind {record.kind!r}, seq {record.seq}")
    return record


class Outgoing(NamedTuple):
    """One record on its way to the engine, not numbered yet.

    ``ordinal`` counts the stream's records from 0 in this publisher run; the
    :class:`Sequencer` adds the stream's offset to make the sequence number.
    """

    stream: StreamId
    ordinal: int
    kind: str
    body: bytes
    sent: float


class EncoderStats(msgspec.Struct, frozen=True):
    """Counters of a :class:`FanoutEncoder`.

    ``events``: events encoded; ``snapshots``: snapshot records made; ``resyncs``: resync
    records made; ``ignored``: events of no published channel, or book updates while the
    shadow book was not live; ``mismatches``: book updates whose checksum the shadow book
    did not reproduce (it then waits for the driver's next snapshot).
    """

    events: int
    snapshots: int
    resyncs: int
    ignored: int
    mismatches: int


BookInfo = Callable[[str], "tuple[int, int | None, int | None] | None"]
"""``info(symbol)``: ``(depth, price_precision, qty_precision)`` of the driver's book of
``symbol``, or ``None`` when unknown (the depth is then inferred from the snapshot)."""


def _depth_for(levels: int) -> int:
    return next((depth for depth in BOOK_DEPTHS if depth >= levels), BOOK_DEPTHS[-1])


class _Shadow:
    """The encoder's copy of one book and its snapshot cadence."""

    __slots__ = ("book", "due", "since")

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.since = 0  # updates since the last snapshot record
        self.due = False  # a snapshot record is wanted at the next update


class FanoutEncoder:
    """Turns driver events into :class:`Outgoing` records (see the module docstring).

    ``snapshot_every``: updates of a book between two snapshot records (>= 1).
    ``depth``: the subscribed book depth, or ``None`` to ask ``book_info`` and else infer it
    from the first snapshot's level count (as a replay does). ``precisions``: the pairs'
    decimals for the checksum (as ``ClientConfig.precisions``); ``book_info``: where to
    read a driver book's depth and precisions (see :data:`BookInfo`).
    """

    def __init__(
        self,
        *,
        snapshot_every: int = 1000,
        depth: int | None = None,
        precisions: Mapping[str, Precision] | None = None,
        book_info: BookInfo | None = None,
    ) -> None:
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int):
            raise ValueError(f"snapshot_every must be an int >= 1, got {snapshot_every!r}")
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be an int >= 1, got {snapshot_every!r}")
        if depth is not None and depth not in BOOK_DEPTHS:
            raise ValueError(f"depth must be None or one of {BOOK_DEPTHS}, got {depth!r}")
        self._every = snapshot_every
        self._depth = depth
        self._precisions = dict(precisions or {})
        self.book_info = book_info
        """Where the depth and precisions of a driver's book are read (may be set later)."""
        self._shadows: dict[str, _Shadow] = {}
        self._ordinals: dict[StreamId, int] = {}
        self._events = self._snapshots = self._resyncs = self._ignored = self._mismatches = 0

    @property
    def stats(self) -> EncoderStats:
        """The counters, now."""
        return EncoderStats(
            self._events, self._snapshots, self._resyncs, self._ignored, self._mismatches
        )

    def book(self, symbol: str) -> OrderBook | None:
        """The shadow book of ``symbol`` (``None`` before its first snapshot)."""
        shadow = self._shadows.get(symbol)
        return None if shadow is None else shadow.book

    def snapshot_due(self, symbol: str) -> None:
        """Add a snapshot record of ``symbol``'s book at its next update (records were lost)."""
        shadow = self._shadows.get(symbol)
        if shadow is not None:
            shadow.due = True

    def snapshot_all_due(self) -> None:
        """:meth:`snapshot_due` for every book (the engine may have lost its data)."""
        for shadow in self._shadows.values():
            shadow.due = True

    def _out(self, stream: StreamId, kind: str, body: bytes, sent: float) -> Outgoing:
        ordinal = self._ordinals.get(stream, 0)
        self._ordinals[stream] = ordinal + 1
        return Outgoing(stream, ordinal, kind, body, sent)

    def encode(self, event: Event, sent: float) -> list[Outgoing]:
        """The records for one driver event received at wall-clock time ``sent``."""
        channel = _CHANNEL_OF.get(type(event))
        if channel is None:
            if type(event) is BookResync:
                return self._resync(event, sent)
            self._ignored += 1
            return []
        market: Any = event
        if channel == BOOK:
            return self._book(market, sent)
        self._events += 1
        return [self._out(StreamId(channel, market.symbol), UPDATE, _encode(event), sent)]

    # ------------------------------------------------------------------ books

    def _new_book(self, symbol: str, levels: int) -> OrderBook:
        info = self.book_info(symbol) if self.book_info is not None else None
        precision = self._precisions.get(symbol)
        price = qty = None
        if precision is not None:
            price, qty = precision.price, precision.qty
        depth = self._depth
        if info is not None:
            depth = depth or info[0]
            if precision is None:
                price, qty = info[1], info[2]
        return OrderBook(
            symbol, depth or _depth_for(levels), price_precision=price, qty_precision=qty
        )

    def _book(self, event: BookUpdate, sent: float) -> list[Outgoing]:
        symbol = event.symbol
        stream = StreamId(BOOK, symbol)
        shadow = self._shadows.get(symbol)
        if event.snapshot:
            levels = max(len(event.bids), len(event.asks), 1)
            if shadow is None:
                shadow = self._shadows[symbol] = _Shadow(self._new_book(symbol, levels))
            computed = shadow.book.apply_snapshot(event.bids, event.asks)
            if computed != event.checksum:
                return self._lost(shadow, stream, computed, event.checksum, sent)
            self._events += 1
            return [self._snapshot(shadow, stream, event.timestamp, sent)]
        if shadow is None or not shadow.book.is_live:
            self._ignored += 1
            return []
        computed = shadow.book.apply_update(event.bids, event.asks)
        if computed != event.checksum:
            return self._lost(shadow, stream, computed, event.checksum, sent)
        self._events += 1
        out = [self._out(stream, UPDATE, _encode(event), sent)]
        shadow.since += 1
        if shadow.due or shadow.since >= self._every:
            out.append(self._snapshot(shadow, stream, event.timestamp, sent))
        return out

    def _snapshot(
        self, shadow: _Shadow, stream: StreamId, timestamp: str | None, sent: float
    ) -> Outgoing:
        book = shadow.book
        snapshot = BookSnapshot(
            book.symbol,
            tuple(_levels(book, bids=True)),
            tuple(_levels(book, bids=False)),
            book.checksum(),
            book.depth,
            book.price_precision,
            book.qty_precision,
            timestamp,
        )
        shadow.since = 0
        shadow.due = False
        self._snapshots += 1
        return self._out(stream, SNAPSHOT, _encode(snapshot), sent)

    def _lost(
        self, shadow: _Shadow, stream: StreamId, computed: int, sent_checksum: int, sent: float
    ) -> list[Outgoing]:
        """The shadow book no longer matches the driver's: publish a resync, wait for the
        driver's next snapshot."""
        self._mismatches += 1
        shadow.book.mark_resyncing()
        reason = f"publisher's book lost sync: computed {computed}, the event had {sent_checksum}"
        return self._resync(BookResync(stream.symbol, reason, 1), sent)

    def _resync(self, event: BookResync, sent: float) -> list[Outgoing]:
        shadow = self._shadows.get(event.symbol)
        if shadow is not None and shadow.book.is_live:
            shadow.book.mark_resyncing()
        self._resyncs += 1
        return [self._out(StreamId(BOOK, event.symbol), RESYNC, _encode(event), sent)]


def _levels(book: OrderBook, *, bids: bool) -> list[BookLevel]:
    """Every level of one side, best first (a shadow book's ``view_depth`` is its depth)."""
    return book.bids() if bids else book.asks()


class Sequencer:
    """Turns ordinals into sequence numbers, stream by stream, in the writer.

    A stream's numbers continue from the last one the engine holds (:meth:`resume`, once
    per stream and run), so a restarted publisher never writes a number twice; a record
    dropped before the writer leaves its number unused: the gap the reader sees.
    """

    def __init__(self) -> None:
        self._offsets: dict[StreamId, int] = {}

    def needs_resume(self, stream: StreamId) -> bool:
        """Whether the engine's last number of ``stream`` must be read first."""
        return stream not in self._offsets

    def resume(self, stream: StreamId, last_seq: int) -> None:
        """Number ``stream``'s records of this run after ``last_seq``: ordinal 0 is
        ``last_seq + 1`` (records dropped before the first write leave their hole too)."""
        if last_seq < 0:
            raise ValueError(f"last_seq must be >= 0, got {last_seq}")
        self._offsets[stream] = last_seq + 1

    def seq(self, out: Outgoing) -> int:
        """The sequence number of ``out`` (its stream resumed)."""
        return self._offsets[out.stream] + out.ordinal


class StreamGap(msgspec.Struct, frozen=True):
    """Records of a ticker, trade or ohlc stream were lost (or the publisher restarted).

    ``expected`` was the next sequence number, ``received`` the one that arrived;
    ``reason`` says what happened. Book streams report the same with a
    :class:`~kraken_proto.events.BookResync`.
    """

    channel: str
    symbol: str
    expected: int
    received: int
    reason: str
    received_at: float = 0.0


class StreamFollower:
    """The reader's side of one stream (see the module docstring).

    ``position`` is the last sequence number handled (``None`` before the first record).
    After :meth:`on_record` returns, ``need_snapshot`` tells whether the book waits for a
    snapshot (the reader then fetches the latest one and offers it to :meth:`on_snapshot`).
    """

    def __init__(self, stream: StreamId) -> None:
        self.stream = stream
        self.position: int | None = None
        self.origin: str | None = None
        self.book: OrderBook | None = None
        self.need_snapshot = stream.is_book
        self.last_sent = 0.0
        """``sent`` of the last record that produced an event (for latency figures)."""
        self._attempt = 0
        self.gaps = 0
        """Gaps seen: sequence numbers skipped, or a new publisher run."""
        self.duplicates = 0
        """Records at or before ``position``, ignored."""
        self.mismatches = 0
        """Books that failed their checksum here."""

    def on_record(self, record: Record, now: float) -> list[Any]:
        """The events of one record read from the stream, in order."""
        position = self.position
        if not self.is_newer(record):
            self.duplicates += 1
            return []
        events: list[Any] = []
        gap = position is not None and record.seq != position + 1
        restarted = self.origin is not None and record.origin != self.origin
        self.position = record.seq
        self.origin = record.origin
        if gap or restarted:
            self.gaps += 1
            expected = (position or 0) + 1
            reason = (
                f"records {expected}..{record.seq - 1} lost"
                if gap
                else f"publisher restarted at record {record.seq}"
            )
            if not self.stream.is_book:
                events.append(
                    StreamGap(
                        self.stream.channel, self.stream.symbol, expected, record.seq, reason, now
                    )
                )
            else:
                self._invalidate(reason, events, now)
        if not self.stream.is_book:
            event = _DECODERS[self.stream.channel](record.body)
            _set(event, "received_at", now)
            self.last_sent = record.sent
            events.append(event)
            return events
        if record.kind == SNAPSHOT:
            self._apply_snapshot(record, events, now)
        elif record.kind == RESYNC:
            resync = _decode_resync(record.body)
            self._invalidate(f"publisher: {resync.reason}", events, now)
        elif self.book is not None and self.book.is_live:
            self._apply_update(record, events, now)
        return events

    def is_newer(self, record: Record) -> bool:
        """Whether ``record`` comes after ``position`` (the next one to handle)."""
        return self.position is None or record.seq > self.position

    def on_snapshot(self, record: Record, now: float) -> list[Any] | None:
        """Offer the latest snapshot record the engine holds: its events if it was newer
        than ``position`` and applied (the reader then reads on after it), else ``None``."""
        if record.kind != SNAPSHOT:
            raise ValueError(f"record must be a snapshot, got a {record.kind!r} record")
        if not self.is_newer(record):
            return None
        if self.position is not None:
            self.gaps += 1
        self.position = record.seq
        self.origin = record.origin
        events: list[Any] = []
        self._apply_snapshot(record, events, now)
        return events

    def _invalidate(self, reason: str, events: list[Any], now: float) -> None:
        if self.book is not None and self.book.is_live:
            self.book.mark_resyncing()
        if not self.need_snapshot:
            self._attempt += 1
            events.append(BookResync(self.stream.symbol, reason, self._attempt, now))
        self.need_snapshot = True

    def _apply_snapshot(self, record: Record, events: list[Any], now: float) -> None:
        snapshot = _decode_snapshot(record.body)
        book = self.book
        if (
            book is None
            or book.depth != snapshot.depth
            or book.price_precision != snapshot.price_precision
            or book.qty_precision != snapshot.qty_precision
        ):
            book = self.book = OrderBook(
                snapshot.symbol,
                snapshot.depth,
                price_precision=snapshot.price_precision,
                qty_precision=snapshot.qty_precision,
            )
        computed = book.apply_snapshot(snapshot.bids, snapshot.asks)
        if computed != snapshot.checksum:
            self.mismatches += 1
            self._invalidate(
                f"snapshot checksum mismatch: computed {computed}, carried {snapshot.checksum}",
                events,
                now,
            )
            return
        self.need_snapshot = False
        self._attempt = 0
        self.last_sent = record.sent
        events.append(
            BookUpdate(
                snapshot.symbol,
                snapshot.bids,
                snapshot.asks,
                snapshot.checksum,
                snapshot.timestamp,
                True,
                now,
            )
        )

    def _apply_update(self, record: Record, events: list[Any], now: float) -> None:
        book = self.book
        assert book is not None
        update: BookUpdate = _DECODERS[BOOK](record.body)
        try:
            computed = book.apply_update(update.bids, update.asks)
        except (ArithmeticError, ValueError) as exc:
            self._invalidate(f"unusable book update: {exc}", events, now)
            return
        if computed != update.checksum:
            self.mismatches += 1
            self._invalidate(
                f"checksum mismatch: computed {computed}, Kraken sent {update.checksum}",
                events,
                now,
            )
            return
        _set(update, "received_at", now)
        self.last_sent = record.sent
        events.append(update)
