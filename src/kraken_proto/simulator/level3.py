"""The level3 (order-by-order) book of one simulated pair (KRAKEN-V2.md sections 5 and 6).

:class:`Level3Book` mirrors a :class:`~kraken_proto.simulator.market.MarketModel`'s L2 book
as individual orders: each level is split into 1-3 orders with seeded Kraken-style ids, in
queue order. On every market step the level changes are applied to the orders: a level
that grows gets a new order at the back of its queue, a level that shrinks loses quantity
from the front (fills: whole orders deleted, the next one modified), a removed level loses
all its orders. :meth:`Level3Book.update` then gives the message Kraken would publish for
a depth: ``add``/``modify``/``delete`` events (a delete carries the order's price and
quantity); when a level in range is removed, every order of the level that enters the range
is sent as ``add``; nothing is sent for levels pushed out of range (the client truncates to
the depth, in price levels, after each message). The checksum covers the top 10 price
levels per side, every order in queue order, asks ascending then bids descending.
The user's own orders are not part of this book.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from decimal import Decimal
from typing import Any

from kraken_proto.simulator import frames, verify
from kraken_proto.simulator.market import Level, MarketModel, MarketStep
from kraken_proto.simulator.matching import kraken_id

__all__ = ["L3_DEPTHS", "L3Order", "Level3Book"]

L3_DEPTHS = (10, 100, 1000)
"""The level3 depths Kraken offers (in price levels)."""


class L3Order:
    """One order of the level3 book (mutable: a partial fill lowers ``qty``)."""

    __slots__ = ("order_id", "qty", "time")

    def __init__(self, order_id: str, qty: Decimal, time: float) -> None:
        self.order_id = order_id
        """The order's id."""
        self.qty = qty
        """Its remaining quantity."""
        self.time = time
        """Wall-clock time it was placed."""


