"""The trading methods of the fake exchange: parameter checks and results (KRAKEN-V2.md section 9).

:func:`execute` checks one request's ``params`` the way Kraken does (as far as the
documentation tells), calls the :class:`~kraken_proto.simulator.matching.MatchingEngine`
and returns the :class:`Reply` s to send, in order: one for most methods, one per cancelled
order for ``cancel_order``. The token has been checked by the caller.

Supported: ``limit`` and ``market`` orders, ``time_in_force`` ``gtc``/``ioc``/``gtd``,
``post_only``, ``cl_ord_id``/``order_userref``, ``validate``. Other order types and
options Kraken offers (triggers, conditional close, icebergs, margin, ``cash_order_qty``,
``effective_time``) get ``EGeneral:Invalid arguments``; fields Kraken does not know get
``Unsupported field: '<name>'``. Error texts: ``EGeneral:Invalid arguments``,
``EOrder:Insufficient funds``, ``EOrder:Invalid order``, ``EOrder:Order minimum not met``,
``EOrder:Cost minimum not met``, ``EOrder:Tick size check failed``,
``EOrder:Invalid price`` [DOC]; ``EQuery:Unknown asset pair`` (Kraken's REST text) and
``EOrder:Post only order`` (an amend that would take; invented) are not documented for
WebSocket.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from kraken_proto.simulator import frames
from kraken_proto.simulator.matching import REPLACED_REASON, MatchingEngine, Order

__all__ = [
    "COST_MINIMUM",
    "INSUFFICIENT_FUNDS",
    "INVALID_ARGUMENTS",
    "INVALID_ORDER",
    "INVALID_PRICE",
    "MARKET_HALTED",
    "ORDER_MINIMUM",
    "POST_ONLY_AMEND",
    "TICK_SIZE",
    "UNKNOWN_PAIR",
    "Reply",
    "SymbolRules",
    "execute",
]

INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
"""A missing, malformed or unsupported parameter."""
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
"""The account cannot pay for the order."""
INVALID_ORDER = "EOrder:Invalid order"
"""The order is unknown or already closed."""
ORDER_MINIMUM = "EOrder:Order minimum not met"
"""``order_qty`` below the pair's ``qty_min``."""
COST_MINIMUM = "EOrder:Cost minimum not met"
"""``order_qty x limit_price`` below the pair's ``cost_min``."""
TICK_SIZE = "EOrder:Tick size check failed"
"""A price that is not a multiple of the pair's tick."""
INVALID_PRICE = "EOrder:Invalid price"
"""A price of zero or below."""
MARKET_HALTED = "EService:Market in cancel_only mode"
"""A new order on a pair halted by ``FakeExchange.halt`` (Kraken's text for a pair in
``cancel_only`` status)."""
UNKNOWN_PAIR = "EQuery:Unknown asset pair"
"""An unknown ``symbol`` (Kraken's REST text)."""
POST_ONLY_AMEND = "EOrder:Post only order"
"""A ``post_only`` amend whose new price would take liquidity. (Invented.)"""

_UNSUPPORTED = "Unsupported field: '{}'"
_ORDER_FIELDS = frozenset(
    {
        "order_type",
        "side",
        "order_qty",
        "limit_price",
        "limit_price_type",
        "time_in_force",
        "expire_time",
        "deadline",
        "post_only",
        "reduce_only",
        "fee_preference",
        "stp_type",
        "cl_ord_id",
        "order_userref",
        "sender_sub_id",
        "no_mpp",
    }
)
# Kraken knows these but the simulator does not model them.
_NOT_MODELLED = frozenset(
    {
        "triggers",
        "conditional",
        "display_qty",
        "cash_order_qty",
        "effective_time",
        "margin",
        "limit_price_type",
    }
)
_ADD_FIELDS = _ORDER_FIELDS | {"symbol", "validate", "token"}
_BATCH_FIELDS = frozenset({"symbol", "orders", "deadline", "validate", "token"})
_AMEND_FIELDS = frozenset(
    {
        "order_id",
        "cl_ord_id",
        "order_qty",
        "limit_price",
        "post_only",
        "deadline",
        "symbol",
        "token",
        "display_qty",
        "limit_price_type",
        "trigger_price",
        "trigger_price_type",
    }
)
_EDIT_FIELDS = frozenset(
    {
        "order_id",
        "symbol",
        "order_qty",
        "limit_price",
        "post_only",
        "reduce_only",
        "fee_preference",
        "order_userref",
        "validate",
        "deadline",
        "token",
        "display_qty",
        "triggers",
        "cl_ord_id",
    }
)
_CANCEL_FIELDS = frozenset({"order_id", "cl_ord_id", "order_userref", "token"})
_TIME_IN_FORCE = {"gtc": "GTC", "ioc": "IOC", "gtd": "GTD"}


