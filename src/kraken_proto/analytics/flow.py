"""Order flow: large resting quantities appearing, growing, shrinking and vanishing near the
top of a book.

An :class:`OrderFlowTracker` is shown a live book after each update (``track_update(book,
now)``) and reports how its *large levels* changed since the last time it saw the same
symbol, as :class:`FlowEvent` values. It only ever compares the best ``track_depth`` levels
of each side (the *tracked window*), and within those only the levels whose text changed,
so a call costs a few microseconds at the default ``track_depth`` of 25, whatever the
book's depth (``benchmarks/bench_flow.py`` measures it).

Definitions (for one symbol, one side):

- a level is *large* when it is in the tracked window and its quantity is ``>=`` the
  threshold in force for the update (see :class:`LargeOrderThreshold`) and not 0 (a level3
  level may hold only zero-quantity orders; a relative threshold may be 0);
- ``LARGE_ORDER_APPEARED``: a price is large now and was not at the previous update (a new
  level, one that grew past the threshold, one that came into the window, or, with a
  relative threshold, one that the moved threshold now counts);
- ``LARGE_ORDER_DISAPPEARED``: a price was large at the previous update and is not now
  (deleted, shrunk below the threshold, left the window, or no longer counted by a moved
  relative threshold);
- ``LARGE_ORDER_INCREASED`` / ``LARGE_ORDER_DECREASED``: a price is large now and was at
  the previous update, with a larger / smaller quantity.

So applying a call's events to the previous set of large levels (appeared: add; disappeared:
remove; increased/decreased: replace the quantity) gives exactly the current set.

**The window's edge.** The tracker does not look beyond the best ``track_depth`` levels
(that is what keeps it cheap). A large level that leaves the window, because it was
deleted, because better levels pushed it deeper, or because the book truncated it, is
reported as ``LARGE_ORDER_DISAPPEARED`` with ``qty`` 0: from the window alone a deletion
cannot be told from a level that sank. An L2 level in the window always has a positive
quantity, so ``qty == 0`` means "no longer in the tracked window" (for a level3 book: that,
or the level's orders now hold nothing); likewise ``previous_qty == 0`` on an ``APPEARED``
event means the level was not in the window at the previous update (it may have rested
deeper), or held nothing. A large level that comes back into the window appears again.

Sides are the book's: ``"bid"`` and ``"ask"`` (where a level rests), not a taker's
``"buy"``/``"sell"`` as in :func:`~kraken_proto.analytics.fill_estimate` and ``Trade``.

The first update seen for a symbol reports every large level in the window as appeared.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

import msgspec

from kraken_proto.analytics._common import EXACT, check_count, check_number, check_time, shown
from kraken_proto.book import OrderBook
from kraken_proto.errors import LocalProtocolError
from kraken_proto.level3 import L3Book

__all__ = [
    "FlowEvent",
    "FlowEventKind",
    "LargeLevel",
    "LargeOrderThreshold",
    "OrderFlowTracker",
    "ThresholdKind",
]

_ZERO = Decimal(0)
_HALF = Decimal("0.5")
_INFINITY = Decimal("Infinity")
_decode_decimal = msgspec.json.Decoder(Decimal).decode
_BID: Literal["bid"] = "bid"
_ASK: Literal["ask"] = "ask"


class ThresholdKind(enum.Enum):
    """How a :class:`LargeOrderThreshold`'s ``value`` is read."""

    ABSOLUTE = "absolute"
    """``value`` is a quantity in the base currency: large means ``qty >= value``."""
    RELATIVE = "relative"
    """``value`` is a multiple of the book's median level quantity (see
    :class:`LargeOrderThreshold`)."""


