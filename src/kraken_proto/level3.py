"""The level3 (L3) channel: its wire types and the order-by-order book of one symbol.

Kraken's ``level3`` channel (KRAKEN-V2.md section 5, authenticated, on its own host) sends
every resting order: a snapshot lists each side's orders in queue order, and each update
carries ``add``, ``modify`` (quantity changed in place, e.g. a partial fill) and ``delete``
events. Messages decode straight into :class:`Level3Frame` / :class:`L3Update` /
:class:`L3Order`; the numbers become exact ``Decimal`` values that keep the digits Kraken
sent (``0.00005100`` stays ``Decimal("0.00005100")``).

:class:`L3Book` maintains the book. Each side is a list of sort keys searched with
:mod:`bisect` (the price for asks, the negated price for bids, so the best level comes
first), a dict from key to price level, and each level an insertion-ordered dict from order
id to order: its iteration order is the queue. An index maps every order id to its side and
level. After every message each side is truncated to the subscribed depth; Kraken sends no
deletes for levels that fall out of range. As in :mod:`kraken_proto.book`, a side lists at
most ``depth`` + ``_SPARE`` levels during a message, however many it carries: a level worse
than all of them waits unlisted (in ``deep``) until the truncation, so that one message
costs time linear in its length.

The checksum (KRAKEN-V2.md section 6, "L3 checksum") covers the top 10 *price levels* per
side, asks ascending then bids descending; every order of those levels contributes
``T(limit_price) + T(order_qty)`` in queue order (see :mod:`kraken_proto.checksum`). Each
level caches its text until it changes. Like :class:`~kraken_proto.book.OrderBook`, the book
returns the checksum and leaves comparing it and driving the :class:`BookState` to the
caller.
"""

from __future__ import annotations

import contextlib
import heapq
import zlib
from bisect import bisect_left, insort
from collections.abc import Sequence
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact, InvalidOperation
from functools import reduce
from typing import Literal

import msgspec

from kraken_proto.book import _SPARE, BookBase, BookState
from kraken_proto.checksum import CHECKSUM_LEVELS, digits
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import L3Order, L3Update

__all__ = ["L3Book", "L3Level", "L3Order", "L3Update", "LevelTotal", "Level3Frame"]

_DEPTHS = (10, 100, 1000)
_MAX_MAGNITUDE = 64  # digits before or after the point of the most extreme number accepted
_ZERO = Decimal(0)
_EVENTS = ("add", "modify", "delete")
_LIVE = BookState.LIVE
# Sums of quantities: exact whatever the thread's context (numbers have at most 64 digits
# either side of the point; Inexact is trapped so that a rounding could never go unseen).
_exact_add = Context(
    prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, Inexact]
).add

LevelTotal = tuple[Decimal, Decimal, int]
"""A level of :meth:`L3Book.top_totals`: ``(price, total qty, order count)``."""


class Level3Frame(msgspec.Struct, frozen=True, tag_field="channel", tag="level3"):
    """A ``level3`` data frame: ``type`` is ``"snapshot"`` or ``"update"``."""

    type: str
    data: tuple[L3Update, ...]


class L3Level(msgspec.Struct, frozen=True):
    """One price level of an :class:`L3Book`: its orders in queue order (front first)."""

    price: Decimal
    orders: tuple[L3Order, ...]

    @property
    def qty(self) -> Decimal:
        """The total quantity of the level's orders."""
        return sum([order.order_qty for order in self.orders], _ZERO)


def _check_number(order: L3Order, name: str, value: Decimal, *, positive: bool) -> None:
    """Raise ``ValueError`` unless ``value`` is a usable price (``positive``) or quantity."""
    if not value.is_finite():
        problem = "is not a finite number"
    elif abs(value.adjusted()) > _MAX_MAGNITUDE:
        problem = "is out of any sensible range"
    elif value.is_signed():
        problem = "is negative"
    elif positive and not value:
        problem = "is zero"
    else:
        return
    raise ValueError(f"level3 order {order.order_id!r}: {name} {value} {problem}")