class Reply(msgspec.Struct, frozen=True):
    """One response to send: a ``result`` (object, or array for ``batch_add``) or an ``error``."""

    result: Any = None
    error: str | None = None


class SymbolRules(msgspec.Struct, frozen=True):
    """What an order on one pair must respect."""

    price_precision: int
    qty_precision: int
    tick: Decimal
    qty_min: Decimal
    cost_min: Decimal
    halted: bool = False
    """The pair is halted: new orders are refused (:data:`MARKET_HALTED`)."""


class _InvalidError(Exception):
    """A request check failed with ``error``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _decimal(value: Any) -> Decimal:
    """A JSON number (or numeric string) as a Decimal; :class:`_InvalidError` otherwise."""
    if isinstance(value, bool):
        raise _InvalidError(INVALID_ARGUMENTS)
    if isinstance(value, (int, Decimal)):
        out = Decimal(value)
    elif isinstance(value, str):
        try:
            out = Decimal(value)
        except InvalidOperation:
            raise _InvalidError(INVALID_ARGUMENTS) from None
    else:
        raise _InvalidError(INVALID_ARGUMENTS)
    if not out.is_finite():
        raise _InvalidError(INVALID_ARGUMENTS)
    return out


def _bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if type(value) is not bool:
        raise _InvalidError(INVALID_ARGUMENTS)
    return value


def _check_fields(params: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name in _NOT_MODELLED and name not in allowed:
            raise _InvalidError(INVALID_ARGUMENTS)
        if name not in allowed and name not in _NOT_MODELLED:
            raise _InvalidError(_UNSUPPORTED.format(name))
    for name in ("display_qty", "trigger_price", "trigger_price_type", "triggers"):
        if name in params:
            raise _InvalidError(INVALID_ARGUMENTS)  # known to Kraken, not simulated
    if params.get("limit_price_type", "static") != "static":
        raise _InvalidError(INVALID_ARGUMENTS)


def _wall_time(text: Any) -> float:
    """Seconds since the epoch of an RFC3339 time (``...Z``)."""
    if not isinstance(text, str):
        raise _InvalidError(INVALID_ARGUMENTS)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _InvalidError(INVALID_ARGUMENTS) from None
    if stamp.tzinfo is None:
        raise _InvalidError(INVALID_ARGUMENTS)
    return stamp.timestamp()


def _qty(value: Any, rules: SymbolRules) -> Decimal:
    qty = _decimal(value)
    padded = qty.quantize(Decimal(1).scaleb(-rules.qty_precision)) if qty > 0 else qty
    if qty <= 0 or qty != padded:
        raise _InvalidError(INVALID_ARGUMENTS)
    qty = padded
    if qty < rules.qty_min:
        raise _InvalidError(ORDER_MINIMUM)
    return qty


def _price(value: Any, rules: SymbolRules) -> Decimal:
    price = _decimal(value)
    if price <= 0:
        raise _InvalidError(INVALID_PRICE)
    if price % rules.tick != 0:
        raise _InvalidError(TICK_SIZE)
    return price.quantize(Decimal(1).scaleb(-rules.price_precision))


def _client_ids(params: Mapping[str, Any]) -> tuple[str | None, int | None]:
    cl_ord_id = params.get("cl_ord_id")
    userref = params.get("order_userref")
    if cl_ord_id is not None and userref is not None:
        raise _InvalidError(INVALID_ARGUMENTS)  # mutually exclusive
    if cl_ord_id is not None and not (isinstance(cl_ord_id, str) and 0 < len(cl_ord_id) <= 36):
        raise _InvalidError(INVALID_ARGUMENTS)
    if userref is not None and type(userref) is not int:
        raise _InvalidError(INVALID_ARGUMENTS)
    return cl_ord_id, userref


def _order(
    engine: MatchingEngine,
    rules: Mapping[str, SymbolRules],
    symbol: Any,
    params: Mapping[str, Any],
    t: float,
) -> Order:
    """A new (unplaced) order from add_order / batch_add parameters."""
    if not isinstance(symbol, str):
        raise _InvalidError(INVALID_ARGUMENTS)
    pair = rules.get(symbol)
    if pair is None:
        raise _InvalidError(UNKNOWN_PAIR)
    if pair.halted:
        raise _InvalidError(MARKET_HALTED)
    order_type = params.get("order_type")
    side = params.get("side")
    if order_type not in ("limit", "market") or side not in ("buy", "sell"):
        raise _InvalidError(INVALID_ARGUMENTS)
    if "order_qty" not in params:
        raise _InvalidError(INVALID_ARGUMENTS)
    qty = _qty(params["order_qty"], pair)
    limit_price: Decimal | None = None
    post_only = _bool(params, "post_only")
    _bool(params, "reduce_only")
    if order_type == "limit":
        if "limit_price" not in params:
            raise _InvalidError(INVALID_ARGUMENTS)
        limit_price = _price(params["limit_price"], pair)
        if qty * limit_price < pair.cost_min:
            raise _InvalidError(COST_MINIMUM)
    elif post_only:
        raise _InvalidError(INVALID_ARGUMENTS)  # a market order always takes
    tif_text = params.get("time_in_force", "gtc")
    tif = _TIME_IN_FORCE.get(tif_text) if isinstance(tif_text, str) else None
    if tif is None:
        raise _InvalidError(INVALID_ARGUMENTS)
    expire_at = None
    if tif == "GTD":
        expire_at = _wall_time(params.get("expire_time"))
        if expire_at <= t:
            raise _InvalidError(INVALID_ARGUMENTS)
    cl_ord_id, userref = _client_ids(params)
    return Order(
        "",
        symbol,
        side,
        order_type,
        qty,
        limit_price,
        time_in_force=tif,
        post_only=post_only,
        cl_ord_id=cl_ord_id,
        order_userref=userref,
        expire_at=expire_at,
    )


def _order_result(order: Order) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if order.cl_ord_id is not None:
        result["cl_ord_id"] = order.cl_ord_id
    result["order_id"] = order.order_id
    if order.order_userref is not None:
        result["order_userref"] = order.order_userref
    return result


def _funded(engine: MatchingEngine, order: Order) -> bool:
    return engine.can_afford(order.symbol, order.side, order.order_qty, order.limit_price)


def _add_order(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, _ADD_FIELDS)
    order = _order(engine, rules, params.get("symbol"), params, t)
    validate = _bool(params, "validate")
    if not _funded(engine, order):
        raise _InvalidError(INSUFFICIENT_FUNDS)
    if not validate:
        order.order_id = engine.new_id()
        engine.place(order, t)
    return [Reply(_order_result(order))]


def _batch_add(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, _BATCH_FIELDS)
    rows = params.get("orders")
    if not isinstance(rows, list) or not 2 <= len(rows) <= 15:
        raise _InvalidError(INVALID_ARGUMENTS)
    validate = _bool(params, "validate")
    orders: list[Order] = []
    for row in rows:  # any invalid order rejects the whole batch
        if not isinstance(row, dict) or "symbol" in row:
            raise _InvalidError(INVALID_ARGUMENTS)
        _check_fields(row, frozenset(_ORDER_FIELDS))
        orders.append(_order(engine, rules, params.get("symbol"), row, t))
    result: list[dict[str, Any]] = []
    for order in orders:  # a pre-match failure (funds) rejects that order alone
        if not _funded(engine, order):
            row_result = _order_result(order)
            del row_result["order_id"]
            result.append({"error": INSUFFICIENT_FUNDS, **row_result})
            continue
        if not validate:
            order.order_id = engine.new_id()
            engine.place(order, t)
        result.append(_order_result(order))
    return [Reply(result)]


def _one(engine: MatchingEngine, params: Mapping[str, Any]) -> Order:
    """The open order named by a scalar ``order_id`` or ``cl_ord_id``."""
    order_id = params.get("order_id")
    cl_ord_id = params.get("cl_ord_id")
    if (order_id is None) == (cl_ord_id is None):
        raise _InvalidError(INVALID_ARGUMENTS)
    if not isinstance(order_id if cl_ord_id is None else cl_ord_id, str):
        raise _InvalidError(INVALID_ARGUMENTS)
    found = engine.find(order_id=order_id, cl_ord_id=cl_ord_id)
    if not found:
        raise _InvalidError(INVALID_ORDER)
    return found[0]


def _amend_order(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, _AMEND_FIELDS)
    order = _one(engine, params)
    pair = rules[order.symbol]
    if "order_qty" not in params:
        raise _InvalidError(INVALID_ARGUMENTS)
    qty = _qty(params["order_qty"], pair)
    price = _price(params["limit_price"], pair) if "limit_price" in params else None
    if price is not None and order.order_type != "limit":
        raise _InvalidError(INVALID_ARGUMENTS)
    if _bool(params, "post_only") and price is not None:
        probe = Order("", order.symbol, order.side, "limit", qty, price)
        if engine.would_take(probe):
            raise _InvalidError(POST_ONLY_AMEND)
    new_price = order.limit_price if price is None else price
    if not engine.can_afford(order.symbol, order.side, qty - order.cum_qty, new_price, order):
        raise _InvalidError(INSUFFICIENT_FUNDS)
    amend_id = engine.amend(order, qty, price, t)
    result: dict[str, Any] = {"amend_id": amend_id}
    if "cl_ord_id" in params:
        result["cl_ord_id"] = order.cl_ord_id
    else:
        result["order_id"] = order.order_id
    return [Reply(result)]


def _edit_order(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, _EDIT_FIELDS)
    if "cl_ord_id" in params or not isinstance(params.get("order_id"), str):
        raise _InvalidError(INVALID_ARGUMENTS)  # edit_order takes Kraken's order id only
    found = engine.find(order_id=params["order_id"])
    if not found:
        raise _InvalidError(INVALID_ORDER)
    old = found[0]
    if params.get("symbol") != old.symbol:
        raise _InvalidError(INVALID_ARGUMENTS)  # required, and cannot change
    pair = rules[old.symbol]
    if pair.halted:
        raise _InvalidError(MARKET_HALTED)
    qty = _qty(params["order_qty"], pair) if "order_qty" in params else old.order_qty
    if qty <= old.cum_qty:
        raise _InvalidError(INVALID_ARGUMENTS)  # a new quantity below the filled one is rejected
    price = _price(params["limit_price"], pair) if "limit_price" in params else old.limit_price
    if price is not None and old.order_type != "limit":
        raise _InvalidError(INVALID_ARGUMENTS)
    post_only = _bool(params, "post_only") if "post_only" in params else old.post_only
    _bool(params, "reduce_only")
    validate = _bool(params, "validate")
    userref = params.get("order_userref", old.order_userref)
    if userref is not None and type(userref) is not int:
        raise _InvalidError(INVALID_ARGUMENTS)
    new = Order(
        "",
        old.symbol,
        old.side,
        old.order_type,
        qty - old.cum_qty,
        price,
        time_in_force=old.time_in_force,
        post_only=post_only,
        order_userref=userref,
        expire_at=old.expire_at,
    )
    if not engine.can_afford(new.symbol, new.side, new.order_qty, price, old):
        raise _InvalidError(INSUFFICIENT_FUNDS)
    if not validate:
        engine.cancel(old, t, REPLACED_REASON)
        new.order_id = engine.new_id()
        engine.place(new, t)
    return [Reply({"order_id": new.order_id, "original_order_id": old.order_id})]


def _id_list(params: Mapping[str, Any], name: str, kind: type) -> list[Any]:
    values = params.get(name, [])
    if not isinstance(values, list) or not all(type(v) is kind for v in values):
        raise _InvalidError(INVALID_ARGUMENTS)
    return values


def _cancel_order(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, _CANCEL_FIELDS)
    order_ids = _id_list(params, "order_id", str)
    cl_ord_ids = _id_list(params, "cl_ord_id", str)
    userrefs = _id_list(params, "order_userref", int)
    if not (order_ids or cl_ord_ids or userrefs):
        raise _InvalidError(INVALID_ARGUMENTS)
    replies: list[Reply] = []
    targets: list[tuple[str, Any, list[Order]]] = [
        *(("order_id", v, engine.find(order_id=v)) for v in order_ids),
        *(("cl_ord_id", v, engine.find(cl_ord_id=v)) for v in cl_ord_ids),
        *(("order_userref", v, engine.find(order_userref=v)) for v in userrefs),
    ]
    for name, value, orders in targets:
        live = [order for order in orders if order.is_open]
        if not live:
            replies.append(Reply(error=INVALID_ORDER))
        for order in live:
            engine.cancel(order, t)
            key = "cl_ord_id" if name == "cl_ord_id" else "order_id"
            replies.append(Reply({key: value if name == "cl_ord_id" else order.order_id}))
    return replies


def _cancel_all(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, frozenset({"token"}))
    return [Reply({"count": engine.cancel_all(t)})]


def _cancel_all_orders_after(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, frozenset({"timeout", "token"}))
    timeout = params.get("timeout")
    if type(timeout) is not int or not 0 <= timeout < 86400:
        raise _InvalidError(INVALID_ARGUMENTS)
    trigger = engine.arm_dead_man(timeout, t)
    return [
        Reply(
            {
                "currentTime": frames.rfc3339_s(t),
                "triggerTime": "0" if trigger is None else frames.rfc3339_s(trigger),
            }
        )
    ]


def _batch_cancel(
    engine: MatchingEngine, rules: Mapping[str, SymbolRules], params: dict[str, Any], t: float
) -> list[Reply]:
    _check_fields(params, frozenset({"orders", "cl_ord_id", "token"}))
    refs = _id_list(params, "orders", str)
    cl_ord_ids = _id_list(params, "cl_ord_id", str)
    if not 2 <= len(refs) + len(cl_ord_ids) <= 50:
        raise _InvalidError(INVALID_ARGUMENTS)
    targets: dict[str, Order] = {}
    for ref in refs:
        found = engine.find(order_id=ref)
        if not found and ref.lstrip("-").isdigit():
            found = engine.find(order_userref=int(ref))
        targets.update((order.order_id, order) for order in found)
    for cl_ord_id in cl_ord_ids:
        targets.update((order.order_id, order) for order in engine.find(cl_ord_id=cl_ord_id))
    for order in targets.values():
        engine.cancel(order, t)
    return [Reply({"count": len(targets)})]


_HANDLERS = {
    "add_order": _add_order,
    "amend_order": _amend_order,
    "edit_order": _edit_order,
    "cancel_order": _cancel_order,
    "cancel_all": _cancel_all,
    "cancel_all_orders_after": _cancel_all_orders_after,
    "batch_add": _batch_add,
    "batch_cancel": _batch_cancel,
}


def execute(
    engine: MatchingEngine,
    rules: Mapping[str, SymbolRules],
    method: str,
    params: Any,
    t: float,
) -> list[Reply]:
    """Run one trading request at wall-clock time ``t``; the replies to send, in order.

    ``method`` must be one of the eight trading methods. A failed check changes nothing
    and gives one error reply.
    """
    if not isinstance(params, dict):
        return [Reply(error=INVALID_ARGUMENTS)]
    try:
        return _HANDLERS[method](engine, rules, params, t)
    except _InvalidError as failure:
        return [Reply(error=failure.error)]
