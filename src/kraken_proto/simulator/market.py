"""A seeded model of one market: an L2 book on a tick grid, trades, 24 h stats and candles.

The model is pure (no clock, no global randomness): time arrives as ``now`` (wall-clock
seconds since the Unix epoch, which is what candle boundaries align to) and every random
choice comes from the ``random.Random`` it is given. Internally prices and quantities are
integers in units of the pair's precision; everything it returns is an exact ``Decimal``
quantized to that precision.

Each :meth:`MarketModel.step` applies a few book events (quantity changes, new levels,
cancels, mostly near the top; sometimes a taker order that trades against the best levels
of the other side), lets a hidden fair price wander, and keeps each side at ``levels`` or
more levels. It also works out, for every Kraken book depth, the update message Kraken
would publish for that step (see :class:`MarketStep`), so a publisher does not have to
replay the book itself.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import deque
from decimal import Decimal

import msgspec

from kraken_proto.simulator.verify import CHECKSUM_LEVELS, units_checksum

__all__ = [
    "DEPTHS",
    "INTERVALS",
    "BookDelta",
    "Candle",
    "Level",
    "MarketModel",
    "MarketStep",
    "TickerStats",
    "TradeRecord",
]

DEPTHS = (10, 25, 100, 500, 1000)
"""The book depths Kraken offers; :class:`MarketStep` carries an update for each."""

INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
"""OHLC intervals in minutes."""

RECENT_TRADES = 50
"""How many recent trades the model keeps (the trade channel's snapshot size)."""

CANDLES_KEPT = 60
"""How many candles per interval the model keeps (the ohlc channel's snapshot)."""

DAY = 86400.0
"""The ticker's statistics window, in seconds."""

_HISTORY_SPAN = 1800.0  # seconds of synthetic trade history before ``start``
_SWEEP_LEVELS = 4  # a taker order trades against at most this many levels


class Level(msgspec.Struct, frozen=True, gc=False):
    """One book level (or one change to it): ``qty`` 0 means the level was removed."""

    price: Decimal
    qty: Decimal


class BookDelta(msgspec.Struct, frozen=True, gc=False):
    """The levels of one book update message, per side, in the order to apply them."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """One trade: ``side`` and ``ord_type`` are the taker's; ``time`` is wall-clock seconds."""

    side: str
    price: Decimal
    qty: Decimal
    ord_type: str
    trade_id: int
    time: float


class MarketStep:
    """What one :meth:`MarketModel.step` changed (levels are converted on first use).

    :attr:`bids` and :attr:`asks` are every change to the full book, in application order
    (qty 0 removes a level). :meth:`book` gives the update Kraken publishes to a client
    subscribed at one of :data:`DEPTHS`, or ``None`` when nothing in its range changed.
    Those updates follow Kraken's rules: when a level in range is removed, the level that
    moves into range is sent in the same message; levels pushed out of range by a new one
    are not deleted (the client truncates to its depth after applying the message).
    Applying each delta to a book truncated to that depth keeps it equal to the top of the
    full book. :attr:`trades` are this step's trades in order; :attr:`bbo_changed` says
    whether the best bid or ask (price or quantity) changed.
    """

    __slots__ = ("_asks", "_bids", "_made", "_market", "_views", "bbo_changed", "time", "trades")

    def __init__(
        self,
        market: MarketModel,
        time: float,
        changes: tuple[list[tuple[int, int]], list[tuple[int, int]]],
        views: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]],
        trades: tuple[TradeRecord, ...],
        bbo_changed: bool,
    ) -> None:
        self._market = market
        self.time = time
        """Wall-clock time of the step."""
        self._bids, self._asks = changes
        self._views = views
        self.trades = trades
        """The trades of this step, in order."""
        self.bbo_changed = bbo_changed
        """Whether the best bid or ask (price or quantity) changed."""
        self._made: dict[tuple[int, tuple[tuple[int, int], ...]], tuple[Level, ...]] = {}

    def _levels(self, sign: int, changes: list[tuple[int, int]]) -> tuple[Level, ...]:
        # The depths mostly publish the same changes: convert each list once.
        memo_key = (sign, tuple(changes))
        out = self._made.get(memo_key)
        if out is None:
            price, qty = self._market.price_precision, self._market.qty_precision
            out = tuple(
                [
                    Level(Decimal(sign * key).scaleb(-price), Decimal(units).scaleb(-qty))
                    for key, units in changes
                ]
            )
            self._made[memo_key] = out
        return out

    @property
    def bids(self) -> tuple[Level, ...]:
        """Every change to the bid side, in order."""
        return self._levels(-1, self._bids)

    @property
    def asks(self) -> tuple[Level, ...]:
        """Every change to the ask side, in order."""
        return self._levels(1, self._asks)

    @property
    def depths(self) -> tuple[int, ...]:
        """The depths whose published book changed."""
        return tuple(self._views)

    def book(self, depth: int) -> BookDelta | None:
        """The update published at ``depth`` (one of :data:`DEPTHS`), if anything changed."""
        view = self._views.get(depth)
        if view is None:
            return None
        return BookDelta(self._levels(-1, view[0]), self._levels(1, view[1]))


