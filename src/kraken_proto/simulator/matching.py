"""The fake exchange's matching engine: the user's orders against the simulated markets.

Orders trade against the levels of each :class:`~kraken_proto.simulator.market.MarketModel`
without changing the public market: what an order takes from a level is remembered in an
overlay (the level looks that much thinner to later orders) until the market itself next
changes that level. A limit order that crosses the book takes liquidity at once (taker
fee) and rests with what is left; a resting order fills, as maker at its own limit price,
on a later market step when the best opposite price reaches its limit (up to the quantity
of the levels that cross). Market orders walk the book; ``IOC`` orders cancel what is left;
``post_only`` orders that would take are cancelled with reason ``Post only order``.

Everything is in wall-clock seconds (``t``). The engine writes what happened to
:attr:`MatchingEngine.outbox` as ``(t, channel, entry)``, with ``channel`` ``executions``
(an execution report, a dict with keys in Kraken's order) or ``balances`` (a
:class:`~kraken_proto.simulator.account.LedgerEntry`); the exchange turns them into frames.

Fees are charged in the quote currency: :data:`MAKER_FEE` / :data:`TAKER_FEE` of the cost,
rounded half up to the quote currency's precision (4 decimals for USD, as in Kraken's
example: a cost of 132.9995 pays 0.3458). Numbers are written as Kraken's examples write
them: ``132.9995``, ``26599.9``, ``0.0`` (see
:func:`~kraken_proto.simulator.frames.float_number`). Funds are checked against what open
orders reserve (a buy reserves ``remaining x limit_price x (1 + taker fee)`` of quote, a
sell its remaining base).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kraken_proto.simulator import frames
from kraken_proto.simulator.account import Account
from kraken_proto.simulator.market import Level, MarketModel, MarketStep

__all__ = [
    "CANCEL_ALL_AFTER_REASON",
    "IOC_REASON",
    "MAKER_FEE",
    "POST_ONLY_REASON",
    "REPLACED_REASON",
    "TAKER_FEE",
    "USER_REASON",
    "MatchingEngine",
    "Order",
    "kraken_id",
]

MAKER_FEE = Decimal("0.0016")
"""The maker fee rate (0.16%)."""
TAKER_FEE = Decimal("0.0026")
"""The taker fee rate (0.26%)."""
POST_ONLY_REASON = "Post only order"
"""``reason`` of a post-only order cancelled because it would have taken liquidity. [3P]"""
CANCEL_ALL_AFTER_REASON = "CancelAllOrdersAfter Timeout"
"""``reason`` of the orders the dead man's switch cancels. [3P]"""
USER_REASON = "User requested"
"""``reason`` of a cancel or amend the user asked for. (Kraken's REST text.)"""
IOC_REASON = "Immediate or cancel"
"""``reason`` of the unfilled rest of an IOC or market order. (Invented.)"""
REPLACED_REASON = "Order replaced"
"""``reason`` of the order an ``edit_order`` replaced. (Invented.)"""

SNAP_TRADES = 50
"""How many recent fills the executions snapshot can carry (``snap_trades``)."""

_AVG_QUANTUM = Decimal("0.00000001")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ZERO = Decimal(0)


def kraken_id(rng: random.Random, prefix: str) -> str:
    """An id in Kraken's format, ``prefix`` + 5, 5 and 6 characters: ``OK4GJX-KSTLS-7DZZO5``."""
    chars = [rng.choice(_ID_CHARS) for _ in range(16)]
    return f"{prefix}{''.join(chars[:5])}-{''.join(chars[5:10])}-{''.join(chars[10:])}"


