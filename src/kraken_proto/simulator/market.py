"""A seeded model of one market: an L2 book on a tick grid, trades, 24 h stats and candles.

The model is pure (no clock, no global randomness): time arrives as ``now`` (wall-clock
seconds since the Unix epoch, which is what candle boundaries align to) and every random
choice comes from the ``random.Random`` it is given. Internally prices and quantities are
integers in units of the pair's precision; everything it returns is an exact ``Decimal``
quantized to that precision.

Each :meth:`MarketModel.step` is one matching-engine event, as Kraken publishes them
(measured on 4,621 real book updates): an order added (a quantity change, or a new price
level), an order cancelled (a quantity change, or a level removed), an order moved to
another price (a cancel, then an add, on the same side), an order amended, or a taker order
that fills against the best levels of the other side, one fill per resting order, and now
and then rests what is left on its own side (the only two-sided events). Within one side
of an event every removal comes before every new price level. Each side always keeps at
least ``levels`` levels: a removal is followed at once by a new level behind the worst one
when the side would fall short. New orders inside a spread wider than the pair's typical
``spread`` narrow it again, so books stay as tight as Kraken's.

:meth:`MarketModel.next_gap` gives the time to the next event: events come in bursts (a
few, well under a millisecond apart) separated by silences of tens of milliseconds to
seconds, ``rate`` events per second on average.

The step also works out, for every Kraken book depth, the update message Kraken would
publish for it (see :class:`MarketStep`), so a publisher does not have to replay the book.
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
_SWEEP_LEVELS = 2  # a taker order trades against at most this many levels
_MAX_FILLS = 2  # and has at most this many fills beyond one per level
_MAX_CHANGES = 6  # nor more level changes than this in one message (Kraken's largest: 6)
_NEAR_RANK = 6.0  # mean rank of the levels most events touch (90% of them)

# The mix of engine events (the rest are amends: one level's quantity changes).
_P_TRADE = 0.05
_P_ADD = 0.30
_P_CANCEL = 0.29
_P_MOVE = 0.18
_REACH = Decimal("0.00005")  # mean distance of new orders behind the best, of the price
_P_NEW_LEVEL = 0.45  # an add away from the top opens a new price (else joins a level)
_P_WHOLE = 0.45  # a cancel removes a whole level (below the best one)
_P_REST = 0.03  # a limit taker that swept whole levels rests the rest of its quantity

# Timing: bursts of about _BURST_SIZE events, _BURST_GAP s apart on average, separated
# by log-normal silences (sigma _SILENCE_SIGMA) that set the mean rate.
_BURST_SIZE = 4.0
_BURST_GAP = 0.0008
_SILENCE_SIGMA = 1.2


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


_Changes = list[tuple[int, int]]


class MarketStep:
    """What one :meth:`MarketModel.step` (one engine event) changed; levels converted on use.

    :attr:`bids` and :attr:`asks` are every change to the full book, in application order
    (qty 0 removes a level). :meth:`book` gives the update Kraken publishes to a client
    subscribed at one of :data:`DEPTHS`, or ``None`` when nothing in its range changed.
    It follows Kraken's publishing rule, applied change by change to the top ``depth``
    levels: a quantity change or a new price inside the top ``depth`` is sent (a level a
    new price pushes out of range is dropped silently); a removal inside it is sent as qty
    0 and immediately followed by the refill, the level now at rank ``depth`` with its
    current quantity; nothing outside it is sent. A client that truncates its book to
    ``depth`` after every level, and one that truncates after every message, both keep the
    top of the full book. :attr:`trades` are this step's trades in order;
    :attr:`bbo_changed` says whether the best bid or ask (price or quantity) changed.
    """

    __slots__ = ("_asks", "_bids", "_made", "_market", "_views", "bbo_changed", "time", "trades")

    def __init__(
        self,
        market: MarketModel,
        time: float,
        changes: tuple[_Changes, _Changes],
        views: dict[int, tuple[_Changes, _Changes]],
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

    def _levels(self, sign: int, changes: _Changes) -> tuple[Level, ...]:
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


_LAST = len(DEPTHS) - 1


class _Side:
    """One side of the full book. Keys sort best first: the price for asks, -price for bids.

    Every change is recorded (:attr:`changes`) and published to each depth's message
    (:attr:`out`, in :data:`DEPTHS` order) by Kraken's rule, change by change.
    """

    __slots__ = ("changes", "keys", "out", "qty", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: dict[int, int] = {}
        self.changes: _Changes = []
        self.out: list[_Changes] = [[] for _ in DEPTHS]

    def begin(self) -> None:
        """Start a new step (the previous step keeps its lists)."""
        self.changes = []
        self.out = [[] for _ in DEPTHS]

    def put(self, key: int, qty: int) -> None:
        """Set the quantity at ``key`` (a level or a new one), publishing it where in range."""
        keys = self.keys
        index = bisect_left(keys, key)
        if index == len(keys) or keys[index] != key:
            keys.insert(index, key)
        self.qty[key] = qty
        self.changes.append((key, qty))
        out = self.out
        for slot in range(_LAST, -1, -1):
            if index >= DEPTHS[slot]:
                break
            out[slot].append((key, qty))

    def delete(self, key: int) -> None:
        """Remove the level at ``key``: qty 0 where it was in range, then that range's refill."""
        keys = self.keys
        index = bisect_left(keys, key)
        del keys[index]
        del self.qty[key]
        self.changes.append((key, 0))
        size = len(keys)
        out = self.out
        for slot in range(_LAST, -1, -1):
            depth = DEPTHS[slot]
            if index >= depth:
                break
            out[slot].append((key, 0))
            if size >= depth:
                refill = keys[depth - 1]
                out[slot].append((refill, self.qty[refill]))


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
    when prices would reach zero. ``spread`` is the pair's typical spread in ticks (1: as
    tight as Kraken's BTC/USD). ``start`` is the wall-clock time the simulation starts at:
    the model invents ``history`` trades over the half hour before it (they fill the
    trade, ticker and candle statistics, not the book) and a prior 24 h aggregate for the
    ticker. ``rate`` is the mean number of events per second (see :meth:`next_gap`).
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
        spread: int = 1,
        start: float = 0.0,
        rate: float = 60.0,
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
        if spread < 1:
            raise ValueError(f"spread must be at least 1 tick, got {spread}")
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
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
        self.rate = rate
        """Mean events per second."""
        self._rng = rng
        self._levels = levels
        self._max_levels = max_levels
        self._spread = spread
        # A tight market's best levels are deep: whole ones are rarely cancelled.
        self._whole_best = _P_WHOLE * (1.0 - math.exp(-spread / 3.0))
        # Most new orders go this many ticks (on average) behind the best price.
        self._reach = max(2.0, 1.5 * spread, float(_REACH * mid / tick))
        self._burst = 0
        # A typical resting order is worth about 2,000 units of the quote currency.
        self._lot = max(1, int(Decimal(2000) / mid * Decimal(10) ** qty_precision))
        self._bids = _Side(-1)
        self._asks = _Side(1)
        self._bids.put(-mid_units, self._random_qty())
        self._asks.put(mid_units + self._tick, self._random_qty())
        middle = (levels + max_levels) // 2
        for side in (self._bids, self._asks):
            while len(side.keys) < middle and self._extend(side):
                pass
            side.begin()
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

    def _extend(self, side: _Side) -> bool:
        """Add a level behind the worst one; False when that would reach a price of 0."""
        rng = self._rng
        price = side.sign * side.keys[-1] + side.sign * self._tick * (1 + int(rng.expovariate(1.0)))
        if price <= 0:
            return False
        side.put(side.sign * price, self._random_qty())
        return True

    def _delete(self, side: _Side, key: int) -> None:
        """Remove a level; a side left short of ``levels`` gets a new level at the back."""
        side.delete(key)
        if len(side.keys) < self._levels:
            self._extend(side)

    def _rank(self, size: int) -> int:
        rng = self._rng
        near = rng.random() < 0.9
        rank = int(rng.expovariate(1 / _NEAR_RANK)) if near else rng.randrange(size)
        return min(rank, size - 1)

    def _spread_ticks(self) -> int:
        return (self._asks.keys[0] + self._bids.keys[0]) // self._tick

    def _add(self, side: _Side, near: int | None = None, avoid: int | None = None) -> None:
        """A new order: inside a wide spread, some ticks behind the best, or anywhere.

        ``near`` places a moved order instead: near that rank, never at ``avoid`` (the
        level it left).
        """
        rng = self._rng
        qty = self._random_qty()
        keys = side.keys
        spread = self._spread_ticks()
        inside = 0.95 * (1.0 - math.exp(-3.0 * (spread - 1) / self._spread))
        if near is None and spread > 1 and rng.random() < inside:
            # A new best price inside the spread, which narrows.
            side.put(keys[0] - rng.randint(1, spread - 1) * self._tick, qty)
            return
        if near is not None:
            # Where an order moved to: a free price just before the level near ``near``,
            # or that level when there is no room (never the level it left: ``avoid``).
            rank = min(near, len(keys) - 1)
            key = keys[rank]
            if rank > 0:
                room = (key - keys[rank - 1]) // self._tick - 1
                if room > 0:
                    key = keys[rank - 1] + self._tick * rng.randint(1, room)
            if key == avoid:
                key = keys[rank + 1] if rank + 1 < len(keys) else keys[rank - 1]
        elif rng.random() < 0.9:
            key = keys[0] + self._tick * int(rng.expovariate(1.0 / self._reach))
            if side.sign * key <= 0:
                key = keys[-1]  # no room down to a price of 0: join the lowest bid
        else:  # anywhere in the book, so that every depth sees new levels
            key = keys[0] + self._tick * rng.randrange((keys[-1] - keys[0]) // self._tick + 1)
        side.put(key, side.qty.get(key, 0) + qty)

    def _cancel(self, side: _Side) -> tuple[int, int]:
        """An order cancelled: a level removed, or its quantity lowered. Its rank and key."""
        rng = self._rng
        keys = side.keys
        rank = self._rank(len(keys))
        key = keys[rank]
        whole = rng.random() < (self._whole_best if rank == 0 else _P_WHOLE)
        qty = side.qty[key]
        remaining = int(qty * rng.uniform(0.1, 0.9))
        if (whole or remaining == 0) and len(keys) > 1:
            self._delete(side, key)
        else:
            side.put(key, max(1, remaining))
        return rank, key

    def _amend(self, side: _Side) -> None:
        key = side.keys[self._rank(len(side.keys))]
        qty = side.qty[key]
        new = max(1, int(qty * self._rng.uniform(0.3, 1.7)))
        side.put(key, new if new != qty else qty + 1)

    def _fills(self, take: int, most: int) -> list[int]:
        """``take`` split into the fills of the resting orders it meets (mostly one)."""
        rng = self._rng
        count = 1 if rng.random() < 0.9 else rng.randint(2, 4)
        count = max(1, min(count, take, most))
        cuts = sorted(rng.sample(range(1, take), count - 1)) if count > 1 else []
        bounds = [0, *cuts, take]
        return [bounds[i + 1] - bounds[i] for i in range(count)]

    def _trade(self, now: float, trades: list[TradeRecord]) -> None:
        rng = self._rng
        mid2 = self._asks.keys[0] - self._bids.keys[0]
        lean = (2 * self._fair - mid2) / (40 * self._tick)
        buy = rng.random() < min(0.9, max(0.1, 0.5 + lean))
        book, own = (self._asks, self._bids) if buy else (self._bids, self._asks)
        remaining = max(1, int(self._lot * rng.lognormvariate(-1.0, 1.0)))
        ord_type = "market" if rng.random() < 0.3 else "limit"
        side = "buy" if buy else "sell"
        swept: int | None = None
        budget = _MAX_FILLS
        changes = 0  # levels published: a fill each, and a refill per swept level
        for _ in range(_SWEEP_LEVELS):
            if remaining == 0 or len(book.keys) == 1:
                break
            key = book.keys[0]
            available = book.qty[key]
            take = min(available, remaining)
            fills = self._fills(take, budget)
            budget -= len(fills) - 1
            changes += len(fills)
            for fill in fills:
                available -= fill
                if available:
                    book.put(key, available)
                else:
                    self._delete(book, key)
                    swept = key
                    changes += 1
                trades.append(self._record_trade(now, side, book.sign * key, fill, ord_type))
            remaining -= take
        if swept is None or not remaining or ord_type != "limit" or changes >= _MAX_CHANGES:
            return
        if rng.random() < _P_REST:
            # The rest of a limit order rests at its limit: the last price it swept.
            own.put(-swept, remaining)

    # ----------------------------------------------------------------- public API

    def next_gap(self) -> float:
        """Seconds from one event to the next: bursts of events separated by silences.

        A burst holds about four events on average, well under a millisecond apart; the
        silences between bursts are log-normal (tens of milliseconds, now and then
        seconds), sized so that the mean rate is :attr:`rate`. Uses the market's random
        generator, like :meth:`step`.
        """
        rng = self._rng
        if self._burst > 0:
            self._burst -= 1
            return rng.expovariate(1.0 / _BURST_GAP)
        self._burst = int(rng.expovariate(1.0 / (_BURST_SIZE - 1.0)))
        silence = _BURST_SIZE / self.rate - (_BURST_SIZE - 1.0) * _BURST_GAP
        return max(silence, _BURST_GAP) * rng.lognormvariate(
            -(_SILENCE_SIGMA**2) / 2, _SILENCE_SIGMA
        )

    def step(self, now: float) -> MarketStep:
        """Apply one engine event at wall-clock time ``now``; return what changed."""
        rng = self._rng
        bids, asks = self._bids, self._asks
        bids.begin()
        asks.begin()
        before = (bids.keys[0], bids.qty[bids.keys[0]], asks.keys[0], asks.qty[asks.keys[0]])
        for side in (bids, asks):
            if len(side.keys) > self._max_levels:
                middle = (self._levels + self._max_levels) // 2
                while len(side.keys) > middle:
                    side.delete(side.keys[-1])
        trades: list[TradeRecord] = []
        roll = rng.random()
        side = bids if rng.random() < 0.5 else asks
        spread = self._spread_ticks()
        if spread > 1 and rng.random() < 0.5 * (1.0 - math.exp(-3.0 * (spread - 1) / self._spread)):
            self._add(side)  # liquidity providers answer a wide spread
        elif roll < _P_TRADE:
            self._trade(now, trades)
        elif roll < _P_TRADE + _P_ADD:
            self._add(side)
        elif roll < _P_TRADE + _P_ADD + _P_CANCEL:
            self._cancel(side)
        elif roll < _P_TRADE + _P_ADD + _P_CANCEL + _P_MOVE:
            # An order moved: cancelled, then added again near where it was.
            rank, key = self._cancel(side)
            self._add(side, max(0, rank + rng.randint(-3, 3)), key)
        else:
            self._amend(side)
        self._fair += rng.gauss(0.0, 0.35) * self._tick
        return self._finish_step(now, before, trades)

    def _finish_step(
        self, now: float, before: tuple[int, int, int, int], trades: list[TradeRecord]
    ) -> MarketStep:
        """The :class:`MarketStep` of the changes made since ``begin()``, at ``now``."""
        bids, asks = self._bids, self._asks
        self.time = now
        self._expire(now)
        after = (bids.keys[0], bids.qty[bids.keys[0]], asks.keys[0], asks.qty[asks.keys[0]])
        views = {
            depth: (bid_out, ask_out)
            for depth, bid_out, ask_out in zip(DEPTHS, bids.out, asks.out, strict=True)
            if bid_out or ask_out
        }
        return MarketStep(
            self, now, (bids.changes, asks.changes), views, tuple(trades), before != after
        )

    def _begin(self) -> tuple[int, int, int, int]:
        """Start an event made from outside (:meth:`sweep`, :meth:`add_liquidity`)."""
        bids, asks = self._bids, self._asks
        bids.begin()
        asks.begin()
        return (bids.keys[0], bids.qty[bids.keys[0]], asks.keys[0], asks.qty[asks.keys[0]])

    def _units(self, price: Decimal, name: str) -> int:
        """``price`` in price units, checked: positive and on the tick grid."""
        units = price.scaleb(self.price_precision)
        if units <= 0 or units != units.to_integral_value() or int(units) % self._tick:
            raise ValueError(
                f"{name} must be a positive multiple of the tick {self.tick}, got {price}"
            )
        return int(units)

    def sweep(self, price: Decimal, now: float) -> MarketStep:
        """Move the market to ``price`` at wall-clock time ``now``: one engine event.

        A taker order trades through every level of the other side up to ``price`` (a
        buy when ``price`` is at or above the best ask, a sell when at or below the best
        bid), one trade per level, and makers follow: a new level at ``price`` on the
        taker's side becomes the best. The fair price moves there too, so later events
        trade around it. A ``price`` inside the spread only adds that best level. Raises
        ``ValueError`` for a price off the tick grid or at or beyond the other side's
        deepest level (a sweep stays within the book).
        """
        target = self._units(price, "price")
        before = self._begin()
        bids, asks = self._bids, self._asks
        buy = target >= asks.keys[0]
        book, own = (asks, bids) if buy else (bids, asks)
        key = book.sign * target
        if key >= book.keys[-1]:
            raise ValueError(f"price {price} is at or beyond the deepest level of the book")
        trades: list[TradeRecord] = []
        side = "buy" if buy else "sell"
        while book.keys[0] <= key:
            best = book.keys[0]
            trades.append(self._record_trade(now, side, book.sign * best, book.qty[best], "market"))
            self._delete(book, best)
        own.put(own.sign * target, own.qty.get(own.sign * target, 0) + self._random_qty())
        self._fair = target + (self._tick / 2 if buy else -self._tick / 2)
        return self._finish_step(now, before, trades)

    def add_liquidity(self, side: str, price: Decimal, qty: Decimal, now: float) -> MarketStep:
        """Rest ``qty`` more at ``price`` on ``side`` (``"bid"`` or ``"ask"``) at wall-clock
        time ``now``: one engine event, a level's quantity growing or a new level.

        Raises ``ValueError`` for an unknown side, a price off the tick grid or crossing
        the other side's best, or a quantity that is not positive at the pair's precision.
        """
        if side not in ("bid", "ask"):
            raise ValueError(f"side must be 'bid' or 'ask', got {side!r}")
        units = self._units(price, "price")
        amount = qty.scaleb(self.qty_precision)
        if amount <= 0 or amount != amount.to_integral_value():
            raise ValueError(f"qty must be positive at {self.qty_precision} decimals, got {qty}")
        bids, asks = self._bids, self._asks
        own = bids if side == "bid" else asks
        if units >= asks.keys[0] if side == "bid" else units <= -bids.keys[0]:
            raise ValueError(f"price {price} crosses the other side's best price")
        before = self._begin()
        key = own.sign * units
        own.put(key, own.qty.get(key, 0) + int(amount))
        return self._finish_step(now, before, [])

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
