"""What the publisher and the reader need of a messaging engine, and how one is chosen.

A :class:`Sink` stores numbered records, one bounded stream per :class:`StreamId`, plus the
latest snapshot record of each book stream where a late reader finds it at once; a
:class:`Source` reads them back. :func:`open_sink` and :func:`open_source` pick the engine
by URL: ``redis://host:port/db`` (Redis Streams, the ``redis`` extra), ``nats://host:port``
(NATS JetStream, the ``nats`` extra), or ``memory://NAME`` (an in-process engine, for tests
and single-process use). Engine modules are imported only when their URL is used.

Reading positions are engine-specific integers (the record's id after which to read), or
:data:`START` (the oldest record still held) or :data:`END` (only records written from now).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from kraken_transports.fanout.encoding import SNAPSHOT, StreamId, decode_record

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_PREFIX",
    "END",
    "START",
    "EngineSettings",
    "MemoryEngine",
    "MemorySink",
    "MemorySource",
    "Position",
    "Sink",
    "Source",
    "Stamped",
    "memory_engine",
    "open_sink",
    "open_source",
    "snapshot_position",
]

START = "start"
"""Read from the oldest record the engine still holds."""
END = "end"
"""Read only the records written after the seek."""
Position = int | str
"""An engine's id of a record (read after it), :data:`START` or :data:`END`."""

DEFAULT_MAXLEN = 100_000
"""Records each stream keeps by default (older ones are trimmed)."""
DEFAULT_PREFIX = "kraken"
"""The default prefix of stream names (Redis keys, NATS subjects)."""


class Stamped(NamedTuple):
    """One numbered record ready for the engine: its stream, number, kind and bytes."""

    stream: StreamId
    seq: int
    kind: str
    data: bytes


class EngineSettings(NamedTuple):
    """How streams are named and bounded: ``prefix`` of every name, ``maxlen`` records
    kept per stream (Redis ``MAXLEN ~``, JetStream ``max_msgs_per_subject``), ``max_age``
    seconds a record is kept (JetStream only; ``None`` = no limit)."""

    prefix: str = DEFAULT_PREFIX
    maxlen: int = DEFAULT_MAXLEN
    max_age: float | None = None

    def checked(self) -> EngineSettings:
        """These settings, or ``ValueError`` naming the bad one."""
        if not self.prefix or not all(c.isalnum() or c in "_-" for c in self.prefix):
            raise ValueError(f"prefix must be letters, digits, _ or -, got {self.prefix!r}")
        if isinstance(self.maxlen, bool) or not isinstance(self.maxlen, int) or self.maxlen < 1:
            raise ValueError(f"maxlen must be an int >= 1, got {self.maxlen!r}")
        if self.max_age is not None and not self.max_age > 0:
            raise ValueError(f"max_age must be None or > 0 seconds, got {self.max_age!r}")
        return self


class Sink(Protocol):
    """The publisher's side of an engine. Every method may raise on an engine failure (the
    publisher retries); :meth:`write` must be idempotent: a record whose number the stream
    already holds is not stored again."""

    async def open(self) -> None:
        """Connect (and create what the engine needs)."""

    async def last_seq(self, stream: StreamId) -> int:
        """The last sequence number ``stream`` holds, 0 when it holds none."""

    async def write(self, batch: Sequence[Stamped]) -> int:
        """Store ``batch`` in order (snapshots also as their stream's latest snapshot);
        returns how many records were already there (duplicates, not stored again)."""

    async def close(self) -> None:
        """Disconnect."""


class Source(Protocol):
    """The reader's side of an engine. Methods may raise on an engine failure (the reader
    retries)."""

    async def open(self) -> None:
        """Connect."""

    async def latest_snapshot(self, stream: StreamId) -> tuple[bytes, Position] | None:
        """The latest snapshot record of ``stream`` and the position just after it."""

    async def seek(self, stream: StreamId, position: Position) -> None:
        """Read ``stream`` from ``position`` on (after it, for a record id)."""

    async def read(self, timeout: float) -> list[tuple[StreamId, bytes]]:
        """The next records of the followed streams, waiting at most ``timeout`` s."""

    async def close(self) -> None:
        """Disconnect."""


# --------------------------------------------------------------------------- in memory


class MemoryEngine:
    """An in-process engine: bounded streams of records in memory, shared by the sinks and
    sources given it. ``down = True`` makes every call fail with ``ConnectionError`` (an
    engine outage, for tests)."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        EngineSettings(maxlen=maxlen).checked()
        self.maxlen = maxlen
        self.streams: dict[StreamId, deque[tuple[int, bytes]]] = {}
        self.snapshots: dict[StreamId, tuple[bytes, int]] = {}
        self.down = False
        self.writes = 0
        """Records stored (duplicates not counted)."""
        self._changed = asyncio.Condition()

    def check(self) -> None:
        """Raise ``ConnectionError`` while the engine is down."""
        if self.down:
            raise ConnectionError("the memory engine is down")

    def restart(self) -> None:
        """Lose every record, as an engine without persistence does when restarted."""
        self.streams.clear()
        self.snapshots.clear()

    async def notify(self) -> None:
        """Wake the readers waiting for records."""
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, timeout: float) -> None:
        """Wait until records are written, at most ``timeout`` s."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)


_ENGINES: dict[str, MemoryEngine] = {}


