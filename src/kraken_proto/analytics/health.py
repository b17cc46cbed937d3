"""Market health: is a symbol's market data current, stale, or is the market halted?

A :class:`MarketHealthTracker` is fed the protocol's events with ``observe(event, now)`` and
answers ``check(symbol, now)`` from what Kraken said and from timers on the caller's clock.

What it learns from which event:

- market data (``Ticker``, ``Trade``, ``OHLC``, ``BookUpdate``, ``L3Update``): the
  symbol's market data is current as of ``now``;
- ``Instrument``: each listed pair's status (``online``, ``cancel_only``, ``post_only``,
  ``limit_only``, ``reduce_only``, ``maintenance``, ``delisted``, ``work_in_progress``),
  kept per symbol until another instrument message lists the pair again;
- ``SystemStatus``: the engine's status (``online``, ``maintenance``, ``cancel_only``,
  ``post_only``), pushed at connect and on change;
- ``StateChanged``: the connection's state. While it is open (``authenticating``,
  ``subscribing``, ``subscribed``, ``resyncing``) the link is alive: the core closes a
  connection on which Kraken sends nothing, heartbeats included, for
  ``ClientConfig.stale_timeout`` (heartbeats come every second, quiet market or not, and
  the core consumes them without emitting an event). When it leaves the open states,
  the link counts as alive until that moment;
- every event above, ``Subscribed``, ``Unsubscribed`` and ``Pong``: Kraken was heard at
  ``now``. :meth:`MarketHealthTracker.heartbeat` records the same for a caller that sees
  heartbeat frames itself (a custom driver, a replay).

Other events are ignored. Feed one tracker from one connection (the one carrying the
market data): the connection state of a private or level3 connection says nothing about
the public one.

Rules of :meth:`MarketHealthTracker.check`, the first that matches wins (``quiet`` = time
since the symbol's last market data; ``silence`` = time since Kraken was last heard, 0
while the connection is open; ``trading`` = ``trading_statuses``, by default ``online``,
``limit_only``, ``reduce_only``, the statuses under which orders still match):

====  ===========================================================  =======
rule  condition                                                    status
====  ===========================================================  =======
1     the system status is known and not trading                   HALTED
2     the symbol's pair status is known and not trading            HALTED
3     no market data of the symbol was ever observed               UNKNOWN
4     ``silence >= halted_after``: no data, no heartbeat, nothing  HALTED
5     the connection is known and not open (closed, degraded,      STALE
      reconnecting): no data can arrive
6     ``quiet >= stale_after`` (Kraken heard: a quiet market)      STALE
7     otherwise                                                    ACTIVE
====  ===========================================================  =======

So Kraken's own word (rules 1, 2) outranks the timers; a quiet market whose connection is
alive (heartbeats) is STALE, never HALTED; HALTED by timer means nothing at all was heard
for ``halted_after`` seconds. Elapsed times are clamped at 0 if ``now`` goes backwards.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import get_args

import msgspec

from kraken_proto.analytics._common import check_duration, check_time, shown
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import (
    OHLC,
    BookUpdate,
    Event,
    Instrument,
    L3Update,
    Pong,
    StateChanged,
    Subscribed,
    SystemStatus,
    Ticker,
    Trade,
    Unsubscribed,
)

__all__ = ["TRADING_STATUSES", "MarketHealth", "MarketHealthTracker", "MarketStatus"]

TRADING_STATUSES: frozenset[str] = frozenset({"online", "limit_only", "reduce_only"})
"""The system and pair statuses under which orders still match: ``online``, ``limit_only``
(limit orders only) and ``reduce_only`` (orders that reduce a position only). Under
``cancel_only``, ``post_only``, ``maintenance``, ``delisted`` and ``work_in_progress``
nothing trades."""

_OPEN = frozenset({"authenticating", "subscribing", "subscribed", "resyncing"})
_EVENT_TYPES: frozenset[type] = frozenset(get_args(Event))
_MARKET_DATA = (Ticker, Trade, OHLC, BookUpdate, L3Update)
_HEARD: frozenset[type] = frozenset(
    {*_MARKET_DATA, Instrument, SystemStatus, Subscribed, Unsubscribed, Pong}
)


class MarketStatus(enum.Enum):
    """A symbol's market health (rules in :mod:`kraken_proto.analytics.health`)."""

    ACTIVE = "active"
    """Market data arrived within ``stale_after`` and nothing says the market is halted."""
    STALE = "stale"
    """No market data for ``stale_after`` (a quiet market), or the connection is down."""
    HALTED = "halted"
    """Kraken says the system or the pair is not trading, or nothing at all (no data, no
    heartbeat) was heard for ``halted_after``."""
    UNKNOWN = "unknown"
    """No market data of the symbol was ever observed."""


