"""Kraken's per-pair trading rate counter, modelled locally so orders can be paced.

Kraken keeps one counter per pair and account (shared by REST, WebSocket and FIX). Each
trading request adds to it, by a cost that for amends, edits and cancels depends on the
age of the order (seconds since it was placed or last amended); the counter decays
linearly and never goes below 0; a request that would take it over the tier's threshold
is refused with ``EOrder:Rate limit exceeded`` (KRAKEN-V2.md section 10). This module
keeps the same arithmetic so the protocol can hold a request back until it fits instead
of having it refused. Time is passed in as ``now`` (the caller's monotonic clock, float
seconds); a ``now`` earlier than one already seen for a pair counts as no time passed.

Cancels, amends and batch cancels usually name orders, not pairs: the counter learns each
order's pair and age from :meth:`TradingRateCounter.note_order`. An order whose pair is not
known cannot be charged (Kraken charges the right pair; we cannot tell which), so it costs
nothing here and never delays a request. An order whose pair is known but whose age is not
is charged as if it were brand new, the worst case.
"""

from __future__ import annotations

import math

import msgspec

from kraken_proto.config import RateTier
from kraken_proto.trading import (
    AddOrder,
    AmendOrder,
    BatchAdd,
    BatchCancel,
    CancelOrder,
    EditOrder,
    TradingRequest,
)

__all__ = ["MAX_TRACKED_ORDERS", "RateCounterState", "TradingRateCounter"]

MAX_TRACKED_ORDERS = 10_000
"""Orders whose pair and age are remembered; beyond this the oldest notes are forgotten."""

# (age limit in seconds, cost while younger), youngest first; older orders cost nothing more.
_AMEND_AGE = ((5.0, 3.0), (10.0, 2.0), (15.0, 1.0))
_EDIT_AGE = ((5.0, 6.0), (10.0, 5.0), (15.0, 4.0), (45.0, 2.0), (90.0, 1.0))
_CANCEL_AGE = ((5.0, 8.0), (10.0, 6.0), (15.0, 5.0), (45.0, 4.0), (90.0, 2.0), (300.0, 1.0))
_FIXED_AMEND = 1.0
_FIXED_EDIT = 1.0
_FIXED_ADD = 1.0


def _by_age(table: tuple[tuple[float, float], ...], age: float) -> float:
    for limit, cost in table:
        if age < limit:
            return cost
    return 0.0


class RateCounterState(msgspec.Struct, frozen=True):
    """The locally tracked rate counter of one pair at one moment.

    ``count`` is the counter's value, ``threshold`` the tier's limit (a request that would
    take ``count`` above it is refused by Kraken) and ``decay`` how much it falls per
    second.
    """

    symbol: str
    count: float
    threshold: int
    decay: float


class _Order:
    """What the counter knows of one order: its pair, ids and when its age started."""

    __slots__ = ("at", "cl_ord_id", "order_id", "order_userref", "symbol")

    def __init__(self, symbol: str, at: float) -> None:
        self.symbol = symbol
        self.at = at
        self.order_id: str | None = None
        self.cl_ord_id: str | None = None
        self.order_userref: int | None = None


