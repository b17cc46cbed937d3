"""The bounded event buffer between the protocol and a slow consumer, with its policies.

Drivers push every event the protocol emits and the consumer pops them. When the consumer
falls behind, :class:`~kraken_proto.config.DropPolicy` decides what is lost:

- ``OLDEST``: the oldest queued event is dropped to make room;
- ``LATEST``: the new event is rejected;
- ``COALESCE``: a ticker or book update replaces the queued one of the same symbol (trades
  and every other event are never coalesced); if nothing can be coalesced, the oldest event
  is dropped.

Only market data (tickers, trades, candles, book updates) is ever dropped, and only market
data counts against ``max_queue_depth``: connection and subscription events (state changes,
acks, failures, resyncs, errors) are always delivered, since losing one would leave the
consumer wrong about the connection itself.

Every loss is counted, and surfaced to the consumer as one :class:`Dropped` event delivered
before the next event, so ``received == delivered + dropped + coalesced + queued`` always
holds (``Dropped`` events themselves are not counted as received or delivered).
:meth:`EventBuffer.counts` splits the same counts by event type, and the losses by reason
(:data:`DROP_REASONS`, :data:`COALESCE_REASONS`), for monitoring.
"""

from __future__ import annotations

from collections import deque

import msgspec

from kraken_proto.config import BackpressureConfig, DropPolicy
from kraken_proto.events import OHLC, BookUpdate, Dropped, Event, Ticker, Trade
from kraken_proto.throttle import TokenBucket

__all__ = ["COALESCE_REASONS", "DROP_REASONS", "BufferCounts", "BufferStats", "EventBuffer"]

_COALESCABLE = (Ticker, BookUpdate)
_DROPPABLE = (Ticker, BookUpdate, Trade, OHLC)
# The hot paths test the exact type (a set lookup) before falling back to isinstance.
_DROPPABLE_TYPES = frozenset(_DROPPABLE)

DROP_REASONS = ("oldest", "latest")
"""Why an event was dropped: ``oldest``, a queued event made room for a new one (``OLDEST``,
or ``COALESCE`` with nothing to coalesce); ``latest``, the new event was rejected
(``LATEST``)."""
COALESCE_REASONS = ("window", "full")
"""Why an event was coalesced (replaced by a newer one of its kind and symbol): ``window``,
within ``coalesce_window``; ``full``, the buffer was full."""


class BufferStats(msgspec.Struct, frozen=True):
    """Counters of an :class:`EventBuffer` at one moment."""

    received: int
    delivered: int
    dropped: int
    coalesced: int
    queued: int


class BufferCounts(msgspec.Struct, frozen=True):
    """The counts of an :class:`EventBuffer` by event type (class name), at one moment.

    For each type ``received == delivered + dropped + coalesced + queued`` (the losses
    summed over their reasons), and each summed over the types is the :class:`BufferStats`
    figure. ``dropped`` and ``coalesced`` are keyed ``(type, reason)`` (reasons:
    :data:`DROP_REASONS`, :data:`COALESCE_REASONS`); ``policy`` and ``capacity`` are the
    configured ``drop_policy`` value and ``max_queue_depth``.
    """

    received: dict[str, int]
    delivered: dict[str, int]
    dropped: dict[tuple[str, str], int]
    coalesced: dict[tuple[str, str], int]
    queued: dict[str, int]
    policy: str
    capacity: int


class _Slot:
    """A queued event that may still be coalesced: replaced in place, and when it was queued.

    Only ``COALESCE`` buffers wrap events, and only tickers and book updates; every other
    event is queued as itself, so the common case allocates nothing per event.
    """

    __slots__ = ("event", "key", "pushed_at")

    def __init__(self, event: Event, key: tuple[type, str], pushed_at: float) -> None:
        self.event = event
        self.key = key
        self.pushed_at = pushed_at


class _Kind:
    """One event type as the buffer sees it: whether it is market data (bounded, droppable)
    and how many of it were pushed. Looked up once per push, it stands for both the type
    test and the count."""

    __slots__ = ("market", "received")

    def __init__(self, kind: type) -> None:
        self.market = kind in _DROPPABLE_TYPES or issubclass(kind, _DROPPABLE)
        self.received = 0


_MARKET_ITEM = (_Slot, *_DROPPABLE)  # a queued item that counts against max_queue_depth
_MARKET_ITEM_TYPES = frozenset(_MARKET_ITEM)


