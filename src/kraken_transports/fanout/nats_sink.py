"""NATS JetStream as the fan-out engine (the ``nats`` extra: ``nats-py``).

Records go to the subject ``PREFIX.CHANNEL.SYMBOL`` (``kraken.book.BTC/USD``; a ``.``,
``*``, ``>`` or ``%`` of a symbol is written ``%2E``, ``%2A``, ``%3E``, ``%25``) of the
JetStream stream ``PREFIX`` in upper case (``KRAKEN``), which keeps ``maxlen`` messages per
subject (and ``max_age`` seconds if set). Each message carries ``Nats-Msg-Id`` =
subject and sequence number: within the stream's duplicate window JetStream stores a
repeated record once, so a retried or repeated write never duplicates it. The latest
snapshot record of each book goes also to ``PREFIX_snap.book.SYMBOL`` in the stream
``PREFIX_SNAP`` (one message per subject), with the header ``Kraken-Stream-Seq``: the
JetStream sequence of the same record in the data stream, after which a late reader reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from kraken_transports.fanout.encoding import SNAPSHOT, StreamId, decode_record
from kraken_transports.fanout.engine import END, START, EngineSettings, Position, Stamped

__all__ = ["NatsSink", "NatsSource"]

log = logging.getLogger(__name__)

_STREAM_SEQ = "Kraken-Stream-Seq"
_DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers message ids
_CONNECT_TIMEOUT = 5.0
_PENDING = 10_000  # messages delivered and not yet read, by default


def _token(symbol: str) -> str:
    return symbol.replace("%", "%25").replace(".", "%2E").replace("*", "%2A").replace(">", "%3E")


class _Names:
    def __init__(self, settings: EngineSettings) -> None:
        prefix = settings.prefix
        self.settings = settings
        self.data_stream = prefix.upper().replace("-", "_")
        self.snap_stream = f"{self.data_stream}_SNAP"
        self.data_prefix = prefix
        self.snap_prefix = f"{prefix}_snap"

    def subject(self, stream: StreamId) -> str:
        return f"{self.data_prefix}.{stream.channel}.{_token(stream.symbol)}"

    def snap_subject(self, stream: StreamId) -> str:
        return f"{self.snap_prefix}.{stream.channel}.{_token(stream.symbol)}"

    async def ensure(self, js: JetStreamContext, *, update: bool) -> None:
        """Create the data and snapshot streams if missing; with ``update``, bring their
        limits to these settings otherwise."""
        settings = self.settings
        for name, subject, per_subject in (
            (self.data_stream, f"{self.data_prefix}.>", settings.maxlen),
            (self.snap_stream, f"{self.snap_prefix}.>", 1),
        ):
            config = api.StreamConfig(
                name=name,
                subjects=[subject],
                max_msgs_per_subject=per_subject,
                max_age=settings.max_age,
                duplicate_window=_DUPLICATE_WINDOW,
                storage=api.StorageType.FILE,
                allow_direct=True,
            )
            try:
                await js.stream_info(name)
            except NotFoundError:
                await js.add_stream(config)
            else:
                if update:
                    await js.update_stream(config)


async def _log_error(exc: Exception) -> None:
    log.debug("NATS connection: %s", exc)


async def _connect(url: str) -> NatsClient:
    return await nats.connect(
        url,
        error_cb=_log_error,
        connect_timeout=_CONNECT_TIMEOUT,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        allow_reconnect=True,
    )


class NatsSink:
    """A :class:`~kraken_transports.fanout.engine.Sink` publishing to NATS JetStream at
    ``url`` (``nats://host:port``)."""

    def __init__(self, url: str, settings: EngineSettings | None = None) -> None:
        self.url = url
        self.settings = (settings or EngineSettings()).checked()
        self._names = _Names(self.settings)
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    def _context(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS sink is not open: call open() first")
        return self._js

    async def open(self) -> None:
        """Connect and create the JetStream streams (or bring their limits up to date)."""
        if self._nc is None:
            self._nc = await _connect(self.url)
            self._js = self._nc.jetstream()
        await self._names.ensure(self._context(), update=True)

    async def last_seq(self, stream: StreamId) -> int:
        """The sequence number of the subject's last record (0 when none)."""
        try:
            message = await self._context().get_last_msg(
                self._names.data_stream, self._names.subject(stream)
            )
        except NotFoundError:
            return 0
        return decode_record(message.data or b"").seq

    async def write(self, batch: Sequence[Stamped]) -> int:
        """Publish the batch in order, then the snapshots' copies; returns the records
        JetStream reported as already held.

        Only the snapshots (whose JetStream sequence the copy needs) and the batch's last
        record ask for an acknowledgement; the others go as plain publishes on the same
        connection, which JetStream stores in order: the last acknowledgement confirms
        them (a rejected batch fails it, and the batch is written again, deduplicated by
        ``Nats-Msg-Id``). Asking for one acknowledgement per record costs three times as
        much in nats-py. So ``duplicates`` counts those among the acknowledged records.
        """
        js = self._context()
        nc = self._nc
        assert nc is not None
        names = self._names
        acked: list[tuple[Stamped, asyncio.Future[api.PubAck]]] = []
        last = len(batch) - 1
        for index, stamped in enumerate(batch):
            subject = names.subject(stamped.stream)
            headers = {"Nats-Msg-Id": f"{subject}:{stamped.seq}"}
            if stamped.kind == SNAPSHOT or index == last:
                future = await js.publish_async(subject, stamped.data, headers=headers)
                acked.append((stamped, future))
            else:
                await nc.publish(subject, stamped.data, headers=headers)
        acks: list[api.PubAck] = list(await asyncio.gather(*(future for _, future in acked)))
        duplicates = sum(1 for ack in acks if ack.duplicate)
        snaps = []
        for (stamped, _), ack in zip(acked, acks, strict=True):
            if stamped.kind == SNAPSHOT:
                subject = names.snap_subject(stamped.stream)
                headers = {"Nats-Msg-Id": f"{subject}:{stamped.seq}", _STREAM_SEQ: str(ack.seq)}
                snaps.append(await js.publish_async(subject, stamped.data, headers=headers))
        if snaps:
            await asyncio.gather(*snaps)
        return duplicates

    async def close(self) -> None:
        """Disconnect (after the pending publishes)."""
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            await nc.close()


class NatsSource:
    """A :class:`~kraken_transports.fanout.engine.Source` reading NATS JetStream at ``url``
    through one ordered consumer per followed subject; positions are JetStream sequences
    of the data stream.

    At most ``max_pending`` delivered messages wait for the reader; when it lags further,
    delivery stalls and the client's consumer falls behind the stream, whose oldest
    records are trimmed: the reader then sees the gap and recovers from a snapshot, as on
    Redis.
    """

    def __init__(
        self, url: str, settings: EngineSettings | None = None, *, max_pending: int = _PENDING
    ) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be an int >= 1, got {max_pending!r}")
        self.url = url
        self.settings = (settings or EngineSettings()).checked()
        self._names = _Names(self.settings)
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._subs: dict[StreamId, Any] = {}
        self._max_pending = max_pending
        self._queue: asyncio.Queue[tuple[StreamId, bytes]] = asyncio.Queue(max_pending)

    def _context(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS source is not open: call open() first")
        return self._js

    async def open(self) -> None:
        """Connect and make sure the JetStream streams exist."""
        if self._nc is None:
            self._nc = await _connect(self.url)
            self._js = self._nc.jetstream()
        await self._names.ensure(self._context(), update=False)

    async def latest_snapshot(self, stream: StreamId) -> tuple[bytes, Position] | None:
        """The last message of the snapshot subject, read on after its data-stream copy."""
        try:
            message = await self._context().get_last_msg(
                self._names.snap_stream, self._names.snap_subject(stream)
            )
        except NotFoundError:
            return None
        headers = message.headers or {}
        position = headers.get(_STREAM_SEQ)
        if position is None:
            return None
        return bytes(message.data or b""), int(position)

    async def seek(self, stream: StreamId, position: Position) -> None:
        """(Re)start the subject's ordered consumer at ``position``."""
        old = self._subs.pop(stream, None)
        if old is not None:
            await old.unsubscribe()
        config = api.ConsumerConfig()
        if position == START:
            config.deliver_policy = api.DeliverPolicy.ALL
        elif position == END:
            config.deliver_policy = api.DeliverPolicy.NEW
        else:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = int(position) + 1
        queue = self._queue

        async def deliver(message: Msg) -> None:
            await queue.put((stream, message.data))  # waits while the reader lags

        self._subs[stream] = await self._context().subscribe(
            self._names.subject(stream),
            cb=deliver,
            ordered_consumer=True,
            config=config,
            pending_msgs_limit=self._max_pending,
            idle_heartbeat=0.5,
        )

    async def read(self, timeout: float) -> list[tuple[StreamId, bytes]]:
        """The messages delivered so far, waiting at most ``timeout`` s for the first."""
        queue = self._queue
        try:
            first = await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            return []
        found = [first]
        while not queue.empty():
            found.append(queue.get_nowait())
        return found

    async def close(self) -> None:
        """Disconnect."""
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            self._subs.clear()
            await nc.close()
