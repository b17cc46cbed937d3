"""The publisher: a driver's events, verified and numbered, written to an engine.

:meth:`Publisher.publish` takes one event and returns at once: it is meant to be a callback
of any driver (:meth:`Publisher.attach` registers it on a client), running in the client's
IO context. It encodes the event (:class:`~kraken_transports.fanout.encoding.FanoutEncoder`)
into a bounded queue; a writer task numbers the records and writes them in batches to the
:class:`~kraken_transports.fanout.engine.Sink`. When the engine is slow or down, the queue
fills and the configured :class:`~kraken_proto.config.DropPolicy` decides what is lost
(``OLDEST``: the oldest queued record; ``LATEST``: the new one; ``COALESCE`` acts as
``OLDEST``, since a numbered record cannot stand in for another); every loss is counted,
leaves a hole in its stream's numbers (which readers see), and makes the next record of a
book a fresh snapshot. The Kraken connection never waits for the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from kraken_proto.config import DropPolicy, Precision
from kraken_proto.events import Event
from kraken_transports.fanout.encoding import (
    BOOK,
    FanoutEncoder,
    Outgoing,
    Sequencer,
    encode_record,
)
from kraken_transports.fanout.engine import Sink, Stamped

if TYPE_CHECKING:
    from kraken_transports.client import ClientBase

__all__ = ["Publisher", "PublisherStats"]

log = logging.getLogger(__name__)

_RETRY_FIRST = 0.05  # seconds before retrying a failed write, doubled up to _RETRY_MAX
_RETRY_MAX = 1.0
_STOP_TIMEOUT = 1.0  # seconds the writer task and the engine get to stop


class PublisherStats(msgspec.Struct, frozen=True):
    """Counters of a :class:`Publisher`.

    ``received``: events given to :meth:`Publisher.publish`; ``records``: records made of
    them (snapshot and resync records included); ``written``: records the engine stored;
    ``duplicates``: records it already held (a retried write); ``dropped``: records lost to
    the drop policy (queue full); ``queued``: records waiting now; ``engine_errors``:
    failed engine calls (each retried); ``snapshots``, ``resyncs``, ``mismatches``,
    ``ignored``: the encoder's counts (:class:`~kraken_transports.fanout.encoding.EncoderStats`).
    """

    received: int
    records: int
    written: int
    duplicates: int
    dropped: int
    queued: int
    engine_errors: int
    snapshots: int
    resyncs: int
    mismatches: int
    ignored: int


class Publisher:
    """Publishes a driver's market data to a :class:`~kraken_transports.fanout.engine.Sink`.

    Use it as ``async with Publisher(sink) as publisher:`` with ``publisher.attach(client)``
    (or call :meth:`publish` with each event yourself, from the event loop's thread).

    ``snapshot_every``: book updates between snapshot records; ``max_queue``: records held
    for the engine before ``drop_policy`` applies; ``batch_size``: records per write;
    ``write_timeout``: seconds one write may take before it counts as failed (and is
    retried); ``depth``/``precisions``: the books' depth and checksum precisions when the
    attached client cannot tell them (see
    :class:`~kraken_transports.fanout.encoding.FanoutEncoder`);
    ``clock``: the wall clock stamped on each record as its time of receipt.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        snapshot_every: int = 1000,
        max_queue: int = 10_000,
        drop_policy: DropPolicy = DropPolicy.OLDEST,
        batch_size: int = 256,
        write_timeout: float = 2.0,
        depth: int | None = None,
        precisions: Mapping[str, Precision] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("max_queue", max_queue), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(drop_policy, DropPolicy):
            raise ValueError(f"drop_policy must be a DropPolicy, got {drop_policy!r}")
        if not write_timeout > 0:
            raise ValueError(f"write_timeout must be > 0 seconds, got {write_timeout!r}")
        self.sink = sink
        self.encoder = FanoutEncoder(
            snapshot_every=snapshot_every, depth=depth, precisions=precisions
        )
        self.origin = os.urandom(6).hex()
        """This run's id, carried by every record (readers tell a restart by it)."""
        self._max_queue = max_queue
        self._latest = drop_policy is DropPolicy.LATEST
        self._batch = batch_size
        self._write_timeout = write_timeout
        self._clock = clock
        self._queue: deque[Outgoing] = deque()
        self._sequencer = Sequencer()
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._detach: list[Callable[[], None]] = []
        self._closing = False
        self._received = self._records = self._written = self._duplicates = 0
        self._dropped = self._errors = 0

    # ------------------------------------------------------------------ input

    def attach(self, client: ClientBase) -> Callable[[], None]:
        """Publish every event of ``client`` (a callback on it) and read its books' depth and
        precisions; returns the function that detaches it.

        The callbacks must run on this publisher's event loop: attach an
        :class:`~kraken_transports.aio.AsyncClient` running on it. With a driver of another
        thread, hand its events over with ``loop.call_soon_threadsafe(publisher.publish,
        event)``.
        """

        def info(symbol: str) -> tuple[int, int | None, int | None] | None:
            book = client.book(symbol)
            if book is None:
                return None
            return book.depth, book.price_precision, book.qty_precision

        self.encoder.book_info = info
        detach = client.on(None, self.publish)
        self._detach.append(detach)
        return detach

    def publish(self, event: Event) -> None:
        """Queue the records of one event for the engine; never waits."""
        self._received += 1
        records = self.encoder.encode(event, self._clock())
        if not records:
            return
        self._records += len(records)
        queue = self._queue
        for out in records:
            if len(queue) >= self._max_queue:
                if self._latest:
                    self._drop(out)
                    continue
                self._drop(queue.popleft())
            queue.append(out)
        wake = self._wake
        if wake is not None:
            wake.set()
            self._idle.clear()  # type: ignore[union-attr]  # set together with _wake

    def _drop(self, out: Outgoing) -> None:
        self._dropped += 1
        if out.stream.channel == BOOK:
            self.encoder.snapshot_due(out.stream.symbol)

    @property
    def stats(self) -> PublisherStats:
        """The counters, now."""
        encoder = self.encoder.stats
        return PublisherStats(
            self._received,
            self._records,
            self._written,
            self._duplicates,
            self._dropped,
            len(self._queue),
            self._errors,
            encoder.snapshots,
            encoder.resyncs,
            encoder.mismatches,
            encoder.ignored,
        )

    # ------------------------------------------------------------------ life cycle

    async def start(self, timeout: float = 10.0) -> None:
        """Connect to the engine (within ``timeout`` s) and start writing."""
        if self._task is not None:
            return
        await asyncio.wait_for(self.sink.open(), timeout)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        if self._queue:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kraken-fanout")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record was written (at most ``timeout`` s); whether it was."""
        idle = self._idle
        if idle is None:
            return not self._queue
        try:
            await asyncio.wait_for(idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` s), stop and disconnect."""
        if self._task is not None:
            await self.flush(timeout)
        await self._stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.close(), timeout)

    async def abort(self) -> None:
        """Stop at once, as a killed process would: detach from the clients, drop what is
        queued (counted as dropped) and disconnect without flushing."""
        for detach in self._detach:
            detach()
        self._detach.clear()
        self._dropped += len(self._queue)
        self._queue.clear()
        await self._stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.close(), _STOP_TIMEOUT)

    async def _stop(self) -> None:
        """End the writer task. Its loop also checks ``_closing``: a cancellation may be
        lost in ``asyncio.wait_for`` when the awaited call ends at the same moment."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        task.cancel()
        await asyncio.wait({task}, timeout=_STOP_TIMEOUT)

    async def __aenter__(self) -> Publisher:
        """Start (see :meth:`start`)."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close (see :meth:`close`)."""
        await self.close()

    # ------------------------------------------------------------------ the writer

    async def _run(self) -> None:
        wake, idle = self._wake, self._idle
        assert wake is not None and idle is not None
        queue = self._queue
        while not self._closing:
            if not queue:
                idle.set()
                wake.clear()
                await wake.wait()
                continue
            idle.clear()
            batch = [queue.popleft() for _ in range(min(self._batch, len(queue)))]
            stamped = []
            for out in batch:
                if self._sequencer.needs_resume(out.stream):
                    last = await self._retry(functools.partial(self.sink.last_seq, out.stream))
                    self._sequencer.resume(out.stream, last)
                seq = self._sequencer.seq(out)
                data = encode_record(seq, out.kind, self.origin, out.sent, out.body)
                stamped.append(Stamped(out.stream, seq, out.kind, data))
            duplicates = await self._retry(functools.partial(self.sink.write, stamped))
            self._duplicates += duplicates
            self._written += len(stamped) - duplicates

    async def _retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``await call()`` until it succeeds (each failure counted, retried with backoff);
        after a failure the books are snapshotted again (the engine may have lost them)."""
        delay = _RETRY_FIRST
        failed = False
        while True:
            if self._closing:
                raise asyncio.CancelledError
            try:
                result = await asyncio.wait_for(call(), self._write_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any engine failure is retried
                self._errors += 1
                if not failed:
                    log.warning("fan-out engine call failed, retrying: %s", exc)
                failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            if failed:
                self.encoder.snapshot_all_due()
            return result