class LargeOrderThreshold(msgspec.Struct, frozen=True):
    """When a level counts as large: an absolute quantity, or a multiple of the book's median.

    Build one with :meth:`absolute` or :meth:`relative`:

    - ``LargeOrderThreshold.absolute(Decimal("10"))``: a level is large when its quantity is
      ``>= 10`` (in the pair's base currency). Simple, but 10 BTC and 10 DOGE are not alike:
      give each symbol its own (``OrderFlowTracker(per_symbol=...)``) or use a relative one.
    - ``LargeOrderThreshold.relative(Decimal("5"))``: at each update, the threshold is 5 times
      the median quantity of the levels in the tracked window, both sides together (up to
      ``2 * track_depth`` levels; with an even count the median is the mean of the two
      middle values). It is computed exactly. A level then is large when ``qty >= 5 *
      median``; since the median moves with the book, a level may appear or disappear
      without its own quantity changing. A window with no levels has no median and no large
      level; a median of 0 (a level3 window mostly of empty levels) makes every level that
      holds anything large.

    :meth:`absolute` and :meth:`relative` take a ``Decimal``, an ``int`` or a numeric ``str``
    between 1E-64 and 1E+64 (a ``float`` is refused as inexact); the constructor itself takes
    the ``Decimal`` only. Otherwise :class:`~kraken_proto.LocalProtocolError`.
    """

    kind: ThresholdKind
    """Whether ``value`` is a quantity or a multiple of the median."""
    value: Decimal
    """The quantity (absolute) or the multiple of the median level quantity (relative)."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ThresholdKind):
            raise LocalProtocolError(f"kind must be a ThresholdKind, got {self.kind!r}")
        if type(self.value) is not Decimal:
            raise LocalProtocolError(
                f"value must be a Decimal (use LargeOrderThreshold.absolute/relative to "
                f"convert), got {self.value!r}"
            )
        check_number("value", self.value)

    @classmethod
    def absolute(cls, qty: Decimal | int | str) -> LargeOrderThreshold:
        """Large means ``level qty >= qty`` (base currency)."""
        return cls(ThresholdKind.ABSOLUTE, check_number("qty", qty))

    @classmethod
    def relative(cls, multiple: Decimal | int | str) -> LargeOrderThreshold:
        """Large means ``level qty >= multiple * median level qty`` of the tracked window."""
        return cls(ThresholdKind.RELATIVE, check_number("multiple", multiple))


class FlowEventKind(enum.Enum):
    """What happened to a large level (definitions in :mod:`kraken_proto.analytics.flow`)."""

    LARGE_ORDER_APPEARED = "large_order_appeared"
    """The price is large now and was not at the previous update."""
    LARGE_ORDER_DISAPPEARED = "large_order_disappeared"
    """The price was large at the previous update and is not now (``qty`` 0: it left the
    tracked window)."""
    LARGE_ORDER_INCREASED = "large_order_increased"
    """The price was and is large, and its quantity grew."""
    LARGE_ORDER_DECREASED = "large_order_decreased"
    """The price was and is large, and its quantity shrank."""


class FlowEvent(msgspec.Struct, frozen=True, gc=False):
    """One change of a large level, reported by :meth:`OrderFlowTracker.track_update`."""

    kind: FlowEventKind
    """What happened."""
    symbol: str
    """The book's symbol, e.g. ``"BTC/USD"``."""
    side: Literal["bid", "ask"]
    """The side of the book the level rests on: ``"bid"`` or ``"ask"``."""
    price: Decimal
    """The level's price."""
    qty: Decimal
    """The level's quantity after the update; 0 when it is no longer in the tracked window
    (only on ``LARGE_ORDER_DISAPPEARED``; level3: or holds nothing)."""
    previous_qty: Decimal
    """The level's quantity at the previous update; 0 when it was not in the tracked window
    then (only on ``LARGE_ORDER_APPEARED``; level3: or held nothing)."""
    threshold: Decimal | None
    """The threshold in force for this update (``qty >= threshold`` is large); ``None`` only
    for a relative threshold over an empty window."""
    at: float
    """The ``now`` passed to ``track_update``."""


class LargeLevel(msgspec.Struct, frozen=True, gc=False):
    """A level the tracker currently counts as large (see :meth:`OrderFlowTracker.large_levels`)."""

    side: Literal["bid", "ask"]
    """The side of the book the level rests on: ``"bid"`` or ``"ask"``."""
    price: Decimal
    """The level's price."""
    qty: Decimal
    """Its quantity at the last update."""