class TickerStats(msgspec.Struct, frozen=True, gc=False):
    """Level-1 data and the statistics of the last 24 hours (``trades`` is their count)."""

    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    last: Decimal
    volume: Decimal
    vwap: Decimal
    low: Decimal
    high: Decimal
    change: Decimal
    change_pct: Decimal
    trades: int


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One OHLC candle: ``begin`` is the wall-clock start of the interval in seconds."""

    interval: int
    begin: float
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal
    trades: int


class _View:
    """Kraken's published top-``depth`` view of one side during one step."""

    __slots__ = ("depth", "out", "pushed")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.out: list[tuple[int, int]] = []
        # Levels a new level pushed out of range during this step: the client still holds
        # them (it truncates only after the whole message), so changes to them are sent.
        self.pushed: set[int] = set()


class _Side:
    """One side of the full book. Keys sort best first: the price for asks, -price for bids."""

    __slots__ = ("changes", "keys", "qty", "sign", "views")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: dict[int, int] = {}
        self.changes: list[tuple[int, int]] = []
        self.views = [_View(depth) for depth in DEPTHS]

    def begin(self) -> None:
        """Forget the previous step's changes."""
        self.changes = []
        for view in self.views:
            view.out = []
            view.pushed.clear()

    def set(self, key: int, qty: int) -> None:
        """Set the quantity at ``key`` (0 removes the level) and record what is published."""
        keys = self.keys
        index = bisect_left(keys, key)
        self.changes.append((key, qty))
        if qty == 0:
            del keys[index]
            del self.qty[key]
            size = len(keys)
            for view in self.views:
                depth = view.depth
                if index < depth:
                    view.out.append((key, 0))
                    if size >= depth:
                        # The level that moves into range goes into the same message.
                        refill = keys[depth - 1]
                        if refill in view.pushed:
                            view.pushed.discard(refill)
                        else:
                            view.out.append((refill, self.qty[refill]))
                elif key in view.pushed:
                    view.pushed.discard(key)
                    view.out.append((key, 0))
        elif index < len(keys) and keys[index] == key:
            self.qty[key] = qty
            for view in self.views:
                if index < view.depth or key in view.pushed:
                    view.out.append((key, qty))
        else:
            keys.insert(index, key)
            self.qty[key] = qty
            size = len(keys)
            for view in self.views:
                depth = view.depth
                if index < depth:
                    view.out.append((key, qty))
                    if size > depth:
                        view.pushed.add(keys[depth])


class _Bar:
    """A mutable candle in integer units (``pv`` is the sum of price x qty)."""

    __slots__ = ("begin", "close", "high", "low", "open", "pv", "trades", "volume")

    def __init__(self, begin: float, price: int) -> None:
        self.begin = begin
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.pv = 0
        self.trades = 0

    def add(self, price: int, qty: int) -> None:
        """Account for one trade."""
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += qty
        self.pv += price * qty
        self.trades += 1