class _Side:
    """One side: sort keys best first (price for asks, -price for bids) and each queue."""

    __slots__ = ("before", "before_keys", "keys", "queues", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[Decimal] = []
        self.queues: dict[Decimal, list[L3Order]] = {}
        # Per step: the queues as they were before their first change (None: no level).
        self.before: dict[Decimal, list[tuple[str, Decimal, float]] | None] = {}
        self.before_keys: list[Decimal] | None = None

    def price(self, key: Decimal) -> Decimal:
        return self.sign * key

    def top(self, count: int) -> list[tuple[Decimal, list[Decimal]]]:
        """The best ``count`` levels as ``(price, order quantities in queue order)``."""
        return [
            (self.price(key), [order.qty for order in self.queues[key]])
            for key in self.keys[:count]
        ]


class Level3Book:
    """An order-by-order view of ``market``, built from its book at wall time ``time``."""

    def __init__(self, market: MarketModel, rng: random.Random, time: float) -> None:
        self.market = market
        """The market mirrored."""
        self.symbol = market.symbol
        """The pair."""
        self.time = time
        """Wall-clock time of the latest change."""
        self._rng = rng
        self._bids = _Side(-1)
        self._asks = _Side(1)
        bids, asks = market.book()
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for level in levels:
                self._set(side, level, time)
            side.before.clear()
            side.before_keys = None

    # ----------------------------------------------------------------- changes

    def _split(self, qty: Decimal, time: float) -> list[L3Order]:
        precision = self.market.qty_precision
        units = int(qty.scaleb(precision))
        count = self._rng.randint(1, min(3, units))
        cuts = sorted(self._rng.sample(range(1, units), count - 1)) if count > 1 else []
        bounds = [0, *cuts, units]
        return [
            L3Order(
                kraken_id(self._rng, "O"),
                Decimal(bounds[i + 1] - bounds[i]).scaleb(-precision),
                time,
            )
            for i in range(count)
        ]

    def _set(self, side: _Side, level: Level, time: float) -> None:
        key = side.sign * level.price
        if side.before_keys is None:
            side.before_keys = list(side.keys)
        queue = side.queues.get(key)
        if key not in side.before:
            side.before[key] = (
                None if queue is None else [(o.order_id, o.qty, o.time) for o in queue]
            )
        if level.qty == 0:  # the market only removes levels it has
            del side.queues[key]
            del side.keys[bisect_left(side.keys, key)]
            return
        if queue is None:
            side.queues[key] = self._split(level.qty, time)
            side.keys.insert(bisect_left(side.keys, key), key)
            return
        change = level.qty - sum(order.qty for order in queue)
        if change > 0:
            queue.append(L3Order(kraken_id(self._rng, "O"), change, time))
            return
        taken = -change
        while taken > 0:  # fills take the front of the queue
            head = queue[0]
            if head.qty <= taken:
                taken -= head.qty
                del queue[0]
            else:
                head.qty -= taken
                taken = Decimal(0)

    def apply(self, step: MarketStep) -> None:
        """Apply one market step (every level change, in order)."""
        for side in (self._bids, self._asks):
            side.before.clear()
            side.before_keys = None
        for level in step.bids:
            self._set(self._bids, level, step.time)
        for level in step.asks:
            self._set(self._asks, level, step.time)
        self.time = step.time

    # ----------------------------------------------------------------- output

    def _entry(
        self, side: _Side, key: Decimal, order_id: str, qty: Decimal, time: float, event: str | None
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {} if event is None else {"event": event}
        entry["order_id"] = order_id
        entry["limit_price"] = frames.number(side.price(key))
        entry["order_qty"] = frames.number(qty)
        entry["timestamp"] = frames.rfc3339_ns(time)
        return entry

    def _adds(self, side: _Side, key: Decimal, event: str | None) -> list[dict[str, Any]]:
        return [self._entry(side, key, o.order_id, o.qty, o.time, event) for o in side.queues[key]]

    def levels(self, depth: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The snapshot entries (bids, asks) of the top ``depth`` levels, queue order."""
        return (
            [e for key in self._bids.keys[:depth] for e in self._adds(self._bids, key, None)],
            [e for key in self._asks.keys[:depth] for e in self._adds(self._asks, key, None)],
        )

    def _events(self, side: _Side, depth: int) -> list[dict[str, Any]]:
        if side.before_keys is None:
            return []
        old_keys = side.before_keys[:depth]
        old = set(old_keys)
        out: list[dict[str, Any]] = []
        for key in old_keys:
            before = side.before.get(key)
            if key not in side.queues and before is not None:
                out += [self._entry(side, key, i, q, t, "delete") for i, q, t in before]
        for key in side.keys[:depth]:
            if key not in old:
                out += self._adds(side, key, "add")
                continue
            if key not in side.before:
                continue
            before = side.before[key] or []
            now = {o.order_id: o for o in side.queues[key]}
            was = {i: q for i, q, _ in before}
            for order_id, qty, time in before:
                if order_id not in now:
                    out.append(self._entry(side, key, order_id, qty, time, "delete"))
            for order in side.queues[key]:
                if order.order_id not in was:
                    out.append(self._entry(side, key, order.order_id, order.qty, order.time, "add"))
                elif was[order.order_id] != order.qty:
                    out.append(
                        self._entry(side, key, order.order_id, order.qty, order.time, "modify")
                    )
        return out

    def update(self, depth: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The events (bids, asks) of the last step at ``depth``; ``None`` when none."""
        bids = self._events(self._bids, depth)
        asks = self._events(self._asks, depth)
        return (bids, asks) if bids or asks else None

    def checksum(self) -> int:
        """CRC32 over the top 10 price levels per side, every order in queue order.

        Computed by :func:`~kraken_proto.simulator.verify.level3_checksum`.
        """
        return verify.level3_checksum(
            self._asks.top(verify.CHECKSUM_LEVELS),
            self._bids.top(verify.CHECKSUM_LEVELS),
            self.market.price_precision,
            self.market.qty_precision,
        )

    def frame(self, kind: str, depth: int) -> str | None:
        """The snapshot (``kind="snapshot"``) or the last step's update at ``depth``."""
        if kind == "snapshot":
            bids, asks = self.levels(depth)
        else:
            events = self.update(depth)
            if events is None:
                return None
            bids, asks = events
        body = {
            "channel": "level3",
            "type": kind,
            "data": [
                {
                    "symbol": self.symbol,
                    "bids": bids,
                    "asks": asks,
                    "checksum": self.checksum(),
                    "timestamp": frames.rfc3339_ns(self.time),
                }
            ],
        }
        return frames.encode(body)
