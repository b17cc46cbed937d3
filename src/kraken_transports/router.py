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

from kraken_proto.backpressure import EventBuffer
from kraken_proto.config import BackpressureConfig
from kraken_proto.events import Event

__all__ = ["ClientStats", "EventCounts", "EventRouter", "Route"]

log = logging.getLogger("kraken_transports.callbacks")

E = TypeVar("E")
_Callback = Callable[[Any], object]
Route = tuple[tuple[_Callback, ...], list[int]]
"""What an event type is routed by: its callbacks (its own, then the catch-all ones), and
``[count]``, the events of the type dispatched so far (added to in place)."""


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


class EventCounts(msgspec.Struct, frozen=True):
    """The events of a client by type (class name), at one moment (:meth:`EventRouter.counts`).

    ``received``: dispatched (buffered, or handed to the callbacks without a buffer);
    ``delivered``: taken from the buffer (without one: as received); ``dropped`` and
    ``coalesced`` by ``(type, reason)`` and ``queued`` by type: the buffer's
    (:class:`~kraken_proto.backpressure.BufferLosses`). For each type ``received ==
    delivered + dropped + coalesced + queued``, and with a buffer each sums to the
    :class:`ClientStats` figure. ``policy`` and ``capacity``: ``drop_policy`` and
    ``max_queue_depth``.
    """

    received: dict[str, int]
    delivered: dict[str, int]
    dropped: dict[tuple[str, str], int]
    coalesced: dict[tuple[str, str], int]
    queued: dict[str, int]
    policy: str
    capacity: int


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

    Each event type dispatched is counted (:meth:`counts`, for monitoring) by its
    :data:`Route`, looked up once per event for its callbacks anyway.

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
        self._dispatched: dict[type, list[int]] = {}  # the counts of the routes, by type
        self.routes: dict[type, Route] = {}
        """What dispatch reads: the :data:`Route` of every event type registered or seen (a
        type not in it yet gets one from :meth:`route`). Rebuilt (under a lock) and swapped
        in whole on every change, so a dispatch in another thread sees one consistent set;
        the counts carry over."""
        self._registering = threading.Lock()
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
        """Build the routes anew (under ``_registering``)."""
        catch_all = tuple(self._callbacks.get(None, ()))
        routes: dict[type, Route] = {
            kind: (catch_all, count) for kind, count in self._dispatched.items()
        }
        for key, entries in self._callbacks.items():
            if key is not None and entries:
                routes[key] = ((*entries, *catch_all), self._dispatched.setdefault(key, [0]))
        self.routes = routes

    def route(self, kind: type) -> Route:
        """The :data:`Route` of an event type not in :attr:`routes` yet (added to them)."""
        with self._registering:
            route = self.routes.get(kind)
            if route is None:
                catch_all = tuple(self._callbacks.get(None, ()))
                route = (catch_all, self._dispatched.setdefault(kind, [0]))
                self.routes = {**self.routes, kind: route}
            return route

    def dispatch(self, event: Event, now: float) -> None:
        """Deliver one event to its callbacks and queue it for iteration.

        The callbacks are those registered when the event is dispatched: one registered or
        removed by a callback takes effect from the next event.
        """
        kind = type(event)
        try:
            callbacks, count = self.routes[kind]
        except KeyError:
            callbacks, count = self.route(kind)
        if callbacks:
            self.call(callbacks, event)
        count[0] += 1  # with the push: a reader under the lock sees both or neither
        if self.push is not None:
            self.push(event, now)

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

    def counts(self) -> EventCounts:
        """The events by type now (see :class:`EventCounts`)."""
        received: dict[str, int] = {}
        for kind, count in list(self._dispatched.items()):
            if count[0]:
                received[kind.__name__] = received.get(kind.__name__, 0) + count[0]
        buffered = self.push is not None
        losses = self.buffer.losses()
        delivered = dict(received)
        if buffered:
            lost = [*losses.dropped.items(), *losses.coalesced.items()]
            for (name, _), count_ in lost:
                delivered[name] = delivered.get(name, 0) - count_
            for name, count_ in losses.queued.items():
                delivered[name] = delivered.get(name, 0) - count_
        return EventCounts(
            received=received,
            delivered=delivered,
            dropped=losses.dropped if buffered else {},
            coalesced=losses.coalesced if buffered else {},
            queued=losses.queued if buffered else {},
            policy=losses.policy,
            capacity=losses.capacity,
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