class Order:
    """One order of the user (mutable engine state; read it, do not change it)."""

    __slots__ = (
        "cl_ord_id",
        "created",
        "cum_cost",
        "cum_qty",
        "expire_at",
        "fees",
        "limit_price",
        "order_id",
        "order_qty",
        "order_type",
        "order_userref",
        "post_only",
        "side",
        "status",
        "symbol",
        "time_in_force",
    )

    def __init__(
        self,
        order_id: str,
        symbol: str,
        side: str,
        order_type: str,
        order_qty: Decimal,
        limit_price: Decimal | None,
        *,
        time_in_force: str = "GTC",
        post_only: bool = False,
        cl_ord_id: str | None = None,
        order_userref: int | None = None,
        expire_at: float | None = None,
        created: float = 0.0,
    ) -> None:
        self.order_id = order_id
        """Kraken's id of the order."""
        self.symbol = symbol
        """The pair."""
        self.side = side
        """``buy`` or ``sell``."""
        self.order_type = order_type
        """``limit`` or ``market``."""
        self.order_qty = order_qty
        """The ordered quantity (base asset)."""
        self.limit_price = limit_price
        """The limit price (``None`` for market orders)."""
        self.time_in_force = time_in_force
        """``GTC``, ``GTD`` or ``IOC`` (upper case, as in execution reports)."""
        self.post_only = post_only
        """Whether the order may only add liquidity."""
        self.cl_ord_id = cl_ord_id
        """The client's id, if given."""
        self.order_userref = order_userref
        """The client's integer reference, if given."""
        self.expire_at = expire_at
        """Wall-clock expiry of a GTD order."""
        self.created = created
        """Wall-clock time the order was accepted."""
        self.cum_qty = _ZERO
        """Quantity filled so far."""
        self.cum_cost = _ZERO
        """Quote value filled so far."""
        self.fees = _ZERO
        """Fees paid so far (quote currency)."""
        self.status = "pending_new"
        """``pending_new``, ``new``, ``partially_filled``, ``filled``, ``canceled``, ``expired``."""

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.order_qty - self.cum_qty

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill."""
        return self.status in ("pending_new", "new", "partially_filled")

    def ids(self) -> dict[str, Any]:
        """``order_id`` plus the client's id, for sparse reports."""
        out: dict[str, Any] = {"order_id": self.order_id}
        if self.cl_ord_id is not None:
            out["cl_ord_id"] = self.cl_ord_id
        if self.order_userref is not None:
            out["order_userref"] = self.order_userref
        return out

    def avg_price(self) -> Decimal:
        """The average fill price, rounded half up to 8 decimals (0 before the first fill)."""
        if not self.cum_qty:
            return _ZERO
        return (self.cum_cost / self.cum_qty).quantize(_AVG_QUANTUM, rounding=ROUND_HALF_UP)


def _num(value: Decimal) -> Any:
    return frames.float_number(value)


def _crosses(side: str, limit: Decimal | None, price: Decimal) -> bool:
    """Whether an order of ``side`` at ``limit`` trades with a level at ``price``."""
    if limit is None:
        return True
    return price <= limit if side == "buy" else price >= limit


