"""Recent trades grouped by price level: a volume-at-price overlay over a sliding window.

:class:`TradesByPriceLevel` keeps each symbol's public trades for ``window`` seconds of the
caller's clock and sums them per price level: how many trades, how much the takers bought
and sold, at what volume-weighted price. The busiest level is the *point of control*.

Definitions:

- **Time.** Every call that takes ``now`` (the caller's monotonic clock, not Kraken's
  ``timestamp``) uses the latest ``now`` the tracker was given so far: a clock that steps
  back is taken as standing still. A trade is stamped with that time by
  :meth:`TradesByPriceLevel.add_trade`; at a later time ``now`` it is *kept* while ``stamp
  >= now - window`` (computed in ``float``), and once older it is gone for good. Expiry
  happens for a symbol on each call about it that takes ``now``, oldest trades first, in
  time linear in the trades expired.
- **Level.** Without ``tick_size`` a level is one exact price (``Decimal("100.50")`` and
  ``Decimal("100.5")`` are the same price): its VWAP is then its price. With ``tick_size``
  a level is the bucket ``[k * tick_size, (k + 1) * tick_size)`` holding the trade's price,
  labelled by its lower edge ``k * tick_size`` (``k`` an integer), and its VWAP is the
  volume-weighted mean of the trades' own prices within it.
- **Sides.** A trade's ``side`` is the taker's: ``"buy"`` adds to ``buy_qty``, ``"sell"``
  to ``sell_qty``; ``volume = buy_qty + sell_qty``.
- **Point of control.** The level with the largest volume; among equal volumes the one
  with more trades; then the lowest price.

Sums are exact (computed in a context that never rounds); a VWAP is one division of exact
values, correctly rounded to :data:`~kraken_proto.analytics.QUOTIENT_DIGITS` significant
digits (``ROUND_HALF_EVEN``), whatever the thread's decimal context, as in the book
functions of :mod:`kraken_proto.analytics.depth`.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal

import msgspec

from kraken_proto.analytics._common import (
    EXACT,
    QUOTIENT,
    check_duration,
    check_number,
    check_time,
)
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import MAX_NUMBER, Trade

__all__ = ["PriceLevelActivity", "TradeOverlay", "TradesByPriceLevel"]

_ZERO = Decimal(0)
_SIDES = ("buy", "sell")


def _positive(value: object) -> bool:
    """True for a finite ``Decimal`` > 0 and below ``MAX_NUMBER``: a trade's price or
    quantity as the protocol emits it."""
    try:
        return isinstance(value, Decimal) and _ZERO < value < MAX_NUMBER
    except ArithmeticError:  # a signalling comparison with NaN
        return False


class PriceLevelActivity(msgspec.Struct, frozen=True, gc=False):
    """The kept trades of one price level, summed."""

    price: Decimal
    """The level: the exact price, or the lower edge of its ``tick_size`` bucket."""
    trade_count: int
    """How many kept trades fell in this level."""
    buy_qty: Decimal
    """Total quantity of the trades whose taker bought."""
    sell_qty: Decimal
    """Total quantity of the trades whose taker sold."""
    volume: Decimal
    """``buy_qty + sell_qty``."""
    vwap: Decimal
    """Sum of ``price * qty`` over sum of ``qty`` of the level's trades (their own prices),
    correctly rounded; equal to ``price`` without ``tick_size``."""


class TradeOverlay(msgspec.Struct, frozen=True):
    """A symbol's kept trades by price level at one ``now``, from
    :meth:`TradesByPriceLevel.overlay`."""

    symbol: str
    """The symbol, e.g. ``"BTC/USD"``."""
    at: float
    """The time the overlay was taken at: the ``now`` passed, or the latest one the tracker
    was given before if that was later."""
    levels: tuple[PriceLevelActivity, ...]
    """One entry per level holding a kept trade, lowest price first."""
    point_of_control: Decimal | None
    """The price of the level with the largest volume (ties: more trades, then the lower
    price), or ``None`` when no trade is kept."""
    trade_count: int
    """How many trades are kept, all levels together."""
    buy_qty: Decimal
    """Total taker-buy quantity, all levels together."""
    sell_qty: Decimal
    """Total taker-sell quantity, all levels together."""
    vwap: Decimal | None
    """The volume-weighted average price of every kept trade (correctly rounded), or
    ``None`` when none is."""

    def level(self, price: Decimal) -> PriceLevelActivity | None:
        """The entry whose level label equals ``price``, or ``None``."""
        for entry in self.levels:
            if entry.price == price:
                return entry
        return None


def _weight(entry: PriceLevelActivity) -> tuple[Decimal, int]:
    return entry.volume, entry.trade_count


class _Level:
    """The running sums of one level and its kept trades (oldest first)."""

    __slots__ = ("buy", "count", "notional", "sell", "trades")

    def __init__(self) -> None:
        self.count = 0
        self.buy = _ZERO
        self.sell = _ZERO
        self.notional = _ZERO
        self.trades: deque[Trade] = deque()


class _Symbol:
    """One symbol's kept trades in stamp order, with their levels."""

    __slots__ = ("levels", "stamps")

    def __init__(self) -> None:
        self.stamps: deque[tuple[float, Trade, Decimal]] = deque()
        self.levels: dict[Decimal, _Level] = {}


