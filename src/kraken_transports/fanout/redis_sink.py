"""Redis Streams as the fan-out engine (the ``redis`` extra: ``redis.asyncio``).

Each stream is a Redis stream ``PREFIX:CHANNEL:SYMBOL`` (``kraken:book:BTC/USD``) whose
entry ids are the records' sequence numbers (``<seq>-0``), each entry one field ``d``
holding the record; ``XADD ... MAXLEN ~ N`` bounds it. Redis refuses an id that is not
above the stream's last one, which makes every write idempotent: a retried or repeated
record is refused, counted as a duplicate, never stored twice or out of order. The latest
snapshot record of a book stream is also kept at ``PREFIX:book:SYMBOL:snapshot``, written
right after its entry. A batch of records is written by one Lua script (``EVALSHA``):
one command per batch instead of one per record, which is most of the cost otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from kraken_transports.fanout.encoding import SNAPSHOT, StreamId
from kraken_transports.fanout.engine import (
    END,
    START,
    EngineSettings,
    Position,
    Stamped,
    snapshot_position,
)

__all__ = ["RedisSink", "RedisSource"]

_FIELD = b"d"
_SOCKET_TIMEOUT = 10.0  # seconds; longer than any blocking read the source makes
_MAX_BLOCK = 5.0  # the longest XREAD BLOCK, seconds
_READ_COUNT = 1024  # entries per stream and read

# KEYS: per record, its stream and (for a snapshot) its snapshot key; ARGV: MAXLEN, then
# per record its id, its bytes and 1 for a snapshot. An id Redis refuses as not above the
# stream's last one is a record already stored: counted, not an error.
_WRITE = """
local duplicates = 0
for i = 1, #KEYS / 2 do
  local at = 2 + (i - 1) * 3
  local added = redis.pcall('XADD', KEYS[2 * i - 1], 'MAXLEN', '~', ARGV[1], ARGV[at], 'd',
                            ARGV[at + 1])
  if type(added) == 'table' and added.err then
    if string.find(added.err, 'equal or smaller', 1, true) then
      duplicates = duplicates + 1
    else
      return redis.error_reply(added.err)
    end
  end
  if ARGV[at + 2] == '1' then
    redis.call('SET', KEYS[2 * i], ARGV[at + 1])
  end
end
return duplicates
"""


def _connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=_SOCKET_TIMEOUT
    )


class _Names:
    def __init__(self, settings: EngineSettings) -> None:
        self.prefix = settings.prefix

    def key(self, stream: StreamId) -> str:
        return f"{self.prefix}:{stream.channel}:{stream.symbol}"

    def snapshot_key(self, stream: StreamId) -> str:
        return f"{self.prefix}:{stream.channel}:{stream.symbol}:snapshot"


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def _seq(entry_id: bytes | str) -> int:
    return int(_text(entry_id).split("-", 1)[0])


class RedisSink:
    """A :class:`~kraken_transports.fanout.engine.Sink` writing Redis Streams at ``url``
    (``redis://host:port/db``)."""

    def __init__(self, url: str, settings: EngineSettings | None = None) -> None:
        self.url = url
        self.settings = (settings or EngineSettings()).checked()
        self._names = _Names(self.settings)
        self._redis: aioredis.Redis | None = None
        self._script: Any = None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the Redis sink is not open: call open() first")
        return self._redis

    async def open(self) -> None:
        """Connect and check that Redis answers."""
        if self._redis is None:
            self._redis = _connect(self.url)
        await self._redis.ping()

    async def last_seq(self, stream: StreamId) -> int:
        """The id of the stream's last entry (0 when empty or missing)."""
        entries: Any = await self._client().xrevrange(self._names.key(stream), count=1)
        return _seq(entries[0][0]) if entries else 0

    async def write(self, batch: Sequence[Stamped]) -> int:
        """``XADD`` every record with its sequence number as id (``MAXLEN ~``), the
        snapshots also ``SET`` as their stream's latest, all in one server-side script
        (one round trip, one command to encode per batch); returns the records Redis
        already held."""
        names = self._names
        keys: list[str] = []
        args: list[Any] = [self.settings.maxlen]
        for stamped in batch:
            key = names.key(stamped.stream)
            snapshot = stamped.kind == SNAPSHOT
            keys += (key, names.snapshot_key(stamped.stream) if snapshot else key)
            args += (f"{stamped.seq}-0", stamped.data, 1 if snapshot else 0)
        if self._script is None:
            self._script = self._client().register_script(_WRITE)
        result: Any = await self._script(keys=keys, args=args)
        return int(result)

    async def close(self) -> None:
        """Disconnect."""
        if self._redis is not None:
            redis, self._redis, self._script = self._redis, None, None
            await redis.aclose()


class RedisSource:
    """A :class:`~kraken_transports.fanout.engine.Source` reading Redis Streams at ``url``;
    positions are sequence numbers (entry ids ``<seq>-0``)."""

    def __init__(self, url: str, settings: EngineSettings | None = None) -> None:
        self.url = url
        self.settings = (settings or EngineSettings()).checked()
        self._names = _Names(self.settings)
        self._redis: aioredis.Redis | None = None
        self._after: dict[str, str] = {}
        self._streams: dict[bytes, StreamId] = {}

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the Redis source is not open: call open() first")
        return self._redis

    async def open(self) -> None:
        """Connect and check that Redis answers."""
        if self._redis is None:
            self._redis = _connect(self.url)
        await self._redis.ping()

    async def latest_snapshot(self, stream: StreamId) -> tuple[bytes, Position] | None:
        """The record at ``PREFIX:book:SYMBOL:snapshot``, read on after its id."""
        data: Any = await self._client().get(self._names.snapshot_key(stream))
        if data is None:
            return None
        return bytes(data), snapshot_position(bytes(data))

    async def seek(self, stream: StreamId, position: Position) -> None:
        """Read ``stream`` after entry ``<position>-0`` (``START``: all it holds; ``END``:
        after its last entry now)."""
        key = self._names.key(stream)
        self._streams[key.encode()] = stream
        if position == START:
            self._after[key] = "0-0"
        elif position == END:
            entries: Any = await self._client().xrevrange(key, count=1)
            self._after[key] = _text(entries[0][0]) if entries else "0-0"
        else:
            self._after[key] = f"{int(position)}-0"

    async def read(self, timeout: float) -> list[tuple[StreamId, bytes]]:
        """``XREAD BLOCK`` on every followed stream at once."""
        block = max(1, int(min(timeout, _MAX_BLOCK) * 1000))
        streams: dict[Any, Any] = dict(self._after)
        answer: Any = await self._client().xread(streams, count=_READ_COUNT, block=block)
        found: list[tuple[StreamId, bytes]] = []
        for key, entries in answer or ():
            name = key if isinstance(key, bytes) else str(key).encode()
            stream = self._streams[name]
            for entry_id, fields in entries:
                self._after[name.decode()] = _text(entry_id)
                data = fields.get(_FIELD)
                if data is not None:
                    found.append((stream, bytes(data)))
        return found

    async def close(self) -> None:
        """Disconnect."""
        if self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.aclose()