class _SideState:
    """What the tracker remembers of one side's window.

    ``toks`` is the window as last seen (``(price, qty)`` tokens, best first: wire bytes for
    an :class:`OrderBook`, Decimals otherwise), ``pairs`` the same as a set, ``win`` each
    price token's ``(price, qty)`` values, ``large`` the large levels by price.
    """

    __slots__ = ("large", "pairs", "toks", "win")

    def __init__(self) -> None:
        self.toks: list[Any] = []
        self.pairs: set[Any] = set()
        self.win: dict[Any, tuple[Decimal, Decimal]] = {}
        self.large: dict[Decimal, Decimal] = {}


class _SymbolState:
    __slots__ = ("asks", "bids", "rule", "sorted_qtys", "threshold")

    def __init__(self, rule: LargeOrderThreshold) -> None:
        self.rule = rule
        self.bids = _SideState()
        self.asks = _SideState()
        # Relative thresholds only: every window quantity of both sides, ascending.
        self.sorted_qtys: list[Decimal] = []
        self.threshold: Decimal | None = rule.value if rule.kind is ThresholdKind.ABSOLUTE else None


# price -> [quantity before, quantity now]; None = not in the window.
_Touched = dict[Decimal, list[Decimal | None]]


def _identity(value: Any) -> Any:
    return value


def _diff(side: _SideState, toks: list[Any], decode: Callable[[Any], Decimal]) -> _Touched | None:
    """Update ``side`` to the window ``toks``; return the prices whose quantity changed (or
    that entered or left the window), or ``None`` if the window is unchanged."""
    if toks == side.toks:
        return None
    old = side.pairs
    new = set(toks)
    win = side.win
    touched: _Touched = {}
    gone: dict[Any, Decimal] = {}  # price token -> price, of the pairs no longer there
    for token, _ in old - new:
        price, qty = win.pop(token)
        gone[token] = price
        touched[price] = [qty, None]
    for token, qty_token in new - old:
        qty = decode(qty_token)
        known = gone.get(token)
        if known is None:
            price = decode(token)
            # The same price under another text was removed just above, if at all.
            before = touched.get(price)
            touched[price] = [None if before is None else before[0], qty]
        else:
            price = known
            touched[price][1] = qty
        win[token] = (price, qty)
    side.toks = toks
    side.pairs = new
    return touched


def _median(values: list[Decimal]) -> Decimal | None:
    n = len(values)
    if not n:
        return None
    mid = n // 2
    if n % 2:
        return values[mid]
    return EXACT.multiply(EXACT.add(values[mid - 1], values[mid]), _HALF)


def _resort(ordered: list[Decimal], touched: _Touched) -> None:
    """Keep ``ordered`` (every window quantity, ascending) in step with ``touched``."""
    for before, after in touched.values():
        if before is not None:
            del ordered[bisect_left(ordered, before)]
        if after is not None:
            insort(ordered, after)


def _flips(side: _SideState, touched: _Touched | None, low: Decimal, high: Decimal) -> _Touched:
    """``touched`` plus the other prices of the window with a quantity in ``[low, high)``:
    those a threshold moving between ``low`` and ``high`` makes or unmakes large (every
    large price of the previous update is in the window or in ``touched``)."""
    full: _Touched = {} if touched is None else touched
    for price, qty in side.win.values():
        if low <= qty < high and price not in full:
            full[price] = [qty, qty]
    return full