class TradingRateCounter:
    """Kraken's per-pair trading rate counter, tracked locally for one account.

    Costs follow KRAKEN-V2.md section 10: ``add_order`` +1; ``amend_order`` +1 and +3/+2/+1
    for an order younger than 5/10/15 s; ``edit_order`` +1 and +6/+5/+4/+2/+1 below
    5/10/15/45/90 s; each cancelled order +8/+6/+5/+4/+2/+1 below 5/10/15/45/90/300 s;
    ``batch_add`` +n/2; ``cancel_all`` and ``cancel_all_orders_after`` nothing.

    Args:
        tier: the account's tier (threshold and decay per second).
    """

    __slots__ = (
        "_by_cl",
        "_by_id",
        "_by_ref",
        "_counts",
        "_decay",
        "_orders",
        "_threshold",
        "_tier",
    )

    def __init__(self, tier: RateTier) -> None:
        self._tier = tier
        self._threshold = float(tier.threshold)
        self._decay = float(tier.decay)
        self._counts: dict[str, tuple[float, float]] = {}  # symbol -> (count, as of time)
        self._orders: dict[_Order, None] = {}  # least recently noted first
        self._by_id: dict[str, _Order] = {}
        self._by_cl: dict[str, _Order] = {}
        self._by_ref: dict[int, dict[_Order, None]] = {}

    @property
    def tier(self) -> RateTier:
        """The account's tier."""
        return self._tier

    @property
    def tracked_orders(self) -> int:
        """How many orders' pairs and ages are remembered (at most ``MAX_TRACKED_ORDERS``)."""
        return len(self._orders)

    # ------------------------------------------------------------------ the counter

    def _level(self, symbol: str, now: float) -> float:
        entry = self._counts.get(symbol)
        if entry is None:
            return 0.0
        count, at = entry
        elapsed = now - at
        if not elapsed > 0.0:  # time stood still or went backwards
            return count
        return max(0.0, count - elapsed * self._decay)

    def charges(self, request: TradingRequest, now: float) -> dict[str, float]:
        """What ``request`` would add to each pair's counter at ``now`` (pairs charged
        nothing are left out; a batch cancel may charge several pairs)."""
        charges: dict[str, float] = {}
        if isinstance(request, AddOrder):
            charges[request.symbol] = _FIXED_ADD
        elif isinstance(request, BatchAdd):
            charges[request.symbol] = len(request.orders) / 2
        elif isinstance(request, AmendOrder):
            order = self._find(request.order_id, request.cl_ord_id)
            symbol = request.symbol if order is None else order.symbol
            if symbol is not None:
                charges[symbol] = _FIXED_AMEND + _by_age(_AMEND_AGE, _age(order, now))
        elif isinstance(request, EditOrder):
            order = self._find(request.order_id, None)
            charges[request.symbol] = _FIXED_EDIT + _by_age(_EDIT_AGE, _age(order, now))
        elif isinstance(request, CancelOrder | BatchCancel):
            for order in self._cancelled(request):
                cost = _by_age(_CANCEL_AGE, _age(order, now))
                if cost:
                    charges[order.symbol] = charges.get(order.symbol, 0.0) + cost
        # CancelAll and CancelAllOrdersAfter cost nothing.
        return charges

    def cost(self, request: TradingRequest, now: float) -> float:
        """What ``request`` would add to the counters at ``now``, summed over pairs."""
        return sum(self.charges(request, now).values())

    def wait_time(self, request: TradingRequest, now: float) -> float:
        """Seconds from ``now`` until ``request`` fits under the threshold of every pair it
        is charged to: ``0.0`` if it fits now, ``math.inf`` if its cost alone exceeds the
        threshold. Sending at ``now + wait_time(...)`` fits exactly (nothing else charged)."""
        wait = 0.0
        for symbol, cost in self.charges(request, now).items():
            wait = max(wait, self._wait(symbol, cost, now))
        return wait

    def _wait(self, symbol: str, cost: float, now: float) -> float:
        threshold = self._threshold
        if cost > threshold:
            return math.inf
        if self._level(symbol, now) + cost <= threshold:
            return 0.0
        # The counter is positive, so the symbol has an entry; it reaches
        # threshold - cost at at + (count + cost - threshold) / decay.
        count, at = self._counts[symbol]
        wait = max(0.0, at + (count + cost - threshold) / self._decay - now)
        # Rounding may leave the estimate a few ulps short: step until it truly fits.
        while self._level(symbol, now + wait) + cost > threshold:
            wait = max(math.nextafter(wait, math.inf), math.nextafter(now + wait, math.inf) - now)
        return wait

    def record(self, request: TradingRequest, now: float) -> None:
        """Charge ``request`` to its pairs' counters: it was sent (or committed to) at
        ``now``."""
        for symbol, cost in self.charges(request, now).items():
            level = self._level(symbol, now)
            at = self._counts[symbol][1] if symbol in self._counts else now
            self._counts[symbol] = (level + cost, max(at, now))

    def sync(self, symbol: str, count: float, now: float) -> None:
        """Adopt the value Kraken reported for ``symbol``'s counter at ``now`` (the
        ``executions`` channel with ``ratecounter: true``). A negative value counts as 0; a
        value that is not a finite number is ignored."""
        try:
            value = float(count)
        except (TypeError, ValueError):
            return
        if not math.isfinite(value):
            return
        self._counts[symbol] = (max(0.0, value), now)

    def state(self, symbol: str, now: float) -> RateCounterState:
        """``symbol``'s counter at ``now`` (0 for a pair never charged)."""
        return RateCounterState(symbol, self._level(symbol, now), self._tier.threshold, self._decay)

    def symbols(self) -> tuple[str, ...]:
        """The pairs that have a counter, sorted."""
        return tuple(sorted(self._counts))

    # ------------------------------------------------------------------ orders

    def note_order(
        self,
        symbol: str,
        now: float,
        *,
        order_id: str | None = None,
        cl_ord_id: str | None = None,
        order_userref: int | None = None,
    ) -> None:
        """An order on ``symbol`` was placed or amended at ``now``: its age restarts.

        The order is found by ``order_id`` or ``cl_ord_id`` (the ids given are added to what
        is known of it); with neither known a new order is remembered. An order known only
        by ``order_userref`` cannot be told from another with the same reference, so each
        such call remembers one more order. A call with no id does nothing. At most
        ``MAX_TRACKED_ORDERS`` orders are remembered, the least recently noted forgotten
        first.
        """
        if order_id is None and cl_ord_id is None and order_userref is None:
            return
        by_id = None if order_id is None else self._by_id.get(order_id)
        by_cl = None if cl_ord_id is None else self._by_cl.get(cl_ord_id)
        order = by_id or by_cl
        if by_id is not None and by_cl is not None and by_cl is not by_id:
            self._drop(by_cl)  # two notes turned out to be one order
        if order is None:
            order = _Order(symbol, now)
        else:
            del self._orders[order]
            order.symbol = symbol
            order.at = now
        self._orders[order] = None
        if order_id is not None and order.order_id != order_id:
            self._unindex_id(order)
            order.order_id = order_id
            self._by_id[order_id] = order
        if cl_ord_id is not None and order.cl_ord_id != cl_ord_id:
            self._unindex_cl(order)
            order.cl_ord_id = cl_ord_id
            self._by_cl[cl_ord_id] = order
        if order_userref is not None and order.order_userref != order_userref:
            self._unindex_ref(order)
            order.order_userref = order_userref
            self._by_ref.setdefault(order_userref, {})[order] = None
        while len(self._orders) > MAX_TRACKED_ORDERS:
            self._drop(next(iter(self._orders)))

    def forget_order(self, order_id: str | None = None, cl_ord_id: str | None = None) -> None:
        """The order was closed (filled, cancelled, expired, replaced by an edit): forget
        it. Unknown ids are ignored."""
        for ids in ((order_id, None), (None, cl_ord_id)):
            order = self._find(*ids)
            if order is not None:
                self._drop(order)

    def symbol_of(self, order_id: str | None = None, cl_ord_id: str | None = None) -> str | None:
        """The pair of a remembered order, or ``None``."""
        order = self._find(order_id, cl_ord_id)
        return None if order is None else order.symbol

    def _find(self, order_id: str | None, cl_ord_id: str | None) -> _Order | None:
        order = None if order_id is None else self._by_id.get(order_id)
        if order is None and cl_ord_id is not None:
            order = self._by_cl.get(cl_ord_id)
        return order

    def _cancelled(self, request: CancelOrder | BatchCancel) -> list[_Order]:
        """The remembered orders a cancel names, each once."""
        found: dict[_Order, None] = {}
        if isinstance(request, CancelOrder):
            order_ids: tuple[str, ...] = request.order_id
            userrefs: list[int] = list(request.order_userref)
        else:
            order_ids = ()
            userrefs = []
            for text in request.orders:
                if text in self._by_id:
                    found[self._by_id[text]] = None
                else:
                    userref = _as_int(text)
                    if userref is not None:
                        userrefs.append(userref)
        for order_id in order_ids:
            if order_id in self._by_id:
                found[self._by_id[order_id]] = None
        for cl_ord_id in request.cl_ord_id:
            if cl_ord_id in self._by_cl:
                found[self._by_cl[cl_ord_id]] = None
        for userref in userrefs:
            found.update(self._by_ref.get(userref, {}))
        return list(found)

    def _drop(self, order: _Order) -> None:
        del self._orders[order]
        self._unindex_id(order)
        self._unindex_cl(order)
        self._unindex_ref(order)

    def _unindex_id(self, order: _Order) -> None:
        if order.order_id is not None:
            del self._by_id[order.order_id]

    def _unindex_cl(self, order: _Order) -> None:
        if order.cl_ord_id is not None:
            del self._by_cl[order.cl_ord_id]

    def _unindex_ref(self, order: _Order) -> None:
        if order.order_userref is None:
            return
        orders = self._by_ref[order.order_userref]
        del orders[order]
        if not orders:
            del self._by_ref[order.order_userref]


def _age(order: _Order | None, now: float) -> float:
    """Seconds since the order was placed or amended; 0 (the costliest) when unknown."""
    if order is None:
        return 0.0
    return max(0.0, now - order.at)


def _as_int(text: str) -> int | None:
    """A userref written as a string (``"17"``), or ``None``."""
    try:
        return int(text)
    except ValueError:
        return None