def memory_engine(name: str, maxlen: int = DEFAULT_MAXLEN) -> MemoryEngine:
    """The in-process engine called ``name`` (``memory://name``), made on first use."""
    engine = _ENGINES.get(name)
    if engine is None:
        engine = _ENGINES[name] = MemoryEngine(maxlen)
    return engine


class MemorySink:
    """A :class:`Sink` writing to a :class:`MemoryEngine`."""

    def __init__(self, engine: MemoryEngine) -> None:
        self.engine = engine

    async def open(self) -> None:
        """Nothing to connect."""
        self.engine.check()

    async def last_seq(self, stream: StreamId) -> int:
        """See :meth:`Sink.last_seq`."""
        self.engine.check()
        records = self.engine.streams.get(stream)
        return records[-1][0] if records else 0

    async def write(self, batch: Sequence[Stamped]) -> int:
        """See :meth:`Sink.write`."""
        engine = self.engine
        engine.check()
        duplicates = 0
        for stamped in batch:
            records = engine.streams.setdefault(stamped.stream, deque(maxlen=engine.maxlen))
            if records and records[-1][0] >= stamped.seq:
                duplicates += 1
            else:
                records.append((stamped.seq, stamped.data))
                engine.writes += 1
            if stamped.kind == SNAPSHOT:
                engine.snapshots[stamped.stream] = (stamped.data, stamped.seq)
        await engine.notify()
        return duplicates

    async def close(self) -> None:
        """Nothing to disconnect."""


class MemorySource:
    """A :class:`Source` reading a :class:`MemoryEngine` (positions are sequence numbers)."""

    def __init__(self, engine: MemoryEngine) -> None:
        self.engine = engine
        self._after: dict[StreamId, int] = {}

    async def open(self) -> None:
        """Nothing to connect."""
        self.engine.check()

    async def latest_snapshot(self, stream: StreamId) -> tuple[bytes, Position] | None:
        """See :meth:`Source.latest_snapshot`."""
        self.engine.check()
        return self.engine.snapshots.get(stream)

    async def seek(self, stream: StreamId, position: Position) -> None:
        """See :meth:`Source.seek`."""
        self.engine.check()
        records = self.engine.streams.get(stream)
        if position == START:
            self._after[stream] = 0
        elif position == END:
            self._after[stream] = records[-1][0] if records else 0
        else:
            self._after[stream] = int(position)

    def _pending(self) -> list[tuple[StreamId, bytes]]:
        found = []
        for stream, after in self._after.items():
            last = after
            for seq, data in self.engine.streams.get(stream, ()):
                if seq > last:
                    found.append((stream, data))
                    last = seq
            self._after[stream] = last
        return found

    async def read(self, timeout: float) -> list[tuple[StreamId, bytes]]:
        """See :meth:`Source.read`."""
        self.engine.check()
        found = self._pending()
        if not found:
            await self.engine.wait(timeout)
            self.engine.check()
            found = self._pending()
        return found

    async def close(self) -> None:
        """Nothing to disconnect."""


# --------------------------------------------------------------------------- by URL


def _missing(extra: str, package: str, exc: ImportError) -> ImportError:
    return ImportError(
        f"the {extra!r} engine needs the {package!r} package: "
        f'pip install "kraken-ws-sdk[{extra}]" ({exc})'
    )


def _scheme(url: str) -> str:
    if not isinstance(url, str):
        raise ValueError(f"url must be a string, got {url!r}")
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "nats", "memory"):
        raise ValueError(f"url must start with redis://, nats:// or memory://, got {url!r}")
    return scheme


def open_sink(url: str, settings: EngineSettings | None = None) -> Sink:
    """A (not yet opened) :class:`Sink` for the engine at ``url``.

    ``redis://host:port/db``, ``nats://host:port`` or ``memory://name``; ``ValueError`` for
    another URL, ``ImportError`` naming the extra to install when its package is missing.
    """
    settings = (settings or EngineSettings()).checked()
    if _scheme(url) == "memory":
        return MemorySink(memory_engine(urlsplit(url).netloc, settings.maxlen))
    return _engine_classes(url)[0](url, settings)


def open_source(url: str, settings: EngineSettings | None = None) -> Source:
    """A (not yet opened) :class:`Source` for the engine at ``url`` (see :func:`open_sink`)."""
    settings = (settings or EngineSettings()).checked()
    if _scheme(url) == "memory":
        return MemorySource(memory_engine(urlsplit(url).netloc, settings.maxlen))
    return _engine_classes(url)[1](url, settings)


def _engine_classes(
    url: str,
) -> tuple[Callable[[str, EngineSettings], Sink], Callable[[str, EngineSettings], Source]]:
    """The sink and source classes of ``url``'s engine (Redis or NATS), imported on first
    use; ``ImportError`` naming the extra to install when its package is missing."""
    if _scheme(url) == "redis":
        try:
            from kraken_transports.fanout.redis_sink import (  # noqa: PLC0415
                RedisSink,
                RedisSource,
            )
        except ImportError as exc:
            raise _missing("redis", "redis", exc) from None
        return RedisSink, RedisSource
    try:
        from kraken_transports.fanout.nats_sink import NatsSink, NatsSource  # noqa: PLC0415
    except ImportError as exc:
        raise _missing("nats", "nats-py", exc) from None
    return NatsSink, NatsSource


def snapshot_position(data: bytes) -> int:
    """The sequence number of a snapshot record's bytes (``ValueError`` if not one)."""
    record = decode_record(data)
    if record.kind != SNAPSHOT:
        raise ValueError(f"expected a snapshot record, got a {record.kind!r} record")
    return record.seq
