"""The reader: published streams read back as the same typed events, books verified.

``async for event in reader`` yields ``Ticker``, ``Trade``, ``OHLC`` and ``BookUpdate``
events as the publisher's driver emitted them, plus ``BookResync`` when a book stopped
being trustworthy (records lost, the publisher's own resync, a checksum that failed here)
and :class:`~kraken_transports.fanout.encoding.StreamGap` when a ticker, trade or ohlc
stream lost records. A book is rebuilt from the latest snapshot and the updates after it,
each update's checksum verified as the direct client verifies it; while it waits for a
snapshot its updates are not yielded, so every ``BookUpdate`` leaves :meth:`Reader.book`
verified. A book stream is read from its latest snapshot (a late join sees the current
book at once), the other streams from the records written after the reader started.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec

from kraken_proto.book import OrderBook
from kraken_proto.events import BookResync
from kraken_transports.fanout.encoding import StreamFollower, StreamId, decode_record
from kraken_transports.fanout.engine import END, START, Source

__all__ = ["Reader", "ReaderStats"]

log = logging.getLogger(__name__)

_RETRY_FIRST = 0.05
_RETRY_MAX = 1.0
_RESNAPSHOT_INTERVAL = 0.25  # seconds between two looks for a snapshot while a book waits


class ReaderStats(msgspec.Struct, frozen=True):
    """Counters of a :class:`Reader`: ``records`` read, ``events`` yielded, ``gaps`` (lost
    records or a publisher restart), ``duplicates`` ignored, ``mismatches`` (checksums that
    failed here), ``resnapshots`` (latest snapshots applied after a gap or at the start),
    ``engine_errors`` (failed engine calls, each retried) and ``bad_records`` (entries that
    were no record, skipped)."""

    records: int
    events: int
    gaps: int
    duplicates: int
    mismatches: int
    resnapshots: int
    engine_errors: int
    bad_records: int


class Reader:
    """Reads published streams back from a :class:`~kraken_transports.fanout.engine.Source`.

    ``streams``: the ``(channel, symbol)`` pairs to follow (see
    :meth:`~kraken_transports.fanout.encoding.StreamId.of`); ``read_timeout``: the longest
    one engine read waits (iteration goes on after it); ``clock``: the monotonic clock
    stamped on events as ``received_at``. Use it as ``async with Reader(source, streams) as
    reader: async for event in reader: ...``; iteration ends when :meth:`close` is called.
    """

    def __init__(
        self,
        source: Source,
        streams: Iterable[tuple[str, str]],
        *,
        read_timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ids = [StreamId.of(channel, symbol) for channel, symbol in streams]
        if not ids:
            raise ValueError("streams must name at least one (channel, symbol) pair")
        if not read_timeout > 0:
            raise ValueError(f"read_timeout must be > 0 seconds, got {read_timeout!r}")
        self.source = source
        self._followers = {stream: StreamFollower(stream) for stream in dict.fromkeys(ids)}
        self._read_timeout = read_timeout
        self._clock = clock
        self._started = False
        self._placed: set[StreamId] = set()
        self._closed = False
        self._last_look: dict[StreamId, float] = {}
        self._pending: deque[Any] = deque()
        self._records_read: deque[tuple[StreamId, bytes]] = deque()
        self._records = self._events = self._resnapshots = self._errors = self._bad = 0
        self.last_sent = 0.0
        """The publisher's wall-clock time of receipt of the last event yielded."""

    @property
    def streams(self) -> list[StreamId]:
        """The streams followed."""
        return list(self._followers)

    def book(self, symbol: str) -> OrderBook | None:
        """The verified book of ``symbol`` as rebuilt here (``None`` before a snapshot);
        check ``is_live`` before reading it."""
        follower = self._followers.get(StreamId("book", symbol))
        return None if follower is None else follower.book

    def follower(self, channel: str, symbol: str) -> StreamFollower:
        """The state of one followed stream (its position, publisher run, book, counts);
        ``KeyError`` if it is not followed."""
        return self._followers[StreamId(channel, symbol)]

    @property
    def stats(self) -> ReaderStats:
        """The counters, now."""
        followers = self._followers.values()
        return ReaderStats(
            self._records,
            self._events,
            sum(f.gaps for f in followers),
            sum(f.duplicates for f in followers),
            sum(f.mismatches for f in followers),
            self._resnapshots,
            self._errors,
            self._bad,
        )

    async def open(self, timeout: float = 10.0) -> None:
        """Connect to the engine within ``timeout`` s."""
        await asyncio.wait_for(self.source.open(), timeout)

    async def close(self) -> None:
        """Stop iterating and disconnect."""
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.source.close(), 5.0)

    async def __aenter__(self) -> Reader:
        """Connect (see :meth:`open`)."""
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Disconnect (see :meth:`close`)."""
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        """The events, in each stream's order (see the module docstring)."""
        return self.events()

    async def events(self) -> AsyncIterator[Any]:
        """The events, in each stream's order, until :meth:`close`.

        Records are turned into events one at a time as they are taken, so when an event
        is yielded the reader's book is exactly as that event left it. Records read and
        not yet taken wait in the reader: a loop left early loses none of them, the next
        one goes on where it stopped.
        """
        events, records = self._pending, self._records_read
        while True:
            while events:
                self._events += 1
                yield events.popleft()
            if records:
                stream, data = records.popleft()
                events.extend(await self._record(stream, data))
                continue
            if self._closed:
                return
            await self._fill()

    async def _fill(self) -> None:
        """One engine read into the pending records (the latest snapshot of a book that
        waits for one, or at the start, into the pending events)."""
        if not self._started:
            await self._retry(self._start)
            self._started = True
            return
        for stream, follower in self._followers.items():
            if follower.need_snapshot and self._may_look(stream):
                found = await self._retry(functools.partial(self._resnapshot, stream))
                self._pending.extend(found or ())
        batch = await self._retry(functools.partial(self.source.read, self._read_timeout))
        self._records_read.extend(batch or ())

    async def _start(self) -> None:
        """Place every stream (a book at its latest snapshot, else at the start; the others
        at the end). Retried after an engine failure, it goes on from the stream that
        failed: the events of the streams placed before are already pending."""
        for stream in self._followers:
            if stream in self._placed:
                continue
            if stream.is_book:
                found = await self._resnapshot(stream)
                if found is None:
                    await self.source.seek(stream, START)
                else:
                    self._pending.extend(found)
            else:
                await self.source.seek(stream, END)
            self._placed.add(stream)

    async def _record(self, stream: StreamId, data: bytes) -> list[Any]:
        follower = self._followers.get(stream)
        if follower is None:
            return []
        try:
            record = decode_record(data)
        except ValueError as exc:
            self._bad += 1
            log.warning("skipped an entry of %s/%s: %s", stream.channel, stream.symbol, exc)
            return []
        self._records += 1
        events = follower.on_record(record, self._clock())
        if events:
            self.last_sent = follower.last_sent
        if follower.need_snapshot and any(type(e) is BookResync for e in events):
            self._last_look.pop(stream, None)  # look for a snapshot at once
        return events

    def _may_look(self, stream: StreamId) -> bool:
        now = self._clock()
        last = self._last_look.get(stream)
        if last is not None and now - last < _RESNAPSHOT_INTERVAL:
            return False
        self._last_look[stream] = now
        return True

    async def _resnapshot(self, stream: StreamId) -> list[Any] | None:
        """Apply the latest snapshot of ``stream`` if it is newer than what was read, and read
        on after it; its events, or ``None`` if there was none to apply."""
        found = await self.source.latest_snapshot(stream)
        if found is None:
            return None
        data, position = found
        try:
            record = decode_record(data)
        except ValueError:
            self._bad += 1
            return None
        follower = self._followers[stream]
        if not follower.is_newer(record):
            return None
        # Seek first: if the engine fails here, nothing has changed and the retry applies
        # the same snapshot (applied first, the retry would find it not newer and lose it).
        await self.source.seek(stream, position)
        events = follower.on_snapshot(record, self._clock())
        assert events is not None  # newer: checked above
        self._resnapshots += 1
        if events:
            self.last_sent = record.sent
        return events

    async def _retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``await call()`` until it succeeds or the reader is closed (then ``None``)."""
        delay = _RETRY_FIRST
        while not self._closed:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any engine failure is retried
                self._errors += 1
                log.debug("fan-out engine call failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        return None
