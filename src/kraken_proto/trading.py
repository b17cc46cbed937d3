"""Trading requests, their results, and the event that answers each request.

Every v2 trading method has a request class here: a frozen msgspec Struct that checks its
shape when it is built and raises :class:`~kraken_proto.errors.InvalidRequestError` (naming
the field, ``"orders[3].limit_price"`` inside a batch) for anything Kraken would refuse for
that reason, so a malformed order never leaves the process. ``params()`` gives the wire
``params`` object without the token (the protocol adds it); prices and quantities stay exact
``Decimal`` values, to be written as JSON numbers with
``msgspec.json.Encoder(decimal_format="number")``.

Prices and quantities are accepted as ``Decimal``, ``int`` or ``str`` and stored as
``Decimal``; a ``float`` is refused, because it is not the exact value the caller meant.
Timestamps (``expire_time``, ``effective_time``, ``deadline``) are accepted as aware
``datetime`` values, rendered in UTC with ``Z`` (``deadline`` to the millisecond, the others
to the second, fractions dropped), or as RFC3339 text sent unchanged.

Results (``AddOrderResult``, ...) are decoded from a response's ``result`` by
:func:`parse_result`; :class:`OrderResponse` is the one event the protocol emits per request.
See KRAKEN-V2.md section 9.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal, TypeAlias, TypeGuard, get_args

import msgspec
from msgspec.structs import force_setattr

from kraken_proto.errors import (
    InvalidRequestError,
    KrakenConnectionError,
    OrderError,
    UnknownOutcomeError,
)

__all__ = [
    "AddOrder",
    "AddOrderResult",
    "Amount",
    "AmendOrder",
    "AmendOrderResult",
    "BatchAdd",
    "BatchAddResult",
    "BatchAddRow",
    "BatchCancel",
    "BatchCancelResult",
    "BatchOrder",
    "CancelAll",
    "CancelAllOrdersAfter",
    "CancelAllOrdersAfterResult",
    "CancelAllResult",
    "CancelOrder",
    "CancelOrderResult",
    "Conditional",
    "ConditionalOrderType",
    "EditOrder",
    "EditOrderResult",
    "FeePreference",
    "OrderOutcome",
    "OrderResponse",
    "OrderSide",
    "OrderType",
    "PriceType",
    "StpType",
    "TRADING_METHODS",
    "Timestamp",
    "TradingRequest",
    "TradingResult",
    "TriggerReference",
    "Triggers",
    "new_cl_ord_id",
    "is_trading_request",
    "parse_result",
]

# --------------------------------------------------------------------------- vocabulary

OrderSide: TypeAlias = Literal["buy", "sell"]
"""The side of an order."""

OrderType: TypeAlias = Literal[
    "limit",
    "market",
    "iceberg",
    "stop-loss",
    "stop-loss-limit",
    "take-profit",
    "take-profit-limit",
    "trailing-stop",
    "trailing-stop-limit",
    "settle-position",
]
"""The execution model of an order (``add_order``'s ``order_type``)."""

ConditionalOrderType: TypeAlias = Literal[
    "limit",
    "stop-loss",
    "stop-loss-limit",
    "take-profit",
    "take-profit-limit",
    "trailing-stop",
    "trailing-stop-limit",
]
"""The order types a conditional (one-triggers-other) close order may have."""

PriceType: TypeAlias = Literal["static", "pct", "quote"]
"""How a price is meant: a market price, a percentage offset, or an offset in quote units."""

TriggerReference: TypeAlias = Literal["index", "last"]
"""The price a trigger watches (Kraken's default is ``"last"``)."""

FeePreference: TypeAlias = Literal["base", "quote"]
"""The currency fees are taken in."""

StpType: TypeAlias = Literal["cancel_newest", "cancel_oldest", "cancel_both"]
"""Self-trade prevention (Kraken's default is ``"cancel_newest"``)."""

Amount: TypeAlias = Decimal | int | str
"""An exact price or quantity as given by the caller; stored as ``Decimal``."""

Timestamp: TypeAlias = datetime | str
"""An aware ``datetime``, or RFC3339 text sent as it is."""

_ORDER_TYPES = frozenset(get_args(OrderType))
_CONDITIONAL_TYPES = frozenset(get_args(ConditionalOrderType))
_SIDES = frozenset(get_args(OrderSide))
_PRICE_TYPES = frozenset(get_args(PriceType))
_REFERENCES = frozenset(get_args(TriggerReference))
_FEE_PREFERENCES = frozenset(get_args(FeePreference))
_STP_TYPES = frozenset(get_args(StpType))
_TIMES_IN_FORCE = frozenset({"gtc", "gtd", "ioc"})

_TRIGGERED = frozenset(
    {
        "stop-loss",
        "stop-loss-limit",
        "take-profit",
        "take-profit-limit",
        "trailing-stop",
        "trailing-stop-limit",
    }
)
_TRAILING = frozenset({"trailing-stop", "trailing-stop-limit"})
# Order types that rest at (or trigger into) a limit price, and those that execute at market.
_NEEDS_LIMIT_PRICE = frozenset(
    {"limit", "iceberg", "stop-loss-limit", "take-profit-limit", "trailing-stop-limit"}
)
_AT_MARKET = frozenset({"market", "stop-loss", "take-profit", "trailing-stop"})

_SYMBOL_RE = re.compile(r"[^/\s]+/[^/\s]+")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_HEX32_RE = re.compile(r"[0-9a-fA-F]{32}")
_MAX_FREE_CL_ORD_ID = 18
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_DISPLAY_FRACTION = 15  # display_qty >= order_qty / 15
_BATCH_ADD_MIN, _BATCH_ADD_MAX = 2, 15
_BATCH_CANCEL_MIN, _BATCH_CANCEL_MAX = 2, 50
_MAX_TIMEOUT = 86_400  # cancel_all_orders_after: timeout < 86400
_MAX_MAGNITUDE = 30  # no price or quantity reaches 1E+31

# --------------------------------------------------------------------------- field checks


def _fail(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(field, message)


def _within(prefix: str, error: InvalidRequestError) -> InvalidRequestError:
    """The same error with its field placed under ``prefix`` (``"orders[3]."``)."""
    message = str(error)[len(error.field) + 2 :]
    return InvalidRequestError(f"{prefix}{error.field}", message)


def _amount(field: str, value: object, *, signed: bool = False) -> Decimal:
    """An exact, finite number as a ``Decimal``; > 0 unless ``signed`` (an offset)."""
    if isinstance(value, float):
        raise _fail(
            field,
            f"got the float {value!r}: pass a Decimal, int or str so the exact value is sent",
        )
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise _fail(field, f"must be a Decimal, int or str, got {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise _fail(field, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise _fail(field, f"must be finite, got {value!r}")
    if not signed and number <= 0:
        raise _fail(field, f"must be > 0, got {value!r}")
    if number.adjusted() > _MAX_MAGNITUDE:
        raise _fail(field, f"{value!r} is too large")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        number = Decimal(format(number, "f"))  # 1E+3 -> 1000, so it is written positionally
    return number


def _optional_amount(field: str, value: object, *, signed: bool = False) -> Decimal | None:
    return None if value is None else _amount(field, value, signed=signed)


def _price(field: str, value: object, price_type: str | None) -> Decimal | None:
    """A price: a market price (> 0) when static, a signed offset for ``pct``/``quote``."""
    signed = price_type is not None and price_type != "static"
    return _optional_amount(field, value, signed=signed)


def _choice(field: str, value: object, allowed: frozenset[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(field, f"must be one of {', '.join(sorted(allowed))}; got {value!r}")


def _optional_choice(field: str, value: object, allowed: frozenset[str]) -> None:
    if value is not None:
        _choice(field, value, allowed)


def _flag(field: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise _fail(field, f"must be True, False or None, got {type(value).__name__}")


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(field, f"must be a non-empty str, got {value!r}")
    return value


def _symbol(field: str, value: object) -> None:
    if not isinstance(value, str) or not _SYMBOL_RE.fullmatch(value):
        raise _fail(field, f"must be a v2 pair 'BASE/QUOTE' such as 'BTC/USD', got {value!r}")


def _cl_ord_id(field: str, value: object) -> None:
    text = _text(field, value)
    if _UUID_RE.fullmatch(text) or _HEX32_RE.fullmatch(text):
        return
    if len(text) <= _MAX_FREE_CL_ORD_ID and text.isascii() and text.isprintable():
        return
    raise _fail(
        field,
        f"{text!r} is not a UUID (with dashes), 32 hex characters, or up to 18 printable "
        "ASCII characters; new_cl_ord_id() makes a valid one",
    )


def _userref(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be an int, got {type(value).__name__}")
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise _fail(field, f"must fit a signed 32-bit integer, got {value}")


def _timestamp(field: str, value: object) -> None:
    """An aware ``datetime`` or RFC3339 text with a zone."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = msgspec.convert(value, datetime)
        except msgspec.ValidationError:
            raise _fail(field, f"{value!r} is not an RFC3339 timestamp") from None
    else:
        raise _fail(field, f"must be a datetime or RFC3339 str, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _fail(field, "must carry a time zone (use UTC, e.g. datetime.now(timezone.utc))")


def _render_time(value: Timestamp, *, millis: bool) -> str:
    """RFC3339 in UTC with ``Z``: to the millisecond or to the second (fractions dropped)."""
    if isinstance(value, str):
        return value
    moment = value.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def _items(field: str, value: object) -> tuple[Any, ...]:
    """A tuple (or list) as a tuple; anything else (a bare str, which would split) is
    refused."""
    if not isinstance(value, (tuple, list)):
        raise _fail(field, f"must be a tuple (or list), got {type(value).__name__} {value!r}")
    return tuple(value)


def _no_duplicates(field: str, values: tuple[Any, ...]) -> None:
    seen: set[Any] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _fail(f"{field}[{index}]", f"{value!r} is listed twice")
        seen.add(value)


def _put(params: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        params[key] = value


# --------------------------------------------------------------------------- order parts


class Triggers(msgspec.Struct, frozen=True, kw_only=True):
    """The trigger of a stop-loss, take-profit or trailing order (``add_order.triggers``).

    ``price`` is a market price when ``price_type`` is ``"static"`` (Kraken's default; it
    must be > 0) and a signed offset from the reference price for ``"pct"`` or ``"quote"``
    (``-2`` with ``"pct"``: 2% below). For trailing types it is the distance from the peak
    and must be > 0. ``reference`` defaults to ``"last"`` on Kraken's side.
    """

    price: Amount
    reference: TriggerReference | None = None
    price_type: PriceType | None = None

    def __post_init__(self) -> None:
        _optional_choice("triggers.reference", self.reference, _REFERENCES)
        _optional_choice("triggers.price_type", self.price_type, _PRICE_TYPES)
        force_setattr(self, "price", _price("triggers.price", self.price, self.price_type))

    def params(self) -> dict[str, Any]:
        """The wire ``triggers`` object."""
        params: dict[str, Any] = {}
        _put(params, "reference", self.reference)
        params["price"] = self.price
        _put(params, "price_type", self.price_type)
        return params


class Conditional(msgspec.Struct, frozen=True, kw_only=True):
    """A one-triggers-other close order attached to an order (``add_order.conditional``).

    One close order of the same size and the opposite side is placed per fill of the
    primary order. ``limit_price`` is required for the limit types (``limit`` and the
    ``-limit`` types) and refused for the others; ``trigger_price`` is required for the
    stop-loss, take-profit and trailing types and refused for ``limit``.
    """

    order_type: ConditionalOrderType
    limit_price: Amount | None = None
    limit_price_type: PriceType | None = None
    trigger_price: Amount | None = None
    trigger_price_type: PriceType | None = None

    def __post_init__(self) -> None:
        _choice("conditional.order_type", self.order_type, _CONDITIONAL_TYPES)
        _optional_choice("conditional.limit_price_type", self.limit_price_type, _PRICE_TYPES)
        _optional_choice("conditional.trigger_price_type", self.trigger_price_type, _PRICE_TYPES)
        order_type = self.order_type
        if order_type in _NEEDS_LIMIT_PRICE and self.limit_price is None:
            raise _fail("conditional.limit_price", f"is required for a {order_type} order")
        if order_type in _AT_MARKET and self.limit_price is not None:
            raise _fail(
                "conditional.limit_price", f"a {order_type} order executes at market: omit it"
            )
        if order_type in _TRIGGERED and self.trigger_price is None:
            raise _fail("conditional.trigger_price", f"is required for a {order_type} order")
        if order_type not in _TRIGGERED and self.trigger_price is not None:
            raise _fail("conditional.trigger_price", f"a {order_type} order has no trigger")
        if self.limit_price is None and self.limit_price_type is not None:
            raise _fail("conditional.limit_price_type", "is only meaningful with limit_price")
        if self.trigger_price is None and self.trigger_price_type is not None:
            raise _fail("conditional.trigger_price_type", "is only meaningful with trigger_price")
        limit = _price("conditional.limit_price", self.limit_price, self.limit_price_type)
        trigger = _price("conditional.trigger_price", self.trigger_price, self.trigger_price_type)
        if order_type in _TRAILING and trigger is not None and trigger <= 0:
            raise _fail("conditional.trigger_price", "a trailing distance must be > 0")
        force_setattr(self, "limit_price", limit)
        force_setattr(self, "trigger_price", trigger)

    def params(self) -> dict[str, Any]:
        """The wire ``conditional`` object."""
        params: dict[str, Any] = {"order_type": self.order_type}
        _put(params, "limit_price", self.limit_price)
        _put(params, "limit_price_type", self.limit_price_type)
        _put(params, "trigger_price", self.trigger_price)
        _put(params, "trigger_price_type", self.trigger_price_type)
        return params


def _nested(field: str, value: object, cls: type[Triggers] | type[Conditional]) -> Any:
    """A ``Triggers``/``Conditional`` (or a mapping of its fields) or ``None``."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        try:
            return cls(**value)
        except TypeError as exc:  # unknown or missing keys
            raise _fail(field, str(exc)) from None
    raise _fail(field, f"must be a {cls.__name__}, got {type(value).__name__}")


class _OneResponse:
    """Kraken answers the request once (all methods but ``cancel_order``)."""

    __slots__ = ()

    @property
    def expected_responses(self) -> int | None:
        """How many responses Kraken sends for this request: one."""
        return 1


class _NoPair:
    """A request that names orders or the account, not a pair."""

    __slots__ = ()

    @property
    def symbol(self) -> str | None:
        """``None``: the rate counter maps any order ids to their pairs itself."""
        return None


class _Order(msgspec.Struct, frozen=True, kw_only=True):
    """The fields an order has both alone (``add_order``) and inside ``batch_add``."""

    order_type: OrderType
    side: OrderSide
    order_qty: Amount | None = None
    limit_price: Amount | None = None
    limit_price_type: PriceType | None = None
    triggers: Triggers | None = None
    time_in_force: str | None = None
    margin: bool | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    effective_time: Timestamp | None = None
    expire_time: Timestamp | None = None
    cl_ord_id: str | None = None
    order_userref: int | None = None
    display_qty: Amount | None = None
    fee_preference: FeePreference | None = None
    stp_type: StpType | None = None
    cash_order_qty: Amount | None = None
    conditional: Conditional | None = None
    sender_sub_id: str | None = None

    def __post_init__(self) -> None:
        self._check_order()

    def _check_order(self) -> None:
        _choice("order_type", self.order_type, _ORDER_TYPES)
        _choice("side", self.side, _SIDES)
        order_type = self.order_type
        for name in ("margin", "post_only", "reduce_only"):
            _flag(name, getattr(self, name))

        qty = _optional_amount("order_qty", self.order_qty)
        cash = _optional_amount("cash_order_qty", self.cash_order_qty)
        if cash is not None:
            if order_type != "market" or self.side != "buy":
                raise _fail("cash_order_qty", "is only for market buy orders")
            if self.margin:
                raise _fail("cash_order_qty", "is not available for margin orders")
            if qty is not None:
                raise _fail("order_qty", "give order_qty or cash_order_qty, not both")
        elif qty is None:
            raise _fail("order_qty", "is required (or cash_order_qty for a market buy)")

        _optional_choice("limit_price_type", self.limit_price_type, _PRICE_TYPES)
        if order_type in _NEEDS_LIMIT_PRICE and self.limit_price is None:
            raise _fail("limit_price", f"is required for a {order_type} order")
        if order_type in _AT_MARKET and self.limit_price is not None:
            raise _fail("limit_price", f"a {order_type} order executes at market: omit it")
        if self.limit_price is None and self.limit_price_type is not None:
            raise _fail("limit_price_type", "is only meaningful with limit_price")
        limit = _price("limit_price", self.limit_price, self.limit_price_type)

        triggers = _nested("triggers", self.triggers, Triggers)
        if order_type in _TRIGGERED and triggers is None:
            raise _fail("triggers", f"are required for a {order_type} order")
        if order_type not in _TRIGGERED and triggers is not None:
            raise _fail("triggers", f"a {order_type} order has no trigger: omit them")
        if order_type in _TRAILING and triggers is not None and Decimal(triggers.price) <= 0:
            raise _fail("triggers.price", "a trailing distance must be > 0")

        tif = self.time_in_force
        if tif is not None:
            if not isinstance(tif, str) or tif.lower() not in _TIMES_IN_FORCE:
                raise _fail("time_in_force", f"must be one of gtc, gtd, ioc; got {tif!r}")
            tif = tif.lower()
        if tif == "gtd" and self.expire_time is None:
            raise _fail("expire_time", "is required when time_in_force is gtd")
        if tif != "gtd" and self.expire_time is not None:
            raise _fail("expire_time", "only applies when time_in_force is gtd")
        for name in ("effective_time", "expire_time"):
            value = getattr(self, name)
            if value is not None:
                _timestamp(name, value)

        if self.post_only:
            if tif == "ioc":
                raise _fail("post_only", "cannot be combined with time_in_force ioc")
            if order_type in _AT_MARKET:
                raise _fail("post_only", f"a {order_type} order cannot be post-only")

        if self.cl_ord_id is not None:
            if self.order_userref is not None:
                raise _fail("cl_ord_id", "cl_ord_id and order_userref are mutually exclusive")
            _cl_ord_id("cl_ord_id", self.cl_ord_id)
        if self.order_userref is not None:
            _userref("order_userref", self.order_userref)

        display = _optional_amount("display_qty", self.display_qty)
        if order_type == "iceberg":
            if display is None:
                raise _fail("display_qty", "is required for an iceberg order")
            _check_display(display, qty)
        elif display is not None:
            raise _fail("display_qty", "is only for iceberg orders")

        _optional_choice("fee_preference", self.fee_preference, _FEE_PREFERENCES)
        _optional_choice("stp_type", self.stp_type, _STP_TYPES)
        conditional = _nested("conditional", self.conditional, Conditional)
        if self.sender_sub_id is not None:
            _text("sender_sub_id", self.sender_sub_id)

        for name, value in (
            ("order_qty", qty),
            ("cash_order_qty", cash),
            ("limit_price", limit),
            ("triggers", triggers),
            ("time_in_force", tif),
            ("display_qty", display),
            ("conditional", conditional),
        ):
            force_setattr(self, name, value)

    def _order_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"order_type": self.order_type, "side": self.side}
        _put(params, "order_qty", self.order_qty)
        _put(params, "limit_price", self.limit_price)
        _put(params, "limit_price_type", self.limit_price_type)
        if self.triggers is not None:
            params["triggers"] = self.triggers.params()
        _put(params, "time_in_force", self.time_in_force)
        _put(params, "margin", self.margin)
        _put(params, "post_only", self.post_only)
        _put(params, "reduce_only", self.reduce_only)
        if self.effective_time is not None:
            params["effective_time"] = _render_time(self.effective_time, millis=False)
        if self.expire_time is not None:
            params["expire_time"] = _render_time(self.expire_time, millis=False)
        _put(params, "cl_ord_id", self.cl_ord_id)
        _put(params, "order_userref", self.order_userref)
        _put(params, "display_qty", self.display_qty)
        _put(params, "fee_preference", self.fee_preference)
        _put(params, "stp_type", self.stp_type)
        _put(params, "cash_order_qty", self.cash_order_qty)
        if self.conditional is not None:
            params["conditional"] = self.conditional.params()
        _put(params, "sender_sub_id", self.sender_sub_id)
        return params


def _check_display(display: Decimal, qty: Decimal | None) -> None:
    """``display_qty`` against ``order_qty``: at least 1/15 of it, at most all of it."""
    if qty is None:
        return
    if display * _DISPLAY_FRACTION < qty:
        raise _fail("display_qty", f"must be at least 1/15 of order_qty ({qty}), got {display}")
    if display > qty:
        raise _fail("display_qty", f"cannot exceed order_qty ({qty}), got {display}")


# --------------------------------------------------------------------------- requests


class AddOrder(_Order, _OneResponse, frozen=True, kw_only=True):
    """``add_order``: place one order. Fields follow Kraken's names (KRAKEN-V2.md section 9).

    Required: ``order_type``, ``side``, ``symbol`` and ``order_qty`` (or ``cash_order_qty``
    for a market buy, in quote currency). ``limit_price`` is required for ``limit``,
    ``iceberg`` and the ``-limit`` types and refused for market-executed types;
    ``triggers`` is required exactly for the stop-loss, take-profit and trailing types.
    ``time_in_force`` is ``gtc``/``gtd``/``ioc`` (any case; sent lower case); ``gtd``
    needs ``expire_time``. ``cl_ord_id`` (see :func:`new_cl_ord_id`) and ``order_userref``
    are mutually exclusive. ``display_qty`` is for iceberg orders, between 1/15 of
    ``order_qty`` and all of it. ``validate=True`` asks Kraken to check without placing.
    ``deadline`` (500 ms to 60 s ahead) is sent to the millisecond.
    """

    method: ClassVar[str] = "add_order"

    symbol: str
    deadline: Timestamp | None = None
    validate: bool | None = None

    def __post_init__(self) -> None:
        _symbol("symbol", self.symbol)
        self._check_order()
        _flag("validate", self.validate)
        if self.deadline is not None:
            _timestamp("deadline", self.deadline)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token."""
        params = self._order_params()
        params["symbol"] = self.symbol
        if self.deadline is not None:
            params["deadline"] = _render_time(self.deadline, millis=True)
        _put(params, "validate", self.validate)
        return params


class BatchOrder(_Order, frozen=True, kw_only=True):
    """One order of a :class:`BatchAdd`: :class:`AddOrder`'s fields without ``symbol``
    (the batch's) and without ``deadline``/``validate`` (set on the batch).

    Checked exactly as :class:`AddOrder`. Errors raised while building it alone name the
    field (``"limit_price"``); orders given to :class:`BatchAdd` as mappings are named by
    their place (``"orders[3].limit_price"``).
    """

    def params(self) -> dict[str, Any]:
        """This order's object in the batch's ``orders`` array."""
        return self._order_params()


class AmendOrder(msgspec.Struct, _OneResponse, frozen=True, kw_only=True):
    """``amend_order``: change an order in place, keeping its ids and where possible its
    queue priority.

    Exactly one of ``order_id`` and ``cl_ord_id``; ``order_qty`` is required (a new
    quantity below the filled quantity cancels the rest). ``trigger_price`` and
    ``trigger_price_type`` are flat keys here, not a ``triggers`` object.
    ``limit_price_type`` is only meaningful for trailing-stop-limit orders. ``symbol`` is
    needed for non-crypto pairs; it also tells the rate counter the pair.
    """

    method: ClassVar[str] = "amend_order"

    order_qty: Amount
    order_id: str | None = None
    cl_ord_id: str | None = None
    display_qty: Amount | None = None
    limit_price: Amount | None = None
    limit_price_type: PriceType | None = None
    post_only: bool | None = None
    trigger_price: Amount | None = None
    trigger_price_type: PriceType | None = None
    deadline: Timestamp | None = None
    symbol: str | None = None

    def __post_init__(self) -> None:
        if (self.order_id is None) == (self.cl_ord_id is None):
            raise _fail("order_id", "give exactly one of order_id and cl_ord_id")
        if self.order_id is not None:
            _text("order_id", self.order_id)
        if self.cl_ord_id is not None:
            _cl_ord_id("cl_ord_id", self.cl_ord_id)
        qty = _amount("order_qty", self.order_qty)
        display = _optional_amount("display_qty", self.display_qty)
        if display is not None:
            _check_display(display, qty)
        _optional_choice("limit_price_type", self.limit_price_type, _PRICE_TYPES)
        _optional_choice("trigger_price_type", self.trigger_price_type, _PRICE_TYPES)
        if self.limit_price is None and self.limit_price_type is not None:
            raise _fail("limit_price_type", "is only meaningful with limit_price")
        if self.trigger_price is None and self.trigger_price_type is not None:
            raise _fail("trigger_price_type", "is only meaningful with trigger_price")
        limit = _price("limit_price", self.limit_price, self.limit_price_type)
        trigger = _price("trigger_price", self.trigger_price, self.trigger_price_type)
        _flag("post_only", self.post_only)
        if self.deadline is not None:
            _timestamp("deadline", self.deadline)
        if self.symbol is not None:
            _symbol("symbol", self.symbol)
        force_setattr(self, "order_qty", qty)
        force_setattr(self, "display_qty", display)
        force_setattr(self, "limit_price", limit)
        force_setattr(self, "trigger_price", trigger)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token."""
        params: dict[str, Any] = {}
        _put(params, "order_id", self.order_id)
        _put(params, "cl_ord_id", self.cl_ord_id)
        params["order_qty"] = self.order_qty
        _put(params, "display_qty", self.display_qty)
        _put(params, "limit_price", self.limit_price)
        _put(params, "limit_price_type", self.limit_price_type)
        _put(params, "post_only", self.post_only)
        _put(params, "trigger_price", self.trigger_price)
        _put(params, "trigger_price_type", self.trigger_price_type)
        if self.deadline is not None:
            params["deadline"] = _render_time(self.deadline, millis=True)
        _put(params, "symbol", self.symbol)
        return params


class EditOrder(msgspec.Struct, _OneResponse, frozen=True, kw_only=True):
    """``edit_order`` (legacy): Kraken cancels the order and places a new one with a new
    ``order_id``; queue priority is lost. Prefer :class:`AmendOrder`.

    ``order_id`` and ``symbol`` are required (the pair cannot change). Kraken does not
    support ``cl_ord_id`` here (so there is no such field), nor editing triggered
    stop/take-profit orders or orders with a conditional close. ``order_userref`` is given
    to the new order.
    """

    method: ClassVar[str] = "edit_order"

    order_id: str
    symbol: str
    order_qty: Amount | None = None
    limit_price: Amount | None = None
    display_qty: Amount | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    fee_preference: FeePreference | None = None
    order_userref: int | None = None
    triggers: Triggers | None = None
    validate: bool | None = None
    deadline: Timestamp | None = None

    def __post_init__(self) -> None:
        _text("order_id", self.order_id)
        _symbol("symbol", self.symbol)
        qty = _optional_amount("order_qty", self.order_qty)
        limit = _optional_amount("limit_price", self.limit_price)
        display = _optional_amount("display_qty", self.display_qty)
        if display is not None:
            _check_display(display, qty)
        for name in ("post_only", "reduce_only", "validate"):
            _flag(name, getattr(self, name))
        _optional_choice("fee_preference", self.fee_preference, _FEE_PREFERENCES)
        if self.order_userref is not None:
            _userref("order_userref", self.order_userref)
        triggers = _nested("triggers", self.triggers, Triggers)
        if self.deadline is not None:
            _timestamp("deadline", self.deadline)
        force_setattr(self, "order_qty", qty)
        force_setattr(self, "limit_price", limit)
        force_setattr(self, "display_qty", display)
        force_setattr(self, "triggers", triggers)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token."""
        params: dict[str, Any] = {"order_id": self.order_id, "symbol": self.symbol}
        _put(params, "order_qty", self.order_qty)
        _put(params, "limit_price", self.limit_price)
        _put(params, "display_qty", self.display_qty)
        _put(params, "post_only", self.post_only)
        _put(params, "reduce_only", self.reduce_only)
        _put(params, "fee_preference", self.fee_preference)
        _put(params, "order_userref", self.order_userref)
        if self.triggers is not None:
            params["triggers"] = self.triggers.params()
        _put(params, "validate", self.validate)
        if self.deadline is not None:
            params["deadline"] = _render_time(self.deadline, millis=True)
        return params


class CancelOrder(msgspec.Struct, _NoPair, frozen=True, kw_only=True):
    """``cancel_order``: cancel orders by Kraken id, client id or user reference.

    At least one id overall, none listed twice. Kraken sends one response per cancelled
    order (see :attr:`expected_responses`). Lists are accepted and stored as tuples.
    """

    method: ClassVar[str] = "cancel_order"

    order_id: tuple[str, ...] = ()
    cl_ord_id: tuple[str, ...] = ()
    order_userref: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        order_ids = _items("order_id", self.order_id)
        cl_ord_ids = _items("cl_ord_id", self.cl_ord_id)
        userrefs = _items("order_userref", self.order_userref)
        if not (order_ids or cl_ord_ids or userrefs):
            raise _fail("order_id", "give at least one order_id, cl_ord_id or order_userref")
        for index, value in enumerate(order_ids):
            _text(f"order_id[{index}]", value)
        for index, value in enumerate(cl_ord_ids):
            _cl_ord_id(f"cl_ord_id[{index}]", value)
        for index, value in enumerate(userrefs):
            _userref(f"order_userref[{index}]", value)
        _no_duplicates("order_id", order_ids)
        _no_duplicates("cl_ord_id", cl_ord_ids)
        _no_duplicates("order_userref", userrefs)
        force_setattr(self, "order_id", order_ids)
        force_setattr(self, "cl_ord_id", cl_ord_ids)
        force_setattr(self, "order_userref", userrefs)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token (only the non-empty arrays)."""
        params: dict[str, Any] = {}
        if self.order_id:
            params["order_id"] = list(self.order_id)
        if self.cl_ord_id:
            params["cl_ord_id"] = list(self.cl_ord_id)
        if self.order_userref:
            params["order_userref"] = list(self.order_userref)
        return params

    @property
    def expected_responses(self) -> int | None:
        """One response per cancelled order: the number of ids, or ``None`` (unknown) when
        an ``order_userref`` is used, since one reference may match many orders."""
        if self.order_userref:
            return None
        return len(self.order_id) + len(self.cl_ord_id)


class CancelAll(msgspec.Struct, _NoPair, _OneResponse, frozen=True, kw_only=True):
    """``cancel_all``: cancel every resting and untriggered order of the account."""

    method: ClassVar[str] = "cancel_all"

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token: empty."""
        return {}


class CancelAllOrdersAfter(msgspec.Struct, _NoPair, _OneResponse, frozen=True, kw_only=True):
    """``cancel_all_orders_after`` (dead man's switch): cancel everything unless called
    again within ``timeout`` seconds.

    ``timeout`` is an int, 0 <= timeout < 86400; 0 disarms the switch. Kraken advises
    calling it every 15 to 30 s with ``timeout=60``.
    """

    method: ClassVar[str] = "cancel_all_orders_after"

    timeout: int

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int):
            raise _fail("timeout", f"must be an int of seconds, got {type(self.timeout).__name__}")
        if not 0 <= self.timeout < _MAX_TIMEOUT:
            raise _fail("timeout", f"must be >= 0 and < 86400 (0 disarms), got {self.timeout}")

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token."""
        return {"timeout": self.timeout}


class BatchAdd(msgspec.Struct, _OneResponse, frozen=True, kw_only=True):
    """``batch_add``: 2 to 15 orders on one pair, sent in one message.

    ``orders`` holds :class:`BatchOrder` values, or mappings of their fields (errors then
    name the order: ``"orders[3].limit_price"``); stored as a tuple of ``BatchOrder``. If
    one order fails Kraken's validation the whole batch is refused; an order failing a
    later check (funds, for example) is refused alone, in its row of the result. Client
    order ids must differ within the batch.
    """

    method: ClassVar[str] = "batch_add"

    symbol: str
    orders: tuple[BatchOrder, ...]
    deadline: Timestamp | None = None
    validate: bool | None = None

    def __post_init__(self) -> None:
        _symbol("symbol", self.symbol)
        given = _items("orders", self.orders)
        if not _BATCH_ADD_MIN <= len(given) <= _BATCH_ADD_MAX:
            raise _fail("orders", f"a batch holds 2 to 15 orders, got {len(given)}")
        orders = tuple(_batch_order(index, order) for index, order in enumerate(given))
        seen: dict[str, int] = {}
        for index, order in enumerate(orders):
            if order.cl_ord_id is None:
                continue
            if order.cl_ord_id in seen:
                raise _fail(
                    f"orders[{index}].cl_ord_id",
                    f"{order.cl_ord_id!r} is already used by orders[{seen[order.cl_ord_id]}]",
                )
            seen[order.cl_ord_id] = index
        if self.deadline is not None:
            _timestamp("deadline", self.deadline)
        _flag("validate", self.validate)
        force_setattr(self, "orders", orders)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token."""
        params: dict[str, Any] = {
            "symbol": self.symbol,
            "orders": [order.params() for order in self.orders],
        }
        if self.deadline is not None:
            params["deadline"] = _render_time(self.deadline, millis=True)
        _put(params, "validate", self.validate)
        return params


def _batch_order(index: int, order: object) -> BatchOrder:
    if isinstance(order, BatchOrder):
        return order
    prefix = f"orders[{index}]"
    if not isinstance(order, Mapping):
        raise _fail(prefix, f"must be a BatchOrder or a mapping, got {type(order).__name__}")
    try:
        return BatchOrder(**order)
    except InvalidRequestError as exc:
        raise _within(prefix + ".", exc) from None
    except TypeError as exc:  # unknown or missing fields (symbol belongs to the batch)
        raise _fail(prefix, str(exc)) from None


class BatchCancel(msgspec.Struct, _NoPair, _OneResponse, frozen=True, kw_only=True):
    """``batch_cancel``: cancel 2 to 50 orders in one message.

    ``orders`` holds Kraken order ids or ``order_userref`` values written as strings (ints
    are accepted and written as strings); ``cl_ord_id`` holds client ids. 2 to 50 in
    total, none listed twice.
    """

    method: ClassVar[str] = "batch_cancel"

    orders: tuple[str, ...] = ()
    cl_ord_id: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        given = _items("orders", self.orders)
        cl_ord_ids = _items("cl_ord_id", self.cl_ord_id)
        orders = []
        for index, value in enumerate(given):
            if isinstance(value, int) and not isinstance(value, bool):
                _userref(f"orders[{index}]", value)
                orders.append(str(value))
            else:
                orders.append(_text(f"orders[{index}]", value))
        for index, value in enumerate(cl_ord_ids):
            _cl_ord_id(f"cl_ord_id[{index}]", value)
        total = len(orders) + len(cl_ord_ids)
        if not _BATCH_CANCEL_MIN <= total <= _BATCH_CANCEL_MAX:
            raise _fail("orders", f"a batch cancels 2 to 50 orders in total, got {total}")
        _no_duplicates("orders", tuple(orders))
        _no_duplicates("cl_ord_id", cl_ord_ids)
        force_setattr(self, "orders", tuple(orders))
        force_setattr(self, "cl_ord_id", cl_ord_ids)

    def params(self) -> dict[str, Any]:
        """The wire ``params`` object, without the token (only the non-empty arrays)."""
        params: dict[str, Any] = {}
        if self.orders:
            params["orders"] = list(self.orders)
        if self.cl_ord_id:
            params["cl_ord_id"] = list(self.cl_ord_id)
        return params


TradingRequest: TypeAlias = (
    AddOrder
    | AmendOrder
    | EditOrder
    | CancelOrder
    | CancelAll
    | CancelAllOrdersAfter
    | BatchAdd
    | BatchCancel
)
"""Any trading request."""


_REQUEST_TYPES = (
    AddOrder,
    AmendOrder,
    EditOrder,
    CancelOrder,
    CancelAll,
    CancelAllOrdersAfter,
    BatchAdd,
    BatchCancel,
)


TRADING_METHODS: frozenset[str] = frozenset(cls.method for cls in _REQUEST_TYPES)
"""The wire names of the trading methods."""


def is_trading_request(value: object) -> TypeGuard[TradingRequest]:
    """Whether ``value`` is one of the trading request classes."""
    return isinstance(value, _REQUEST_TYPES)


def new_cl_ord_id() -> str:
    """A fresh client order id: a random UUID4 with dashes (``uuid4`` does not touch the
    ``random`` module's global state)."""
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- results


class AddOrderResult(msgspec.Struct, frozen=True):
    """``add_order`` succeeded. ``order_id`` is ``""`` when the order was only validated."""

    order_id: str
    cl_ord_id: str | None = None
    order_userref: int | None = None
    warnings: tuple[str, ...] = ()


class AmendOrderResult(msgspec.Struct, frozen=True):
    """``amend_order`` succeeded; the order keeps its ids."""

    amend_id: str
    order_id: str | None = None
    cl_ord_id: str | None = None
    warnings: tuple[str, ...] = ()


class EditOrderResult(msgspec.Struct, frozen=True):
    """``edit_order`` succeeded: ``original_order_id`` was replaced by ``order_id``."""

    order_id: str
    original_order_id: str
    warnings: tuple[str, ...] = ()


class CancelOrderResult(msgspec.Struct, frozen=True):
    """One order was cancelled (``cancel_order`` sends one of these per order)."""

    order_id: str | None = None
    cl_ord_id: str | None = None
    warnings: tuple[str, ...] = ()


class CancelAllResult(msgspec.Struct, frozen=True):
    """``cancel_all`` cancelled ``count`` orders."""

    count: int
    warnings: tuple[str, ...] = ()


class CancelAllOrdersAfterResult(msgspec.Struct, frozen=True):
    """The dead man's switch was set: Kraken's clock and when the switch fires (RFC3339
    text to the second; ``trigger_time`` is ``"0"`` when the switch is disarmed)."""

    current_time: str = msgspec.field(name="currentTime")
    trigger_time: str = msgspec.field(name="triggerTime")

    @property
    def armed(self) -> bool:
        """Whether the switch will fire (``trigger_time`` is not ``"0"``)."""
        return self.trigger_time != "0"


class BatchAddRow(msgspec.Struct, frozen=True):
    """One order of a ``batch_add`` result, in request order; ``error`` is set when this
    order alone was refused."""

    order_id: str | None = None
    cl_ord_id: str | None = None
    order_userref: int | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()


class BatchAddResult(msgspec.Struct, frozen=True):
    """``batch_add`` succeeded: one row per order (the wire ``result`` is an array)."""

    orders: tuple[BatchAddRow, ...]


class BatchCancelResult(msgspec.Struct, frozen=True):
    """``batch_cancel`` cancelled ``count`` orders."""

    count: int
    warnings: tuple[str, ...] = ()


TradingResult: TypeAlias = (
    AddOrderResult
    | AmendOrderResult
    | EditOrderResult
    | CancelOrderResult
    | CancelAllResult
    | CancelAllOrdersAfterResult
    | BatchAddResult
    | BatchCancelResult
)
"""Any trading result."""

_RESULT_TYPES: dict[str, type[TradingResult]] = {
    "add_order": AddOrderResult,
    "amend_order": AmendOrderResult,
    "edit_order": EditOrderResult,
    "cancel_order": CancelOrderResult,
    "cancel_all": CancelAllResult,
    "cancel_all_orders_after": CancelAllOrdersAfterResult,
    "batch_cancel": BatchCancelResult,
}


def parse_result(method: str, result: Any) -> TradingResult:
    """The typed result of a successful trading response, from its decoded ``result``.

    ``result`` is a dict (a list for ``batch_add``). Unknown keys are ignored. Raises
    ``msgspec.ValidationError`` when the shape is wrong or ``method`` is no trading method.
    """
    if method == "batch_add":
        return BatchAddResult(orders=msgspec.convert(result, tuple[BatchAddRow, ...]))
    result_type = _RESULT_TYPES.get(method)
    if result_type is None:
        raise msgspec.ValidationError(f"{method!r} is not a trading method")
    return msgspec.convert(result, result_type)


# --------------------------------------------------------------------------- the event


class OrderOutcome(enum.Enum):
    """How a trading request ended.

    - ``OK``: Kraken accepted it (``success: true``).
    - ``REJECTED``: Kraken refused it; nothing was done.
    - ``UNKNOWN``: no answer came (timeout, connection lost): it may or may not have taken
      effect; reconcile through the ``executions`` channel before acting again.
    - ``NOT_SENT``: the connection closed before the request left (it was being paced);
      nothing was done.
    """

    OK = "ok"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"


class OrderResponse(msgspec.Struct, frozen=True):
    """The final answer to one trading request (one event per request)."""

    method: str
    req_id: int
    outcome: OrderOutcome
    results: tuple[TradingResult, ...] = ()
    """One per response (``cancel_order``: one per cancelled order)."""
    error: str | None = None
    """Kraken's error text (``REJECTED``) or why the outcome is ``UNKNOWN``."""
    time_in: str | None = None
    time_out: str | None = None
    received_at: float = 0.0

    @property
    def result(self) -> TradingResult | None:
        """The first result, or ``None``."""
        return self.results[0] if self.results else None

    def raise_for_outcome(self) -> None:
        """Raise ``OrderError`` if Kraken refused the request, ``UnknownOutcomeError`` if its
        outcome is unknown, ``KrakenConnectionError`` if it was never sent; return quietly
        if it succeeded."""
        if self.outcome is OrderOutcome.REJECTED:
            raise OrderError(self.method, self.req_id, self.error or "no error text")
        if self.outcome is OrderOutcome.UNKNOWN:
            raise UnknownOutcomeError(self.method, self.req_id, self.error or "no answer")
        if self.outcome is OrderOutcome.NOT_SENT:
            raise KrakenConnectionError(
                f"{self.method} (req_id {self.req_id}) was not sent: "
                f"{self.error or 'the connection closed first'}; nothing was done"
            )