class MatchingEngine:
    """Orders, fills, fees and balances of the simulated account; see the module docstring.

    ``markets`` are read, never changed. ``rng`` makes every id reproducible.
    """

    def __init__(
        self,
        markets: Mapping[str, MarketModel],
        account: Account,
        rng: random.Random,
        *,
        maker_fee: Decimal = MAKER_FEE,
        taker_fee: Decimal = TAKER_FEE,
    ) -> None:
        self.markets = markets
        """The markets orders trade against."""
        self.account = account
        """The balances."""
        self.maker_fee = maker_fee
        """Fee rate of resting fills."""
        self.taker_fee = taker_fee
        """Fee rate of fills that take liquidity."""
        self.orders: dict[str, Order] = {}
        """The open orders by id, oldest first."""
        self.outbox: list[tuple[float, str, Any]] = []
        """What happened since it was last emptied: ``(t, channel, entry)``."""
        self.trades: deque[dict[str, Any]] = deque(maxlen=SNAP_TRADES)
        """The recent trade reports (for ``snap_trades``)."""
        self.dead_man_at: float | None = None
        """Wall-clock time the dead man's switch fires (``None``: disarmed)."""
        self._rng = rng
        self._trade_id = rng.randrange(100_000_000, 900_000_000)
        self._consumed: dict[str, dict[tuple[str, Decimal], Decimal]] = {}

    # ----------------------------------------------------------------- ids and reports

    def new_id(self, prefix: str = "O") -> str:
        """A fresh Kraken-style id (``O`` orders, ``T`` trades and amends, ``L`` ledger)."""
        return kraken_id(self._rng, prefix)

    def _report(self, t: float, entry: dict[str, Any]) -> None:
        self.outbox.append((t, "executions", entry))

    def order_report(self, order: Order, exec_type: str, t: float) -> dict[str, Any]:
        """A full report of ``order`` (``pending_new`` and snapshot rows)."""
        entry: dict[str, Any] = order.ids()
        entry["symbol"] = order.symbol
        entry["order_qty"] = _num(order.order_qty)
        entry["cum_qty"] = _num(order.cum_qty)
        entry["cum_cost"] = _num(order.cum_cost)
        if order.cum_qty:
            entry["avg_price"] = _num(order.avg_price())
        entry["time_in_force"] = order.time_in_force
        entry["exec_type"] = exec_type
        entry["side"] = order.side
        entry["order_type"] = order.order_type
        if order.limit_price is not None:
            entry["limit_price_type"] = "static"
            entry["limit_price"] = _num(order.limit_price)
        entry["post_only"] = order.post_only
        entry["order_status"] = order.status
        entry["fee_usd_equiv"] = _num(order.fees)
        entry["fee_ccy_pref"] = "fciq"
        entry["timestamp"] = frames.rfc3339(t)
        return entry

    def _status(self, order: Order, exec_type: str, t: float, **extra: Any) -> None:
        entry: dict[str, Any] = {"timestamp": frames.rfc3339(t), "order_status": order.status}
        entry["exec_type"] = exec_type
        entry.update(order.ids())
        entry.update(extra)
        self._report(t, entry)

    def _close(self, order: Order, status: str, t: float, reason: str | None = None) -> None:
        order.status = status
        self.orders.pop(order.order_id, None)
        extra: dict[str, Any] = {"cum_qty": _num(order.cum_qty), "cum_cost": _num(order.cum_cost)}
        if order.cum_qty:
            extra["avg_price"] = _num(order.avg_price())
        if reason is not None:
            extra["reason"] = reason
        self._status(order, status, t, **extra)

    # ----------------------------------------------------------------- book view

    def _levels(self, order: Order) -> Iterator[tuple[Level, Decimal]]:
        """The opposite side's levels, best first, with what is left of each."""
        market = self.markets[order.symbol]
        book_side = "asks" if order.side == "buy" else "bids"
        consumed = self._consumed.get(order.symbol, {})
        seen = 0
        depth: int | None = 25
        while True:
            bids, asks = market.book(depth)
            levels = asks if book_side == "asks" else bids
            for level in levels[seen:]:
                left = level.qty - consumed.get((book_side, level.price), _ZERO)
                yield level, left
            if depth is None or len(levels) < depth:
                return
            seen = len(levels)
            depth = depth * 4 if depth < 100 else None

    def would_take(self, order: Order) -> bool:
        """Whether ``order`` would trade at once against the book."""
        for level, left in self._levels(order):
            if left > 0:
                return _crosses(order.side, order.limit_price, level.price)
        return False

    def estimate_cost(self, side: str, symbol: str, qty: Decimal) -> Decimal:
        """The quote value of ``qty`` taken from the book at once (market order estimate)."""
        probe = Order("", symbol, side, "market", qty, None)
        cost = _ZERO
        remaining = qty
        for level, left in self._levels(probe):
            take = min(left, remaining)
            if take > 0:
                cost += take * level.price
                remaining -= take
            if remaining == 0:
                break
        return cost

    # ----------------------------------------------------------------- funds

    def reserved(self, asset: str) -> Decimal:
        """What open orders hold of ``asset``."""
        total = _ZERO
        for order in self.orders.values():
            base, _, quote = order.symbol.partition("/")
            if order.side == "sell" and base == asset:
                total += order.remaining
            elif order.side == "buy" and quote == asset:
                assert order.limit_price is not None  # only limit orders rest
                total += order.remaining * order.limit_price * (1 + self.taker_fee)
        return total

    def available(self, asset: str) -> Decimal:
        """The balance of ``asset`` not held by open orders."""
        return self.account.balance(asset) - self.reserved(asset)

    def can_afford(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        limit_price: Decimal | None,
        exclude: Order | None = None,
    ) -> bool:
        """Whether the account can pay for an order (``exclude``: an order it replaces)."""
        base, _, quote = symbol.partition("/")
        if side == "sell":
            held = exclude.remaining if exclude is not None else _ZERO
            return qty <= self.available(base) + held
        if limit_price is None:
            need = self.estimate_cost(side, symbol, qty) * (1 + self.taker_fee)
        else:
            need = qty * limit_price * (1 + self.taker_fee)
        held = _ZERO
        if exclude is not None and exclude.limit_price is not None:
            held = exclude.remaining * exclude.limit_price * (1 + self.taker_fee)
        return need <= self.available(quote) + held

    # ----------------------------------------------------------------- fills

    def _fill(self, order: Order, price: Decimal, qty: Decimal, maker: bool, t: float) -> None:
        base, _, quote = order.symbol.partition("/")
        cost = price * qty
        rate = self.maker_fee if maker else self.taker_fee
        fee = self.account.round(quote, cost * rate)
        order.cum_qty += qty
        order.cum_cost += cost
        order.fees += fee
        order.status = "partially_filled"
        self._trade_id += 1
        exec_id = self.new_id("T")
        entry: dict[str, Any] = order.ids()
        entry["exec_id"] = exec_id
        entry["exec_type"] = "trade"
        entry["trade_id"] = self._trade_id
        entry["symbol"] = order.symbol
        entry["side"] = order.side
        entry["last_qty"] = _num(qty)
        entry["last_price"] = _num(price)
        entry["liquidity_ind"] = "m" if maker else "t"
        entry["cost"] = _num(cost)
        entry["order_type"] = order.order_type
        entry["timestamp"] = frames.rfc3339(t)
        entry["order_status"] = "partially_filled"
        entry["cum_qty"] = _num(order.cum_qty)
        entry["cum_cost"] = _num(order.cum_cost)
        entry["avg_price"] = _num(order.avg_price())
        entry["fee_usd_equiv"] = _num(fee)
        entry["fees"] = [{"asset": quote, "qty": _num(fee)}]
        self._report(t, entry)
        self.trades.append(entry)
        sign = 1 if order.side == "buy" else -1
        account = self.account
        for asset, amount, charged in ((base, sign * qty, _ZERO), (quote, -sign * cost, fee)):
            ledger = account.book(self.new_id("L"), exec_id, t, asset, amount, charged)
            self.outbox.append((t, "balances", ledger))

    def _take(self, order: Order, t: float, maker: bool = False) -> None:
        """Trade ``order`` against the book while it crosses.

        As taker at each level's price; as maker (a resting order the market reached) at
        the order's own limit price.
        """
        book_side = "asks" if order.side == "buy" else "bids"
        fills: list[tuple[Decimal, Decimal]] = []
        remaining = order.remaining
        for level, left in self._levels(order):
            if remaining == 0 or not _crosses(order.side, order.limit_price, level.price):
                break
            take = min(left, remaining)
            if take > 0:
                fills.append((level.price, take))
                remaining -= take
        consumed = self._consumed.setdefault(order.symbol, {})
        for price, qty in fills:
            key = (book_side, price)
            consumed[key] = consumed.get(key, _ZERO) + qty
            fill_price = order.limit_price if maker and order.limit_price is not None else price
            self._fill(order, fill_price, qty, maker, t)
        if order.remaining == 0:
            self._close(order, "filled", t)

    def _settle(self, order: Order, t: float) -> None:
        """After taking: close an order that cannot rest, else let it rest."""
        if not order.is_open:
            return
        if order.order_type == "market" or order.time_in_force == "IOC":
            self._close(order, "canceled", t, IOC_REASON)
        else:
            self.orders[order.order_id] = order

    # ----------------------------------------------------------------- requests

    def place(self, order: Order, t: float) -> None:
        """Accept a validated, funded order: report it, match it, let it rest."""
        order.created = t
        self._report(t, self.order_report(order, "pending_new", t))
        if order.post_only and self.would_take(order):
            self._close(order, "canceled", t, POST_ONLY_REASON)
            return
        order.status = "new"
        self._status(order, "new", t)
        self._take(order, t)
        self._settle(order, t)

    def cancel(self, order: Order, t: float, reason: str = USER_REASON) -> None:
        """Cancel an open order."""
        self._close(order, "canceled", t, reason)

    def cancel_all(self, t: float, reason: str = USER_REASON) -> int:
        """Cancel every open order; return how many."""
        orders = list(self.orders.values())
        for order in orders:
            self._close(order, "canceled", t, reason)
        return len(orders)

    def amend(self, order: Order, qty: Decimal, limit_price: Decimal | None, t: float) -> str:
        """Change an order in place (same id); return the ``amend_id``.

        A quantity at or below what is already filled cancels the rest; a new price that
        crosses the book takes liquidity at once.
        """
        amend_id = self.new_id("T")
        order.order_qty = qty
        if limit_price is not None:
            order.limit_price = limit_price
        extra: dict[str, Any] = {"amended": True, "reason": USER_REASON}
        extra["order_qty"] = _num(qty)
        assert order.limit_price is not None  # only limit orders rest
        extra["limit_price"] = _num(order.limit_price)
        self._status(order, "amended", t, **extra)
        if order.remaining <= 0:
            self._close(order, "canceled", t, USER_REASON)
        else:
            self._take(order, t)
        return amend_id

    def find(
        self,
        *,
        order_id: str | None = None,
        cl_ord_id: str | None = None,
        order_userref: int | None = None,
    ) -> list[Order]:
        """The open orders with this id, client id or (all of them) this reference."""
        if order_id is not None:
            order = self.orders.get(order_id)
            return [] if order is None else [order]
        if cl_ord_id is not None:
            return [o for o in self.orders.values() if o.cl_ord_id == cl_ord_id]
        return [o for o in self.orders.values() if o.order_userref == order_userref]

    def arm_dead_man(self, timeout: int, t: float) -> float | None:
        """Arm the dead man's switch ``timeout`` seconds from ``t`` (0 disarms)."""
        self.dead_man_at = None if timeout == 0 else t + timeout
        return self.dead_man_at

    # ----------------------------------------------------------------- time

    def next_timer(self) -> float | None:
        """Wall-clock time of the next dead man's switch or GTD expiry (``None``: none)."""
        times = [o.expire_at for o in self.orders.values() if o.expire_at is not None]
        if self.dead_man_at is not None:
            times.append(self.dead_man_at)
        return min(times) if times else None

    def run_timers(self, until: float) -> None:
        """Fire, in time order, the timers due at or before ``until``."""
        while True:
            due = self.next_timer()
            if due is None or due > until:
                return
            if self.dead_man_at == due:
                self.dead_man_at = None
                self.cancel_all(due, CANCEL_ALL_AFTER_REASON)
                continue
            for order in list(self.orders.values()):
                if order.expire_at == due:
                    self._close(order, "expired", due)

    def on_step(self, market: MarketModel, step: MarketStep) -> None:
        """Account for one market step: refresh the overlay, fill resting orders that cross."""
        symbol = market.symbol
        consumed = self._consumed.get(symbol)
        if consumed:
            for book_side, levels in (("bids", step.bids), ("asks", step.asks)):
                for level in levels:
                    consumed.pop((book_side, level.price), None)
        resting = [o for o in self.orders.values() if o.symbol == symbol]
        if not resting:
            return
        bid, ask = market.best()
        t = step.time
        for order in resting:
            best = ask if order.side == "buy" else bid
            if _crosses(order.side, order.limit_price, best.price):
                self._take(order, t, maker=True)
