"""Fan-out: publish a driver's verified market data to Redis Streams or NATS JetStream, and
read it back anywhere as the same typed events with the same book guarantees.

``Publisher(open_sink(url))`` takes the events of any driver (``publisher.attach(client)``)
and writes them, one numbered, bounded stream per channel and symbol, book streams with
periodic verified snapshots; ``Reader(open_source(url), streams)`` yields them back,
checking the numbers and every book checksum. URLs: ``redis://host:port/db`` (the
``redis`` extra), ``nats://host:port`` (the ``nats`` extra), ``memory://name`` (in
process). See ``docs/fanout.md``.
"""

from __future__ import annotations

from kraken_transports.fanout.encoding import (
    CHANNELS,
    BookSnapshot,
    FanoutEncoder,
    Record,
    StreamFollower,
    StreamGap,
    StreamId,
    shard_of,
)
from kraken_transports.fanout.engine import (
    EngineSettings,
    MemoryEngine,
    MemorySink,
    MemorySource,
    Sink,
    Source,
    open_sink,
    open_source,
)
from kraken_transports.fanout.publisher import Publisher, PublisherStats
from kraken_transports.fanout.reader import Reader, ReaderStats

__all__ = [
    "CHANNELS",
    "BookSnapshot",
    "EngineSettings",
    "FanoutEncoder",
    "MemoryEngine",
    "MemorySink",
    "MemorySource",
    "Publisher",
    "PublisherStats",
    "Reader",
    "ReaderStats",
    "Record",
    "Sink",
    "Source",
    "StreamFollower",
    "StreamGap",
    "StreamId",
    "open_sink",
    "open_source",
    "shard_of",
]