class EventBuffer:
    """A bounded FIFO of events applying a :class:`BackpressureConfig`. Time is passed in."""

    def __init__(self, config: BackpressureConfig | None = None) -> None:
        self._config = config = config if config is not None else BackpressureConfig()
        self._policy = config.drop_policy
        self._coalesce = config.drop_policy is DropPolicy.COALESCE
        self._capacity = config.max_queue_depth
        self._window = config.coalesce_window
        self._slots: deque[Event | _Slot] = deque()
        # Queued control events: every other queued item is market data, the ones
        # max_queue_depth bounds (see _market), so a market event costs no count.
        self._control = 0
        # What the market events queued must stay under for push's fast path: the depth,
        # or none (-1) when coalescing, which always takes the full path.
        self._room = -1 if self._coalesce else self._capacity
        self._latest: dict[tuple[type, str], _Slot] = {}
        rate = config.max_messages_per_second
        self._pacer = None if rate is None else TokenBucket(rate, max(1, int(rate)))
        # ``delivered`` is not counted: it is received - dropped - coalesced - queued.
        # Received by event type (with the type's kind); the losses by (type, reason) as
        # well as in total.
        self._kinds: dict[type, _Kind] = {}
        self._dropped = self._coalesced = 0
        self._dropped_by: dict[tuple[type, str], int] = {}
        self._coalesced_by: dict[tuple[type, str], int] = {}
        self._unreported_dropped = self._unreported_coalesced = 0
        self._summary_sent = False  # a summary went out and no event has followed it yet
        # take() must defer to pop(): a rate cap is configured or a summary is due. Kept up
        # to date wherever either changes, so take() tests one attribute.
        self._gated = self._pacer is not None

    @property
    def config(self) -> BackpressureConfig:
        """The configuration in force."""
        return self._config

    def __len__(self) -> int:
        """Events waiting to be delivered."""
        return len(self._slots)

    @property
    def stats(self) -> BufferStats:
        """The counters now."""
        queued = len(self._slots)
        received = sum(kind.received for kind in list(self._kinds.values()))
        return BufferStats(
            received=received,
            delivered=received - self._dropped - self._coalesced - queued,
            dropped=self._dropped,
            coalesced=self._coalesced,
            queued=queued,
        )

    def push(self, event: Event, now: float) -> bool:
        """Queue ``event``; returns False if it was itself rejected (``LATEST`` when full)."""
        try:
            kind = self._kinds[type(event)]
        except KeyError:  # the first event of its type
            kind = self._kinds[type(event)] = _Kind(type(event))
        kind.received += 1
        slots = self._slots
        if not kind.market:
            self._control += 1
            slots.append(event)  # control events are never dropped nor bounded
            return True
        if len(slots) - self._control < self._room:  # the common case
            slots.append(event)
            return True
        return self._push_market(event, now)

    @property
    def _market(self) -> int:
        """Queued market events (plain or in a coalescing slot)."""
        return len(self._slots) - self._control

    def _push_market(self, event: Event, now: float) -> bool:
        """``push`` of a market event into a full or coalescing buffer."""
        full = self._market >= self._capacity
        if self._coalesce and isinstance(event, _COALESCABLE):
            key = (type(event), event.symbol)
            queued = self._latest.get(key)
            if queued is not None and (
                full or (self._window > 0 and now - queued.pushed_at <= self._window)
            ):
                queued.event = event
                self._count_coalesced(key[0], "full" if full else "window")
                return True
            if full:
                self._drop_oldest()
            slot = _Slot(event, key, now)
            self._slots.append(slot)
            self._latest[key] = slot
            return True
        if full:
            if self._policy is DropPolicy.LATEST:
                self._count_dropped(type(event), "latest")
                return False
            self._drop_oldest()
        self._slots.append(event)
        return True

    def pop(self, now: float) -> Event | None:
        """The next event, or None if empty or the delivery rate cap says wait.

        A :class:`Dropped` summary of the losses since the previous summary comes before
        the next event; at most one summary per delivered event, so a consumer that falls
        further behind still receives events, not only summaries.
        """
        if self._summary_due():
            summary = Dropped(
                self._unreported_dropped, self._unreported_coalesced, self._policy.value, now
            )
            self._unreported_dropped = self._unreported_coalesced = 0
            self._summary_sent = True
            self._gated = self._pacer is not None
            return summary
        if not self._slots:
            return None
        if self._pacer is not None and not self._pacer.try_acquire(now):
            return None
        return self._next()

    def take(self) -> Event | None:
        """The next event, for a consumer that does not want to read its clock per event.

        None if empty, and also when a :class:`Dropped` summary is due or a delivery rate
        cap is configured: both need the time, so call :meth:`pop` then.
        """
        slots = self._slots
        if self._gated or not slots:
            return None
        item = slots.popleft()  # _next() inlined: this is every event's way out
        if self._summary_sent:
            self._summary_sent = False
            self._gated = self._pacer is not None or self._summary_due()
        if type(item) in _DROPPABLE_TYPES:
            return item  # type: ignore[return-value]
        return self._unwrap(item)

    def _next(self) -> Event:
        """Deliver the next queued item; the caller checked that there is one."""
        item = self._slots.popleft()
        if self._summary_sent:  # an event follows the summary: the next one may come
            self._summary_sent = False
            self._gated = self._pacer is not None or self._summary_due()
        if type(item) in _DROPPABLE_TYPES:
            return item  # type: ignore[return-value]
        return self._unwrap(item)

    def _unwrap(self, item: Event | _Slot) -> Event:
        """A delivered item other than a plain market event: a slot, or a control event."""
        if isinstance(item, _Slot):
            self._forget_slot(item)
            return item.event
        if not isinstance(item, _DROPPABLE):  # else a subclass of a market event
            self._control -= 1
        return item

    def next_ready(self, now: float) -> float | None:
        """When ``pop`` can next return an event: ``now``, a later time (rate cap), or None."""
        if self._summary_due():
            return now
        if not self._slots:
            return None
        if self._pacer is None:
            return now
        return self._pacer.next_available(now)

    def _summary_due(self) -> bool:
        unreported = self._unreported_dropped or self._unreported_coalesced
        return bool(unreported) and not self._summary_sent

    def _forget_slot(self, slot: _Slot) -> None:
        if self._latest.get(slot.key) is slot:
            del self._latest[slot.key]

    def _drop_oldest(self) -> None:
        """Drop the oldest market event (control events ahead of it stay)."""
        slots = self._slots
        index = 0
        while type(slots[index]) not in _MARKET_ITEM_TYPES and not isinstance(
            slots[index], _MARKET_ITEM
        ):
            index += 1
        item = slots[index]
        del slots[index]
        if isinstance(item, _Slot):
            self._forget_slot(item)
            self._count_dropped(item.key[0], "oldest")
        else:
            self._count_dropped(type(item), "oldest")

    def _count_dropped(self, kind: type, reason: str) -> None:
        self._dropped += 1
        self._unreported_dropped += 1
        self._gated = self._gated or not self._summary_sent
        key = (kind, reason)
        self._dropped_by[key] = self._dropped_by.get(key, 0) + 1

    def _count_coalesced(self, kind: type, reason: str) -> None:
        self._coalesced += 1
        self._unreported_coalesced += 1
        self._gated = self._gated or not self._summary_sent
        key = (kind, reason)
        self._coalesced_by[key] = self._coalesced_by.get(key, 0) + 1

    def counts(self) -> BufferCounts:
        """The counts now, by event type and by reason (see :class:`BufferCounts`).

        Copies what it reads first, so that a reader on another thread than the one pushing
        and popping (unlocked) gets no error, only figures possibly a few events apart.
        """
        received = {kind: entry.received for kind, entry in list(self._kinds.items())}
        dropped_by = dict(self._dropped_by)
        coalesced_by = dict(self._coalesced_by)
        items = list(self._slots)
        queued: dict[str, int] = {}
        for item in items:
            name = (item.key[0] if isinstance(item, _Slot) else type(item)).__name__
            queued[name] = queued.get(name, 0) + 1
        lost: dict[str, int] = {}
        dropped: dict[tuple[str, str], int] = {}
        coalesced: dict[tuple[str, str], int] = {}
        for source, target in ((dropped_by, dropped), (coalesced_by, coalesced)):
            for (kind, reason), count in source.items():
                name = kind.__name__
                target[name, reason] = target.get((name, reason), 0) + count
                lost[name] = lost.get(name, 0) + count
        by_name: dict[str, int] = {}
        for kind, count in received.items():
            by_name[kind.__name__] = by_name.get(kind.__name__, 0) + count
        return BufferCounts(
            received=by_name,
            delivered={
                name: count - lost.get(name, 0) - queued.get(name, 0)
                for name, count in by_name.items()
            },
            dropped=dropped,
            coalesced=coalesced,
            queued=queued,
            policy=self._policy.value,
            capacity=self._capacity,
        )