class TradesByPriceLevel:
    """Each symbol's trades of the last ``window`` seconds, summed per price level.

    ``window`` is a finite number of seconds > 0; ``tick_size`` (optional: a ``Decimal``, an
    ``int`` or a numeric ``str`` between 1E-64 and 1E+64, e.g. the pair's
    ``price_increment`` times 10) groups prices into buckets. Definitions (time, level,
    point of control) are in :mod:`kraken_proto.analytics.trades`. Feed it ``Trade``
    events with :meth:`add_trade`; it never reads a clock. Bad arguments raise
    :class:`~kraken_proto.LocalProtocolError`.
    """

    __slots__ = ("_clock", "_symbols", "_tick_size", "_window")

    def __init__(self, window: float, *, tick_size: Decimal | int | str | None = None) -> None:
        self._window = check_duration("window", window)
        self._tick_size = (
            None if tick_size is None else check_number("tick_size", tick_size, alternative="None")
        )
        self._symbols: dict[str, _Symbol] = {}
        self._clock = -math.inf

    def __repr__(self) -> str:
        trades = sum(len(state.stamps) for state in self._symbols.values())
        return (
            f"<TradesByPriceLevel window={self._window!r} tick_size={self._tick_size!r} "
            f"trades={trades} symbols={sorted(self._symbols)}>"
        )

    def _advance(self, now: float) -> float:
        """The latest time given, ``now`` (checked) included."""
        self._clock = max(self._clock, now)
        return self._clock

    def _now(self, now: float) -> float:
        """``now``, checked, or the latest time given if ``now`` is earlier."""
        return self._advance(check_time("now", now))

    @property
    def window(self) -> float:
        """How long a trade is kept, in seconds."""
        return self._window

    @property
    def tick_size(self) -> Decimal | None:
        """The bucket width, or ``None`` for one level per exact price."""
        return self._tick_size

    def _level_of(self, price: Decimal) -> Decimal:
        tick = self._tick_size
        if tick is None:
            return price
        return EXACT.multiply(EXACT.divide_int(price, tick), tick)

    def add_trade(self, trade: Trade, now: float) -> None:
        """Keep ``trade``, stamped ``now`` (or the latest time given, if later), and expire
        its symbol's trades older than the window.

        Raises :class:`~kraken_proto.LocalProtocolError` for a ``trade`` that is no
        ``Trade``, whose ``side`` is neither ``"buy"`` nor ``"sell"``, or whose price or
        quantity is not a finite number > 0 (the protocol never emits such a trade).
        """
        now = check_time("now", now)
        if not isinstance(trade, Trade):
            raise LocalProtocolError(f"trade must be a Trade event, got {trade!r}")
        if trade.side not in _SIDES:
            raise LocalProtocolError(f"trade.side must be 'buy' or 'sell', got {trade.side!r}")
        if not _positive(trade.price) or not _positive(trade.qty):
            raise LocalProtocolError(
                f"trade.price and trade.qty must be finite Decimals > 0, got "
                f"{trade.price!r} and {trade.qty!r}"
            )
        now = self._advance(now)  # only once the trade is known good
        state = self._symbols.get(trade.symbol)
        if state is None:
            state = self._symbols[trade.symbol] = _Symbol()
        key = self._level_of(trade.price)
        level = state.levels.get(key)
        if level is None:
            level = state.levels[key] = _Level()
        level.count += 1
        if trade.side == "buy":
            level.buy = EXACT.add(level.buy, trade.qty)
        else:
            level.sell = EXACT.add(level.sell, trade.qty)
        level.notional = EXACT.add(level.notional, EXACT.multiply(trade.price, trade.qty))
        level.trades.append(trade)
        state.stamps.append((now, trade, key))
        self._expire(state, now)

    def _expire(self, state: _Symbol, now: float) -> None:
        cutoff = now - self._window
        stamps = state.stamps
        levels = state.levels
        while stamps and stamps[0][0] < cutoff:
            _, trade, key = stamps.popleft()
            level = levels[key]
            level.count -= 1
            if not level.count:
                del levels[key]
                continue
            level.trades.popleft()
            if trade.side == "buy":
                level.buy = EXACT.subtract(level.buy, trade.qty)
            else:
                level.sell = EXACT.subtract(level.sell, trade.qty)
            level.notional = EXACT.subtract(level.notional, EXACT.multiply(trade.price, trade.qty))

    def expire(self, now: float) -> None:
        """Drop every symbol's trades older than the window at ``now`` (queries do this for
        their own symbol; call it to free the memory of symbols no longer queried)."""
        now = self._now(now)
        for symbol, state in list(self._symbols.items()):
            self._expire(state, now)
            if not state.stamps:
                del self._symbols[symbol]

    def trades_at_price(
        self, symbol: str, price: Decimal | int | str, now: float | None = None
    ) -> tuple[Trade, ...]:
        """The kept trades of ``symbol`` in the level holding ``price`` (that exact price
        without ``tick_size``), oldest first; first expiring at ``now`` when given.

        ``price`` is a ``Decimal``, an ``int`` or a numeric ``str``, > 0 and below 1E+256
        (as every price the protocol emits)."""
        price = check_number("price", price, price=True)
        if now is not None:
            now = self._now(now)
        state = self._symbols.get(symbol)
        if state is None:
            return ()
        if now is not None:
            self._expire(state, now)
        level = state.levels.get(self._level_of(price))
        return () if level is None else tuple(level.trades)

    def overlay(self, symbol: str, now: float) -> TradeOverlay:
        """Expire ``symbol``'s trades at ``now`` and sum the kept ones per level (``at`` is
        the time used: ``now``, or the latest time given if ``now`` is earlier)."""
        now = self._now(now)
        state = self._symbols.get(symbol)
        if state is not None:
            self._expire(state, now)
        levels: dict[Decimal, _Level] = {} if state is None else state.levels
        tick = self._tick_size
        entries = []
        count = 0
        buy = sell = notional = _ZERO
        for key in sorted(levels):
            level = levels[key]
            volume = EXACT.add(level.buy, level.sell)
            vwap = key if tick is None else QUOTIENT.divide(level.notional, volume)
            entries.append(
                PriceLevelActivity(key, level.count, level.buy, level.sell, volume, vwap)
            )
            count += level.count
            buy = EXACT.add(buy, level.buy)
            sell = EXACT.add(sell, level.sell)
            notional = EXACT.add(notional, level.notional)
        # max() keeps the first of equal keys: with entries by ascending price, the lowest.
        control = max(entries, key=_weight).price if entries else None
        total = EXACT.add(buy, sell)
        return TradeOverlay(
            symbol,
            now,
            tuple(entries),
            control,
            count,
            buy,
            sell,
            QUOTIENT.divide(notional, total) if entries else None,
        )