def _divide(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for positive integers."""
    return (2 * numerator + denominator) // (2 * denominator)


class MarketModel:
    """A seeded, self-moving market for one symbol (see the module docstring).

    ``mid`` is the starting price, rounded down to the ``tick`` grid (``tick`` must be a
    whole number of price units); each side keeps between ``levels`` and ``max_levels``
    (default ``levels + 200``) levels, starting halfway; the bid side holds fewer only
    when prices would reach zero. ``start`` is the wall-clock time the simulation starts
    at: the model invents ``history`` trades over the half hour before it (they fill the
    trade, ticker and candle statistics, not the book) and a prior 24 h aggregate for the
    ticker. ``activity`` is the mean number of book events per step.
    """

    def __init__(
        self,
        symbol: str,
        *,
        rng: random.Random,
        price_precision: int,
        qty_precision: int,
        mid: Decimal,
        tick: Decimal,
        levels: int = 1000,
        max_levels: int | None = None,
        start: float = 0.0,
        activity: float = 3.0,
        history: int = 100,
    ) -> None:
        pscale = Decimal(10) ** price_precision
        tick_units = tick * pscale
        if tick_units < 1 or tick_units != tick_units.to_integral_value():
            raise ValueError(f"tick {tick} is not a whole number of 1e-{price_precision} units")
        self._tick = int(tick_units)
        mid_units = int(mid * pscale) // self._tick * self._tick
        if mid_units < self._tick:
            raise ValueError(f"mid {mid} is below one tick ({tick})")
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        max_levels = levels + 200 if max_levels is None else max_levels
        if max_levels < levels:
            raise ValueError(f"max_levels ({max_levels}) must be at least levels ({levels})")
        self.symbol = symbol
        """The pair, e.g. ``BTC/USD``."""
        self.price_precision = price_precision
        """Decimals of every price."""
        self.qty_precision = qty_precision
        """Decimals of every quantity."""
        self.tick = tick
        """The price grid."""
        self.time = start
        """Wall-clock time of the latest step (``start`` before the first)."""
        self._rng = rng
        self._levels = levels
        self._max_levels = max_levels
        middle = (levels + max_levels) // 2
        self._activity = activity
        # A typical resting order is worth about 2,000 units of the quote currency.
        self._lot = max(1, int(Decimal(2000) / mid * Decimal(10) ** qty_precision))
        self._bids = _Side(-1)
        self._asks = _Side(1)
        self._bids.set(-mid_units, self._random_qty())
        self._asks.set(mid_units + self._tick, self._random_qty())
        self._fill(self._bids, middle)
        self._fill(self._asks, middle)
        self._fair = mid_units + self._tick / 2
        self._trade_id = rng.randrange(10_000_000, 100_000_000)
        self._recent: deque[TradeRecord] = deque(maxlen=RECENT_TRADES)
        self._bars: dict[int, deque[_Bar]] = {
            interval: deque(maxlen=CANDLES_KEPT) for interval in INTERVALS
        }
        self._last = mid_units
        self._window: deque[_Bar] = deque()
        self._volume = self._pv = self._count = 0
        self._low = self._high = mid_units
        self._seed_statistics(start, mid_units, history)

    # ----------------------------------------------------------------- conversions

    def _price(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.price_precision)

    def _qty(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.qty_precision)

    def _level(self, side: _Side, key: int) -> Level:
        return Level(self._price(side.sign * key), self._qty(side.qty[key]))

    def _random_qty(self) -> int:
        return max(1, int(self._lot * self._rng.lognormvariate(0.0, 1.0)))

    # ----------------------------------------------------------------- history and stats

    def _seed_statistics(self, start: float, mid_units: int, history: int) -> None:
        rng = self._rng
        # The day before the invented history, as one aggregate bucket of the 24 h window.
        first_minute = math.floor((start - _HISTORY_SPAN) / 60.0) * 60.0
        opened = max(self._tick, int(mid_units * rng.uniform(0.97, 1.03)))
        prior = _Bar(first_minute - 60.0, opened)
        trades = rng.randrange(20_000, 200_000)
        prior.volume = self._lot * trades // 4
        prior.pv = prior.volume * mid_units
        prior.trades = trades
        prior.high = max(opened, mid_units) + mid_units // 50
        prior.low = max(self._tick, min(opened, mid_units) - mid_units // 50)
        self._window.append(prior)
        self._volume, self._pv, self._count = prior.volume, prior.pv, prior.trades
        self._low, self._high = prior.low, prior.high
        price = mid_units
        for index in range(history):
            time = start - _HISTORY_SPAN + (index + rng.random()) * _HISTORY_SPAN / history
            price = max(self._tick, price + self._tick * round(rng.gauss(0.0, 2.0)))
            side = "buy" if rng.random() < 0.5 else "sell"
            self._record_trade(time, side, price, self._random_qty(), "limit")

    def _record_trade(
        self, time: float, side: str, price: int, qty: int, ord_type: str
    ) -> TradeRecord:
        self._trade_id += 1
        for interval in INTERVALS:
            bars = self._bars[interval]
            length = interval * 60.0
            begin = math.floor(time / length) * length
            if bars and bars[-1].begin == begin:
                bar = bars[-1]
            else:
                bar = _Bar(begin, price)
                bars.append(bar)
                if interval == 1:
                    self._window.append(bar)
            bar.add(price, qty)
        self._last = price
        self._volume += qty
        self._pv += price * qty
        self._count += 1
        self._low = min(self._low, price)
        self._high = max(self._high, price)
        trade = TradeRecord(
            side, self._price(price), self._qty(qty), ord_type, self._trade_id, time
        )
        self._recent.append(trade)
        return trade

    def _expire(self, now: float) -> None:
        window = self._window
        cutoff = now - DAY
        expired = False
        while window and window[0].begin < cutoff:
            bar = window.popleft()
            self._volume -= bar.volume
            self._pv -= bar.pv
            self._count -= bar.trades
            expired = True
        if not expired:
            return
        self._low = min((bar.low for bar in window), default=self._last)
        self._high = max((bar.high for bar in window), default=self._last)

    # ----------------------------------------------------------------- book events

    def _fill(self, side: _Side, count: int) -> None:
        """Add levels behind the worst one until the side holds ``count`` levels."""
        rng = self._rng
        while len(side.keys) < count:
            price = side.sign * side.keys[-1] + side.sign * self._tick * (
                1 + int(rng.expovariate(1.0))
            )
            if price <= 0:
                return
            side.set(side.sign * price, self._random_qty())

    def _rank(self, size: int) -> int:
        rng = self._rng
        rank = int(rng.expovariate(1 / 6)) if rng.random() < 0.9 else rng.randrange(size)
        return min(rank, size - 1)

    def _add(self, side: _Side) -> None:
        rng = self._rng
        best = side.sign * side.keys[0]
        spread = (self._asks.keys[0] + self._bids.keys[0]) // self._tick
        if spread > 1 and rng.random() < 0.5:
            price = best - side.sign * self._tick * rng.randint(1, spread - 1)
        else:
            price = best + side.sign * self._tick * int(rng.expovariate(1 / 4))
            if price <= 0:
                return
        key = side.sign * price
        side.set(key, side.qty.get(key, 0) + self._random_qty())

    def _cancel(self, side: _Side) -> None:
        if len(side.keys) > 1:
            side.set(side.keys[self._rank(len(side.keys))], 0)

    def _modify(self, side: _Side) -> None:
        key = side.keys[self._rank(len(side.keys))]
        side.set(key, max(1, int(side.qty[key] * self._rng.uniform(0.2, 1.8))))

    def _trade(self, now: float, trades: list[TradeRecord]) -> None:
        rng = self._rng
        mid2 = self._asks.keys[0] - self._bids.keys[0]
        lean = (2 * self._fair - mid2) / (40 * self._tick)
        buy = rng.random() < min(0.9, max(0.1, 0.5 + lean))
        book = self._asks if buy else self._bids
        remaining = max(1, int(self._lot * rng.lognormvariate(-0.5, 1.5)))
        ord_type = "market" if rng.random() < 0.3 else "limit"
        for _ in range(_SWEEP_LEVELS):
            if remaining == 0 or len(book.keys) == 1:
                return
            key = book.keys[0]
            available = book.qty[key]
            take = min(available, remaining)
            book.set(key, available - take)
            remaining -= take
            side = "buy" if buy else "sell"
            trades.append(self._record_trade(now, side, book.sign * key, take, ord_type))

    # ----------------------------------------------------------------- public API

    def step(self, now: float) -> MarketStep:
        """Advance the market by one step at wall-clock time ``now``; return what changed."""
        rng = self._rng
        bids, asks = self._bids, self._asks
        bids.begin()
        asks.begin()
        before = (bids.keys[0], bids.qty[bids.keys[0]], asks.keys[0], asks.qty[asks.keys[0]])
        trades: list[TradeRecord] = []
        for _ in range(1 + min(int(rng.expovariate(1 / self._activity)), 15)):
            roll = rng.random()
            side = bids if rng.random() < 0.5 else asks
            if roll < 0.08:
                self._trade(now, trades)
            elif roll < 0.33:
                self._add(side)
            elif roll < 0.55:
                self._cancel(side)
            else:
                self._modify(side)
        self._fair += rng.gauss(0.0, 0.7) * self._tick
        for side in (bids, asks):
            self._fill(side, self._levels)
            if len(side.keys) > self._max_levels:
                middle = (self._levels + self._max_levels) // 2
                while len(side.keys) > middle:
                    side.set(side.keys[-1], 0)
        self.time = now
        self._expire(now)
        after = (bids.keys[0], bids.qty[bids.keys[0]], asks.keys[0], asks.qty[asks.keys[0]])

        views = {
            bid_view.depth: (bid_view.out, ask_view.out)
            for bid_view, ask_view in zip(bids.views, asks.views, strict=True)
            if bid_view.out or ask_view.out
        }
        return MarketStep(
            self, now, (bids.changes, asks.changes), views, tuple(trades), before != after
        )

    def book(self, depth: int | None = None) -> tuple[list[Level], list[Level]]:
        """The top ``depth`` levels (all with ``None``) as ``(bids, asks)``, best first."""
        bids, asks = self._bids, self._asks
        return (
            [self._level(bids, key) for key in bids.keys[:depth]],
            [self._level(asks, key) for key in asks.keys[:depth]],
        )

    def best(self) -> tuple[Level, Level]:
        """The best bid and the best ask."""
        return self._level(self._bids, self._bids.keys[0]), self._level(
            self._asks, self._asks.keys[0]
        )

    def checksum(self) -> int:
        """Kraken's CRC32 of the top 10 levels per side, at this pair's precision.

        The model stores prices and quantities in precision units, so this is
        :func:`~kraken_proto.simulator.verify.units_checksum` of the top levels.
        """
        asks, bids = self._asks, self._bids
        return units_checksum(
            [(key, asks.qty[key]) for key in asks.keys[:CHECKSUM_LEVELS]],
            [(-key, bids.qty[key]) for key in bids.keys[:CHECKSUM_LEVELS]],
        )

    def ticker(self) -> TickerStats:
        """Best bid/ask, last price and the statistics of the trailing 24 hours."""
        bid, ask = self.best()
        volume, last = self._volume, self._last
        vwap = _divide(self._pv, volume) if volume else last
        opened = self._window[0].open if self._window else last
        change = last - opened
        pct = (Decimal(change * 100) / Decimal(opened)).quantize(Decimal("0.01")) + 0
        return TickerStats(
            bid.price,
            bid.qty,
            ask.price,
            ask.qty,
            self._price(last),
            self._qty(volume),
            self._price(vwap),
            self._price(self._low),
            self._price(self._high),
            self._price(change),
            pct,
            self._count,
        )

    def candles(self, interval: int) -> list[Candle]:
        """The kept candles of ``interval`` minutes (one of :data:`INTERVALS`), oldest first.

        Only intervals that saw a trade have a candle; the last one is the current candle.
        """
        return [self._candle(interval, bar) for bar in self._bars[interval]]

    def candle(self, interval: int) -> Candle | None:
        """The current (latest) candle of ``interval`` minutes, if any."""
        bars = self._bars[interval]
        return self._candle(interval, bars[-1]) if bars else None

    def _candle(self, interval: int, bar: _Bar) -> Candle:
        return Candle(
            interval,
            bar.begin,
            self._price(bar.open),
            self._price(bar.high),
            self._price(bar.low),
            self._price(bar.close),
            self._qty(bar.volume),
            self._price(_divide(bar.pv, bar.volume)),
            bar.trades,
        )

    def recent_trades(self) -> list[TradeRecord]:
        """The last :data:`RECENT_TRADES` trades, oldest first."""
        return list(self._recent)