def _check_order(order: L3Order) -> None:
    _check_number(order, "limit_price", order.limit_price, positive=True)
    _check_number(order, "order_qty", order.order_qty, positive=False)


def _resting(order: L3Order) -> L3Order:
    """The order as the book holds it: without its event."""
    if order.event is None:
        return order
    return msgspec.structs.replace(order, event=None)


class _Level:
    """A price level: its orders by id, in queue order, and its cached checksum text and
    total. Whatever changes ``orders`` sets both to ``None``."""

    __slots__ = ("key", "orders", "price", "text", "total")

    def __init__(self, key: Decimal, price: Decimal) -> None:
        self.key = key
        self.price = price
        self.orders: dict[str, L3Order] = {}
        self.text: str | None = None  # T(price) + T(qty) of every order; None = stale
        self.total: LevelTotal | None = None  # (price, exact qty, order count); None = stale

    def view(self) -> L3Level:
        return L3Level(self.price, tuple(self.orders.values()))

    def summary(self) -> LevelTotal:
        """``total`` computed afresh (and kept until the orders change)."""
        orders = self.orders.values()
        qty = reduce(_exact_add, [order.order_qty for order in orders], _ZERO)
        self.total = total = (self.price, qty, len(orders))
        return total


class _Side:
    """One side of the book: sort keys ascending from the best level, and the levels.

    ``levels`` holds every level; during a message, those that did not fit in ``keys`` are
    in ``deep`` instead, and each of them is worse than every listed one.
    """

    __slots__ = ("count", "deep", "keys", "levels", "name", "negate")

    def __init__(self, name: str, *, negate: bool) -> None:
        self.name = name
        self.negate = negate
        self.keys: list[Decimal] = []  # the best level first
        self.deep: set[Decimal] = set()
        self.levels: dict[Decimal, _Level] = {}
        self.count = 0  # orders on the side

    def key(self, price: Decimal) -> Decimal:
        # copy_negate is exact; unary minus would round to the context's precision.
        return price.copy_negate() if self.negate else price

    def best(self, n: int | None) -> list[_Level]:
        levels = self.levels
        return [levels[key] for key in self.keys[:n]]

    def totals(self, n: int | None) -> list[LevelTotal]:
        levels = self.levels
        out = []
        for key in self.keys[:n]:
            level = levels[key]
            out.append(level.total or level.summary())  # the kept total, or a new one
        return out