class OrderFlowTracker:
    """Reports large levels appearing, disappearing, increasing and decreasing near the top
    of one or more books (definitions in :mod:`kraken_proto.analytics.flow`).

    ``large_order_threshold`` is a :class:`LargeOrderThreshold`, or a quantity (a
    ``Decimal``, an ``int`` or a numeric ``str``) meaning ``LargeOrderThreshold.absolute(qty)``;
    ``per_symbol`` maps a symbol to its own threshold, given either way (a BTC quantity
    means nothing for DOGE). ``track_depth`` (an int >= 1, default 25) is how many of the
    best levels of each side are compared; a book shows at most its ``view_depth``. State
    is kept per symbol, so one tracker may watch several books; :meth:`forget` drops a
    symbol's state.

    Call :meth:`track_update` after each update of a book (for example on each
    ``BookUpdate`` event, with ``proto.book(event.symbol)``). It reads the book, never a
    clock; ``now`` is only stamped on the events. Bad arguments raise
    :class:`~kraken_proto.LocalProtocolError`.
    """

    __slots__ = ("_books", "_callbacks", "_per_symbol", "_threshold", "_track_depth")

    def __init__(
        self,
        large_order_threshold: LargeOrderThreshold | Decimal | int | str,
        track_depth: int = 25,
        *,
        per_symbol: Mapping[str, LargeOrderThreshold | Decimal | int | str] | None = None,
    ) -> None:
        self._threshold = self._rule("large_order_threshold", large_order_threshold)
        self._track_depth = check_count("track_depth", track_depth)
        if per_symbol is None:
            per_symbol = {}
        elif not isinstance(per_symbol, Mapping):
            raise LocalProtocolError(
                f"per_symbol must be None or a mapping of symbols to thresholds, "
                f"got {shown(per_symbol)}"
            )
        self._per_symbol: dict[str, LargeOrderThreshold] = {}
        for symbol, rule in per_symbol.items():
            if not isinstance(symbol, str):
                raise LocalProtocolError(f"per_symbol keys must be symbols (str), got {symbol!r}")
            self._per_symbol[symbol] = self._rule(f"per_symbol[{symbol!r}]", rule)
        self._books: dict[str, _SymbolState] = {}
        self._callbacks: tuple[Callable[[FlowEvent], object], ...] = ()

    @staticmethod
    def _rule(name: str, value: object) -> LargeOrderThreshold:
        if isinstance(value, LargeOrderThreshold):
            return value
        qty = check_number(name, value, alternative="a LargeOrderThreshold")
        return LargeOrderThreshold(ThresholdKind.ABSOLUTE, qty)

    def __repr__(self) -> str:
        per_symbol = f" per_symbol={self._per_symbol!r}" if self._per_symbol else ""
        return (
            f"<OrderFlowTracker large_order_threshold={self._threshold!r} "
            f"track_depth={self._track_depth}{per_symbol} symbols={sorted(self._books)}>"
        )

    @property
    def large_order_threshold(self) -> LargeOrderThreshold:
        """The threshold of every symbol not in ``per_symbol``."""
        return self._threshold

    @property
    def track_depth(self) -> int:
        """How many of the best levels of each side are compared."""
        return self._track_depth

    def threshold_for(self, symbol: str) -> LargeOrderThreshold:
        """The threshold rule that applies to ``symbol``."""
        return self._per_symbol.get(symbol, self._threshold)

    def on_event(self, callback: Callable[[FlowEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of every later :meth:`track_update`.

        Callbacks run in the order registered, event by event, after the tracker's state
        was updated and before ``track_update`` returns; an exception propagates to the
        caller of ``track_update`` (the state stays updated; later callbacks and events of
        that call are skipped). Returns a function that unregisters this registration
        (calling it again does nothing).
        """
        if not callable(callback):
            raise LocalProtocolError(f"callback must be callable, got {callback!r}")
        self._callbacks = (*self._callbacks, callback)
        registered = True

        def remove() -> None:
            nonlocal registered
            if registered:
                registered = False
                callbacks = list(self._callbacks)
                callbacks.remove(callback)
                self._callbacks = tuple(callbacks)

        return remove

    def track_update(self, book: OrderBook | L3Book, now: float) -> tuple[FlowEvent, ...]:
        """Compare ``book``'s tracked window with the last one seen for its symbol; return
        the changes of large levels, bids then asks, each side best price first.

        ``book`` is an :class:`~kraken_proto.OrderBook` or a level3
        :class:`~kraken_proto.L3Book` (its levels' total quantities are compared).

        Raises :class:`~kraken_proto.BookNotLiveError` if the book is not live (the state of
        the symbol is then unchanged) and :class:`~kraken_proto.LocalProtocolError` for a
        ``book`` that is no book or a ``now`` that is no finite number.
        """
        now = check_time("now", now)
        n = self._track_depth
        decode: Callable[[Any], Decimal]
        # Both accessors raise BookNotLiveError for a book that is not live, before any
        # state is touched.
        if isinstance(book, OrderBook):
            # Kraken's (price, qty) tokens, without a BookLevel and two Decimals per level:
            # only the levels that changed are decoded below.
            bid_toks: list[Any]
            ask_toks: list[Any]
            bid_toks, ask_toks = book.top_tokens(n)
            decode = _decode_decimal
        elif isinstance(book, L3Book):
            bid_totals, ask_totals = book.top_totals(n)
            bid_toks = [(price, qty) for price, qty, _ in bid_totals]
            ask_toks = [(price, qty) for price, qty, _ in ask_totals]
            decode = _identity
        else:
            raise LocalProtocolError(
                f"book must be an OrderBook or an L3Book, got {type(book).__name__}"
            )
        symbol = book.symbol
        state = self._books.get(symbol)
        if state is None:
            state = self._books[symbol] = _SymbolState(self.threshold_for(symbol))
        bids = _diff(state.bids, bid_toks, decode)
        asks = _diff(state.asks, ask_toks, decode)
        if bids is None and asks is None:
            return ()
        threshold = state.threshold
        if state.rule.kind is ThresholdKind.RELATIVE:
            ordered = state.sorted_qtys
            for touched in (bids, asks):
                if touched is not None:
                    _resort(ordered, touched)
            median = _median(ordered)
            threshold = None if median is None else EXACT.multiply(state.rule.value, median)
            before = state.threshold
            if threshold != before:
                state.threshold = threshold
                # Levels whose quantity did not change flip only if it lies between the
                # two thresholds (from or to "none": every level, from 0 to infinity).
                low = _ZERO if before is None or threshold is None else min(before, threshold)
                high = _INFINITY if before is None or threshold is None else max(before, threshold)
                if bisect_left(ordered, low) != bisect_left(ordered, high):
                    bids = _flips(state.bids, bids, low, high)
                    asks = _flips(state.asks, asks, low, high)
        events: list[FlowEvent] = []
        if bids:
            _evaluate(events, symbol, _BID, state.bids.large, bids, threshold, now)
        if asks:
            _evaluate(events, symbol, _ASK, state.asks.large, asks, threshold, now)
        callbacks = self._callbacks
        if callbacks:
            for event in events:
                for callback in callbacks:
                    callback(event)
        return tuple(events)

    def large_levels(self, symbol: str) -> tuple[LargeLevel, ...]:
        """The levels of ``symbol`` counted as large at its last update: bids then asks,
        each best price first (empty for a symbol never tracked)."""
        state = self._books.get(symbol)
        if state is None:
            return ()
        return tuple(
            LargeLevel(name, price, side.large[price])
            for name, side, best_first in ((_BID, state.bids, True), (_ASK, state.asks, False))
            for price in sorted(side.large, reverse=best_first)
        )

    def forget(self, symbol: str) -> None:
        """Drop what the tracker remembers of ``symbol`` (nothing happens for an unknown one):
        its next update reports every large level as appeared."""
        self._books.pop(symbol, None)


def _evaluate(
    events: list[FlowEvent],
    symbol: str,
    side: Literal["bid", "ask"],
    large: dict[Decimal, Decimal],
    touched: _Touched,
    threshold: Decimal | None,
    now: float,
) -> None:
    """Append the events of the ``touched`` prices of one side and update ``large``."""
    for price in sorted(touched, reverse=side == _BID):
        before, after = touched[price]
        was = large.get(price)
        if after and threshold is not None and after >= threshold:  # None and 0 are not large
            if was is None:
                kind = FlowEventKind.LARGE_ORDER_APPEARED
                previous = _ZERO if before is None else before
            elif after != was:
                kind = (
                    FlowEventKind.LARGE_ORDER_INCREASED
                    if after > was
                    else FlowEventKind.LARGE_ORDER_DECREASED
                )
                previous = was
            else:
                continue
            large[price] = after
            events.append(FlowEvent(kind, symbol, side, price, after, previous, threshold, now))
        elif was is not None:
            del large[price]
            qty = _ZERO if after is None else after
            events.append(
                FlowEvent(
                    FlowEventKind.LARGE_ORDER_DISAPPEARED,
                    symbol,
                    side,
                    price,
                    qty,
                    was,
                    threshold,
                    now,
                )
            )
