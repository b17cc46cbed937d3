"""What every driver does with events: callbacks, the bounded buffer, acks, statistics.

Drivers differ only in how they do IO and wait; this module is the part they share, so
callback semantics, backpressure accounting and subscribe/unsubscribe results are the same
under asyncio, a caller's own loop and a background thread.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import msgspec

from kraken_proto.backpressure import EventBuffer
from kraken_proto.config import BackpressureConfig
from kraken_proto.errors import SubscriptionError
from kraken_proto.events import Event, Subscribed, SubscriptionFailed, Unsubscribed

__all__ = ["AckWaiter", "ClientStats", "EventRouter"]

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

    ``callback_guard``, if set, is entered around the callbacks of each event: the threaded
    client uses it to release its lock while user code runs.
    """

    def __init__(self, config: BackpressureConfig, *, buffer_events: bool = True) -> None:
        self.buffer = EventBuffer(config)
        self._buffer_events = buffer_events
        self.callback_guard: Callable[[], AbstractContextManager[object]] | None = None
        self._raised: dict[int, int] = {}  # id(callback) -> exceptions raised so far
        self._callbacks: dict[type | None, list[_Callback]] = {}
        # What dispatch reads: per registered type its callbacks then the catch-all ones, and
        # the catch-all ones for every other type. Rebuilt (under the lock) and swapped in
        # whole on every change, so a dispatch in another thread sees one consistent set.
        self._routes: tuple[dict[type, tuple[_Callback, ...]], tuple[_Callback, ...]] = ({}, ())
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
        catch_all = tuple(self._callbacks.get(None, ()))
        typed = {
            key: (*entries, *catch_all)
            for key, entries in self._callbacks.items()
            if key is not None and entries
        }
        self._routes = (typed, catch_all)

    def dispatch(self, event: Event, now: float) -> None:
        """Deliver one event to its callbacks and queue it for iteration.

        The callbacks are those registered when the event is dispatched: one registered or
        removed by a callback takes effect from the next event.
        """
        typed, catch_all = self._routes
        callbacks = typed.get(type(event), catch_all)
        if callbacks:
            guard = self.callback_guard
            if guard is None:
                self._call(callbacks, event)
            else:
                with guard():
                    self._call(callbacks, event)
        if self._buffer_events:
            self.buffer.push(event, now)

    def _call(self, callbacks: tuple[_Callback, ...], event: Event) -> None:
        for callback in callbacks:
            try:
                callback(event)
            except Exception as exc:
                self._failed(callback, event, exc)

    def _failed(self, callback: _Callback, event: Event, exc: Exception) -> None:
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


class AckWaiter:
    """Collects the per-symbol answers that one subscribe or unsubscribe call waits for."""

    def __init__(self, method: str, channel: str, symbols: Sequence[str | None]) -> None:
        if method not in ("subscribe", "unsubscribe"):
            raise ValueError(f"method must be 'subscribe' or 'unsubscribe', not {method!r}")
        self.method = method
        self.channel = channel
        self.symbols = tuple(symbols)
        """The symbols waited for (``(None,)`` for a channel without symbols)."""
        self._waiting = set(symbols)
        self._answers: list[Subscribed | Unsubscribed] = []
        self._failure: SubscriptionFailed | None = None

    @property
    def done(self) -> bool:
        """True once every symbol was answered (or one failed)."""
        return not self._waiting or self._failure is not None

    def feed(self, event: Event) -> bool:
        """Offer an event; returns ``done``."""
        expected = Subscribed if self.method == "subscribe" else Unsubscribed
        if (
            isinstance(event, (expected, SubscriptionFailed))
            and event.channel == self.channel
            and event.symbol in self._waiting
        ):
            self._waiting.discard(event.symbol)
            if isinstance(event, SubscriptionFailed):
                if self._failure is None:
                    self._failure = event
            else:
                self._answers.append(event)
        return self.done

    def result(self) -> list[Subscribed | Unsubscribed]:
        """The acks in arrival order; raises :class:`SubscriptionError` if one failed."""
        if self._failure is not None:
            failure = self._failure
            raise SubscriptionError(failure.channel, failure.symbol, failure.error)
        return list(self._answers)