class L3Book(BookBase):
    """The level3 book of one symbol, subscribed at ``depth`` (10, 100 or 1000).

    ``price_precision``/``qty_precision`` are the pair's decimals used by the checksum;
    ``None`` means each value's own digits as received. Queries answer only while the book
    is :attr:`BookState.LIVE` and raise :class:`~kraken_proto.errors.BookNotLiveError`
    otherwise; ``side`` arguments are ``"bid"`` or ``"ask"``.
    """

    __slots__ = ("_asks", "_bids", "_index", "_listed")

    def __init__(
        self,
        symbol: str,
        depth: int,
        *,
        price_precision: int | None = None,
        qty_precision: int | None = None,
    ) -> None:
        if isinstance(depth, bool) or depth not in _DEPTHS:
            raise LocalProtocolError(f"level3 depth must be one of {_DEPTHS}, got {depth!r}")
        super().__init__(symbol, depth, price_precision, qty_precision)
        self._listed = depth + _SPARE  # the most levels a side lists during a message
        self._bids = _Side("bid", negate=True)
        self._asks = _Side("ask", negate=False)
        self._index: dict[str, tuple[_Side, _Level]] = {}

    def set_precision(self, price_precision: int | None, qty_precision: int | None) -> None:
        """Change the checksum precisions (e.g. once the instrument channel told them)."""
        self._set_precisions(price_precision, qty_precision)
        for side in (self._asks, self._bids):
            for level in side.levels.values():
                level.text = None

    # -- applying messages --------------------------------------------------------------------

    def apply_snapshot(self, bids: Sequence[L3Order], asks: Sequence[L3Order]) -> int:
        """Replace the whole book with a snapshot, make it live and return its checksum.

        Each side's orders are queued in the order given (any ``event`` is ignored), then
        each side is truncated to ``depth`` price levels. The returned CRC32 is for the
        caller to compare with the checksum the snapshot carried. Allowed in any state.
        Raises ``ValueError`` (the book is then unchanged) for a number that is no usable
        price or quantity, or an order id listed twice.
        """
        seen: set[str] = set()
        for orders in (bids, asks):
            for order in orders:
                _check_order(order)
                if order.order_id in seen:
                    raise ValueError(
                        f"level3 snapshot of {self._symbol} lists order {order.order_id!r} twice"
                    )
                seen.add(order.order_id)
        # Every order is checked by now: the book changes only from here on.
        self._index = {}
        self._bids = _Side("bid", negate=True)
        self._asks = _Side("ask", negate=False)
        for side, orders in ((self._bids, bids), (self._asks, asks)):
            for order in orders:
                self._insert(side, _resting(order))
            self._truncate(side)
        self._state = _LIVE
        return self.checksum()

    def apply_update(self, bids: Sequence[L3Order], asks: Sequence[L3Order]) -> int:
        """Apply an update's events in order, truncate to ``depth``, return the checksum.

        ``add`` queues a new order at the back of its level; ``modify`` changes an order in
        place, keeping its queue position (a new price moves it to the back of that level);
        ``delete`` removes the order with that id (the price and quantity it carries are
        not needed). Raises :class:`~kraken_proto.errors.LocalProtocolError` unless the book
        is live, and ``ValueError`` for an unusable number, an unknown event, an ``add`` of
        an id the book holds, a ``modify``/``delete`` of an id it does not hold (or holds on
        the other side). The message is checked first: on ``ValueError`` the book is
        unchanged, though no longer in step with Kraken (resync it).
        """
        if self._state is not _LIVE:
            raise LocalProtocolError(
                f"level3 book {self._symbol} is {self._state.value}: "
                "apply a snapshot before updates"
            )
        self._check_update(bids, asks)
        index = self._index
        for side, orders in ((self._bids, bids), (self._asks, asks)):
            for order in orders:
                event = order.event
                if event == "add":
                    self._insert(side, _resting(order))
                    continue
                _, level = index[order.order_id]
                if event == "delete":
                    self._remove(side, level, order.order_id)
                elif order.limit_price == level.price:
                    level.orders[order.order_id] = _resting(order)
                    level.text = level.total = None
                else:  # a modify with a new price: the order moves to that level's back
                    self._remove(side, level, order.order_id)
                    self._insert(side, _resting(order))
            self._truncate(side)
        return self.checksum()

    def checksum(self) -> int:
        """The CRC32 of the current book (top 10 price levels per side), whatever the state."""
        text = self._side_text(self._asks) + self._side_text(self._bids)
        return zlib.crc32(text.encode("ascii"))

    def _check_update(self, bids: Sequence[L3Order], asks: Sequence[L3Order]) -> None:
        """Raise ``ValueError`` unless every event of the message can be applied in order."""
        index = self._index
        moved: dict[str, _Side | None] = {}  # where the message has put an id so far
        for side, orders in ((self._bids, bids), (self._asks, asks)):
            for order in orders:
                _check_order(order)
                order_id = order.order_id
                event = order.event
                if order_id in moved:
                    where = moved[order_id]
                else:
                    entry = index.get(order_id)
                    where = entry[0] if entry is not None else None
                problem = None
                if event == "add":
                    if where is not None:
                        problem = f"add of an order the book already holds ({where.name} side)"
                    moved[order_id] = side
                elif event in _EVENTS:
                    if where is None:
                        problem = f"{event} of an order the book does not hold"
                    elif where is not side:
                        problem = f"{event} of an order the book holds on the {where.name} side"
                    elif event == "delete":
                        moved[order_id] = None
                else:
                    problem = f"unknown event {event!r} (expected add, modify or delete)"
                if problem is not None:
                    raise ValueError(
                        f"level3 update of {self._symbol}, {side.name} order {order_id!r}: "
                        f"{problem}"
                    )

    def _insert(self, side: _Side, order: L3Order) -> None:
        """Queue ``order`` at the back of its price level (made if needed)."""
        price = order.limit_price
        key = side.key(price)
        level = side.levels.get(key)
        if level is None:
            side.levels[key] = level = _Level(key, price)
            self._list(side, key)
        level.orders[order.order_id] = order
        level.text = level.total = None
        self._index[order.order_id] = (side, level)
        side.count += 1

    def _remove(self, side: _Side, level: _Level, order_id: str) -> None:
        """Take an order off its level, and the level off the side if it is left empty."""
        del level.orders[order_id]
        del self._index[order_id]
        side.count -= 1
        if level.orders:
            level.text = level.total = None
            return
        del side.levels[level.key]
        keys = side.keys
        if keys and level.key <= keys[-1]:
            del keys[bisect_left(keys, level.key)]
        else:
            side.deep.remove(level.key)

    def _list(self, side: _Side, key: Decimal) -> None:
        """Add a new level's key to ``keys``, or to ``deep`` (see :meth:`_truncate`)."""
        keys = side.keys
        deep = side.deep
        if (deep or len(keys) >= self._listed) and (not keys or key > keys[-1]):
            deep.add(key)
            return
        insort(keys, key)
        if len(keys) > self._listed:
            deep.add(keys.pop())

    def _truncate(self, side: _Side) -> None:
        """Drop the levels beyond ``depth`` and their orders.

        Inserting into ``keys`` moves every worse level, so during a message a side lists
        at most ``_listed`` levels: a new level worse than all of them goes to ``deep``
        when they are that many or ``deep`` holds levels already, and a level that
        overfills ``keys`` moves its worst one there. So every deep level is worse than
        every listed one: a level is found in ``keys`` if its key is at most the last one,
        else it is deep, and ``keys`` with the best deep levels after it, as many as the
        depth has room for, are the best levels of the side, as one sorted list would have
        them. Nothing is dropped before this point, so any deep level may come back here.
        """
        keys = side.keys
        depth = self._depth
        deep = side.deep
        if not deep and len(keys) <= depth:
            return
        kept = heapq.nsmallest(depth - len(keys), deep) if len(keys) < depth else []
        keys.extend(kept)
        deep.difference_update(kept)
        dropped = [*keys[depth:], *deep]
        deep.clear()
        del keys[depth:]
        index = self._index
        for key in dropped:
            level = side.levels.pop(key)
            for order_id in level.orders:
                del index[order_id]
            side.count -= len(level.orders)

    def _side_text(self, side: _Side) -> str:
        """The checksum text of a side's top 10 levels, best first."""
        pp, qp = self._price_precision, self._qty_precision
        parts: list[str] = []
        for level in side.best(CHECKSUM_LEVELS):
            text = level.text
            if text is None:
                level.text = text = "".join(
                    [
                        digits(order.limit_price, pp) + digits(order.order_qty, qp)
                        for order in level.orders.values()
                    ]
                )
            parts.append(text)
        return "".join(parts)

    # -- queries ------------------------------------------------------------------------------

    def _side(self, side: str) -> _Side:
        if side == "bid":
            return self._bids
        if side == "ask":
            return self._asks
        raise LocalProtocolError(f"side must be 'bid' or 'ask', got {side!r}")

    def best_bid(self) -> L3Level | None:
        """The highest bid level, or ``None`` if there are no bids."""
        self._require_live()
        best = self._bids.best(1)
        return best[0].view() if best else None

    def best_ask(self) -> L3Level | None:
        """The lowest ask level, or ``None`` if there are no asks."""
        self._require_live()
        best = self._asks.best(1)
        return best[0].view() if best else None

    def spread(self) -> Decimal | None:
        """Best ask price minus best bid price, or ``None`` if a side is empty."""
        self._require_live()
        ask, bid = self._asks.best(1), self._bids.best(1)
        if not ask or not bid:
            return None
        return ask[0].price - bid[0].price

    def mid_price(self) -> Decimal | None:
        """The mean of the best bid and best ask prices, or ``None`` if a side is empty."""
        self._require_live()
        ask, bid = self._asks.best(1), self._bids.best(1)
        if not ask or not bid:
            return None
        return (ask[0].price + bid[0].price) / 2

    def _levels(self, side: _Side, n: int | None) -> tuple[L3Level, ...]:
        self._require_live()
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise LocalProtocolError(f"n must be None or an int >= 0, got {n!r}")
        return tuple(level.view() for level in side.best(n))

    def bids(self, n: int | None = None) -> tuple[L3Level, ...]:
        """The best ``n`` bid levels (all of them if ``n`` is None), best first."""
        return self._levels(self._bids, n)

    def top_totals(self, n: int | None = None) -> tuple[list[LevelTotal], list[LevelTotal]]:
        """The best ``n`` bid and ask levels as totals: ``(bids, asks)``, each best first.

        Each level is a :data:`LevelTotal` tuple ``(price, qty, order_count)``: its price,
        the exact sum of its orders' quantities (whatever the thread's decimal context) and
        how many orders rest there. The same levels as :meth:`bids` and :meth:`asks` (all
        of them if ``n`` is None), but without a view object per level: each level keeps
        its tuple until one of its orders changes, so this is the cheap read for code that
        only needs the totals (as :mod:`kraken_proto.analytics` does). The lists are new on
        every call. Raises :class:`~kraken_proto.errors.BookNotLiveError` unless the book
        is live, and :class:`~kraken_proto.errors.LocalProtocolError` unless ``n`` is None
        or an int >= 0.
        """
        self._require_live()
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise LocalProtocolError(f"n must be None or an int >= 0, got {n!r}")
        return self._bids.totals(n), self._asks.totals(n)

    def asks(self, n: int | None = None) -> tuple[L3Level, ...]:
        """The best ``n`` ask levels (all of them if ``n`` is None), best first."""
        return self._levels(self._asks, n)

    def order(self, order_id: str) -> L3Order | None:
        """The resting order with this id, or ``None`` if the book does not hold it."""
        self._require_live()
        entry = self._index.get(order_id)
        return entry[1].orders[order_id] if entry is not None else None

    def orders_at(
        self, side: Literal["bid", "ask"], price: Decimal | int | str
    ) -> tuple[L3Order, ...]:
        """The orders resting at ``price`` on ``side``, in queue order (empty if none)."""
        self._require_live()
        book_side = self._side(side)
        value: Decimal | None = None
        if isinstance(price, Decimal):
            value = price
        elif isinstance(price, int | str) and not isinstance(price, bool):
            with contextlib.suppress(InvalidOperation, ValueError):
                value = Decimal(price)
        if value is None or not value.is_finite():
            raise LocalProtocolError(
                f"price must be a finite Decimal, int or numeric str, got {price!r}"
            )
        level = book_side.levels.get(book_side.key(value))
        return tuple(level.orders.values()) if level is not None else ()

    def order_count(self, side: Literal["bid", "ask"]) -> int:
        """How many orders rest on ``side`` (within ``depth``)."""
        self._require_live()
        return self._side(side).count

    def volume(self, side: Literal["bid", "ask"]) -> Decimal:
        """The total quantity resting on ``side`` (within ``depth``)."""
        self._require_live()
        return sum(
            [
                order.order_qty
                for level in self._side(side).levels.values()
                for order in level.orders.values()
            ],
            _ZERO,
        )

    def __repr__(self) -> str:
        ask, bid = self._asks.best(1), self._bids.best(1)
        best_bid = bid[0].price if bid else None
        best_ask = ask[0].price if ask else None
        return (
            f"<L3Book {self._symbol} {self._state.value} bid={best_bid} ask={best_ask} "
            f"orders={self._bids.count}/{self._asks.count}>"
        )
