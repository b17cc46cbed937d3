"""What every driver does with events: callbacks, the bounded buffer, statistics.

Part of the shared driver layer (:mod:`kraken_transports.driver`), so callback semantics and
backpressure accounting are the same under asyncio, a caller's own loop and a background
thread.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from kraken_proto.backpressure import BufferCounts, EventBuffer
from kraken_proto.config import BackpressureConfig
from kraken_proto.events import Event

__all__ = ["ClientStats", "EventRouter"]

log = logging.getLogger("kraken_transports.callbacks")

E = TypeVar("E")
_Callback = Callable[[Any], object]


class ClientStats(msgspec.Struct, frozen=True):
    """A driver's counters. ``received == delivered + dropped + coalesced + queued``.

    ``frames_in``/``frames_out`` count WebSocket messages; ``callback_errors`` counts
    exceptions raised by user callbacks (logged, never propagated into the IO loop).
    """

    received: int
    delivered: int
    dropped: int
    coalesced: int
    queued: int
    frames_in: int
    frames_out: int
    reconnects: int
    callback_errors: int


class EventRouter:
    """Routes each event to the callbacks registered for its type, then into the buffer.

    Callbacks run in the driver's IO context as events are produced, before any
    backpressure applies, so they see every event. With ``buffer_events=False`` events go
    to callbacks only (for callback-only users, whose unread buffer would otherwise fill).

    A callback that raises is counted in ``callback_errors`` every time; its first
    exception is logged with the traceback (logger ``kraken_transports.callbacks``), then
    only its 2nd, 4th, 8th, ... as a count, so a callback broken for every event cannot
    flood the log.

    ``release`` and ``reacquire``, if set, are called before and after the callbacks of
    each event: the threaded client releases its lock while user code runs.

    :meth:`counts` splits the counts by event type (for monitoring): the buffer's, or in a
    router without one, the events handed to the callbacks by type (``handed``), counted
    from :meth:`count_handed` on (there is no count of them otherwise).

    :class:`~kraken_transports.driver.Driver` inlines :meth:`dispatch` in its hot loop,
    reading ``routes``, ``push`` and ``release`` as :meth:`dispatch` does.
    """

    def __init__(self, config: BackpressureConfig, *, buffer_events: bool = True) -> None:
        self.buffer = EventBuffer(config)
        self.push: Callable[[Event, float], object] | None = (
            self.buffer.push if buffer_events else None
        )
        """Queue an event for iteration (``None`` with ``buffer_events=False``)."""
        self.release: Callable[[], object] | None = None
        self.reacquire: Callable[[], object] | None = None
        self._raised: dict[int, int] = {}  # id(callback) -> exceptions raised so far
        self._callbacks: dict[type | None, list[_Callback]] = {}
        self.routes: tuple[dict[type, tuple[_Callback, ...]], tuple[_Callback, ...]] = ({}, ())
        """What dispatch reads: per registered type its callbacks then the catch-all ones,
        and the catch-all ones for every other type. Rebuilt (under a lock) and swapped in
        whole on every change, so a dispatch in another thread sees one consistent set."""
        self._registering = threading.Lock()
        self.handed: dict[type, int] | None = None
        """Without a buffer, after :meth:`count_handed`: the events dispatched (handed to
        the callbacks), by type."""
        self.frames_in = 0
        self.frames_out = 0
        self.reconnects = 0
        self.callback_errors = 0

    def on(self, event_type: type[E] | None, callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type`` (``None``: every event).

        Several callbacks per type are called in registration order. Returns a function that
        removes this registration.
        """
        if event_type is not None and not isinstance(event_type, type):
            raise TypeError(f"event_type must be an event class or None, not {event_type!r}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        if inspect.iscoroutinefunction(callback):
            raise TypeError(
                "callback must be a plain function: an async one would never be awaited; "
                "schedule your coroutine from a plain callback instead"
            )
        with self._registering:
            entries = self._callbacks.setdefault(event_type, [])
            entries.append(callback)
            self._rebuild()

        def remove() -> None:
            with self._registering:
                if callback in entries:
                    entries.remove(callback)
                    self._rebuild()
                    if not any(callback in group for group in self._callbacks.values()):
                        self._raised.pop(id(callback), None)

        return remove

    def _rebuild(self) -> None:
        catch_all = tuple(self._callbacks.get(None, ()))
        typed = {
            key: (*entries, *catch_all)
            for key, entries in self._callbacks.items()
            if key is not None and entries
        }
        self.routes = (typed, catch_all)

    def dispatch(self, event: Event, now: float) -> None:
        """Deliver one event to its callbacks and queue it for iteration.

        The callbacks are those registered when the event is dispatched: one registered or
        removed by a callback takes effect from the next event.
        """
        typed, catch_all = self.routes
        callbacks = typed.get(type(event), catch_all)
        if callbacks:
            self.call(callbacks, event)
        if self.push is not None:
            self.push(event, now)
        elif self.handed is not None:
            self.handed[type(event)] = self.handed.get(type(event), 0) + 1

    def count_handed(self) -> None:
        """Without a buffer: count the events dispatched, by type, from now on (see
        :meth:`counts`); idempotent. (A buffer counts what it is given from the start.)"""
        if self.handed is None:
            self.handed = {}

    def call(self, callbacks: tuple[_Callback, ...], event: Event) -> None:
        """Call each of ``callbacks`` with ``event`` (between ``release`` and ``reacquire``
        if set), counting and logging what they raise."""
        release = self.release
        if release is not None:
            release()
        try:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception as exc:
                    self.failed(callback, event, exc)
        finally:
            if self.reacquire is not None:
                self.reacquire()

    def failed(self, callback: _Callback, event: Event, exc: Exception) -> None:
        """Count a callback's exception; log the first in full, then on a doubling schedule."""
        self.callback_errors += 1
        count = self._raised[id(callback)] = self._raised.get(id(callback), 0) + 1
        kind = type(event).__name__
        if count == 1:
            log.error("callback %r raised on %s", callback, kind, exc_info=exc)
        elif count & (count - 1) == 0:  # 2, 4, 8, ...: a count, not a traceback per event
            log.error(
                "callback %r has raised %d times (latest on %s: %s: %s); "
                "only its first traceback was logged",
                callback,
                count,
                kind,
                type(exc).__name__,
                exc,
            )

    def counts(self) -> BufferCounts:
        """The counts by event type now: the buffer's (:meth:`EventBuffer.counts`), or
        without one the events handed to the callbacks (received and delivered) since
        :meth:`count_handed`."""
        if self.push is not None:
            return self.buffer.counts()
        handed: dict[str, int] = {}
        for kind, count in list((self.handed or {}).items()):
            handed[kind.__name__] = handed.get(kind.__name__, 0) + count
        config = self.buffer.config
        return BufferCounts(
            received=handed,
            delivered=dict(handed),
            dropped={},
            coalesced={},
            queued={},
            policy=config.drop_policy.value,
            capacity=config.max_queue_depth,
        )

    def stats(self) -> ClientStats:
        """The counters now."""
        counts = self.buffer.stats
        return ClientStats(
            received=counts.received,
            delivered=counts.delivered,
            dropped=counts.dropped,
            coalesced=counts.coalesced,
            queued=counts.queued,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            reconnects=self.reconnects,
            callback_errors=self.callback_errors,
        )