class MarketHealth(msgspec.Struct, frozen=True):
    """The answer of :meth:`MarketHealthTracker.check`: a status and why."""

    symbol: str
    """The symbol asked about."""
    status: MarketStatus
    """The status."""
    reason: str
    """Why, in words (which rule matched and the figures it used)."""
    at: float
    """The ``now`` of the check."""
    since_update: float | None
    """Seconds since the symbol's last market data, or ``None`` if never."""
    pair_status: str | None
    """The pair's last status from the instrument channel, or ``None`` if never told."""
    system_status: str | None
    """The engine's last status from the status channel, or ``None`` if never told."""
    connection: str | None
    """The connection's last state (a ``ConnectionState`` value), or ``None`` if never told."""


class MarketHealthTracker:
    """Tells, per symbol, whether the market is ACTIVE, STALE, HALTED or UNKNOWN.

    ``stale_after`` and ``halted_after`` are seconds, finite, with ``0 < stale_after <=
    halted_after``; ``trading_statuses`` are the system and pair statuses that do not halt
    the market (any iterable of strings; default :data:`TRADING_STATUSES`). The rules are tabled in
    :mod:`kraken_proto.analytics.health`. Sans-IO: the caller passes ``now`` (its
    monotonic clock, as given to the protocol) to every call. Bad arguments raise
    :class:`~kraken_proto.LocalProtocolError`.
    """

    __slots__ = (
        "_connection",
        "_data_at",
        "_halted_after",
        "_heard_at",
        "_pairs",
        "_stale_after",
        "_system",
        "_trading",
    )

    def __init__(
        self,
        stale_after: float = 5.0,
        halted_after: float = 30.0,
        *,
        trading_statuses: Iterable[str] = TRADING_STATUSES,
    ) -> None:
        self._stale_after = check_duration("stale_after", stale_after)
        self._halted_after = check_duration("halted_after", halted_after)
        if self._halted_after < self._stale_after:
            raise LocalProtocolError(
                f"halted_after ({halted_after!r}) must be >= stale_after ({stale_after!r})"
            )
        statuses = (
            None
            if isinstance(trading_statuses, str) or not isinstance(trading_statuses, Iterable)
            else tuple(trading_statuses)  # read once: it may be an iterator
        )
        if statuses is None or not all(isinstance(status, str) for status in statuses):
            raise LocalProtocolError(
                f"trading_statuses must be an iterable of status strings (not one str), "
                f"got {shown(trading_statuses)}"
            )
        self._trading = frozenset(statuses)
        self._data_at: dict[str, float] = {}
        self._pairs: dict[str, str] = {}
        self._system: str | None = None
        self._connection: str | None = None
        self._heard_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"<MarketHealthTracker stale_after={self._stale_after!r} "
            f"halted_after={self._halted_after!r} system={self._system!r} "
            f"connection={self._connection!r} symbols={sorted(self._data_at)}>"
        )

    @property
    def stale_after(self) -> float:
        """Seconds without market data after which a symbol is STALE."""
        return self._stale_after

    @property
    def halted_after(self) -> float:
        """Seconds without hearing Kraken at all after which a symbol is HALTED."""
        return self._halted_after

    @property
    def trading_statuses(self) -> frozenset[str]:
        """The system and pair statuses that do not halt the market."""
        return self._trading

    def _heard(self, now: float) -> None:
        heard = self._heard_at
        if heard is None or now > heard:
            self._heard_at = now

    def observe(self, event: Event, now: float) -> None:
        """Take note of one event the protocol emitted (what each kind tells is in
        :mod:`kraken_proto.analytics.health`). Raises
        :class:`~kraken_proto.LocalProtocolError` for something that is no event (an
        ``Emit`` action, say: pass its ``event``)."""
        now = check_time("now", now)
        kind = type(event)
        if kind not in _EVENT_TYPES:
            raise LocalProtocolError(
                f"event must be one of the protocol's events (kraken_proto.events.Event), "
                f"got {event!r}"
            )
        if isinstance(event, _MARKET_DATA):
            symbol = event.symbol
            last = self._data_at.get(symbol)
            if last is None or now > last:
                self._data_at[symbol] = now
        elif isinstance(event, Instrument):
            for pair in event.pairs:
                self._pairs[pair.symbol] = pair.status
        elif isinstance(event, SystemStatus):
            self._system = event.system
        elif isinstance(event, StateChanged):
            if self._connection in _OPEN and event.new not in _OPEN:
                self._heard(now)  # the core vouched for the link until now
            self._connection = event.new
        if kind in _HEARD:
            self._heard(now)

    def heartbeat(self, now: float) -> None:
        """Record that Kraken was heard at ``now`` (a heartbeat frame or any other).

        The protocol emits no event for heartbeats; a caller that sees them (its own
        driver, a replay) may report them here. Feeding ``StateChanged`` events gives the
        same knowledge while the connection is open.
        """
        self._heard(check_time("now", now))

    def time_since_update(self, symbol: str, now: float) -> float | None:
        """Seconds since ``symbol``'s last market data (0 if ``now`` is earlier), or
        ``None`` if none was ever observed."""
        return self._since(symbol, check_time("now", now))

    def _since(self, symbol: str, now: float) -> float | None:
        last = self._data_at.get(symbol)
        return None if last is None else max(0.0, now - last)

    def check(self, symbol: str, now: float) -> MarketHealth:
        """``symbol``'s status at ``now`` and the reason, by the first matching rule of
        the table in :mod:`kraken_proto.analytics.health`."""
        now = check_time("now", now)
        quiet = self._since(symbol, now)
        system = self._system
        pair = self._pairs.get(symbol)
        connection = self._connection
        is_open = connection in _OPEN
        if system is not None and system not in self._trading:
            status, reason = MarketStatus.HALTED, f"system status is {system!r}"
        elif pair is not None and pair not in self._trading:
            status, reason = MarketStatus.HALTED, f"pair status is {pair!r}"
        elif quiet is None:
            status, reason = MarketStatus.UNKNOWN, "no market data of this symbol seen yet"
        else:
            heard = self._heard_at
            assert heard is not None  # market data was observed
            silence = 0.0 if is_open else max(0.0, now - heard)
            if silence >= self._halted_after:
                status = MarketStatus.HALTED
                reason = f"nothing heard from Kraken for {silence:.1f} s (no data, no heartbeat)"
                if connection is not None:
                    reason += f"; connection {connection}"
            elif connection is not None and not is_open:
                status = MarketStatus.STALE
                reason = f"connection {connection}: no market data can arrive"
            elif quiet >= self._stale_after:
                status = MarketStatus.STALE
                heard_how = (
                    f"connection {connection}" if is_open else f"Kraken heard {silence:.1f} s ago"
                )
                reason = f"no market data for {quiet:.1f} s ({heard_how})"
            else:
                status, reason = MarketStatus.ACTIVE, f"market data {quiet:.1f} s ago"
        return MarketHealth(symbol, status, reason, now, quiet, pair, system, connection)

    def check_status(self, symbol: str, now: float) -> MarketStatus:
        """Just the status of :meth:`check`."""
        return self.check(symbol, now).status
