"""Events: what the protocol tells its user, as frozen msgspec Structs.

Market events are decoded straight from the wire into these types (no intermediate dicts),
which is why their field names are Kraken's. Every event carries ``received_at``, the
driver's monotonic time at which the frame arrived; market events also carry the exchange's
``timestamp`` as the RFC3339 text Kraken sent (nanoseconds included), with a ``datetime``
available through :func:`parse_timestamp`. Prices and quantities are exact ``Decimal``.
:class:`BookLevel` and :class:`Ticker` (most of the numbers on the wire) keep the number
tokens as Kraken sent them and make their Decimals on access (parsing every number of every
message into a ``Decimal`` cost more than the rest of the core path); build them from values
with their ``of`` class methods.

Every number in a ticker, trade, candle, instrument, execution or balance event the protocol
emits is finite, below :data:`MAX_NUMBER` in magnitude and of the sign Kraken's has (prices
and quantities are never negative; :mod:`kraken_proto.wire` has the rules field by field):
an entry Kraken sent otherwise becomes a ``ProtocolError`` naming the field instead. Book
and level3 numbers are checked by the books that apply them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, cast

import msgspec

from kraken_proto.checksum import plain
from kraken_proto.private import (
    Balance,
    BalanceWallet,
    Contingent,
    Execution,
    ExecutionTriggers,
    Fee,
    GapDetected,
)
from kraken_proto.trading import OrderOutcome, OrderResponse

__all__ = [
    "Balance",
    "BalanceWallet",
    "BookLevel",
    "BookResync",
    "BookUpdate",
    "Dropped",
    "Event",
    "MARKET_DATA_EVENTS",
    "InstrumentAsset",
    "Contingent",
    "Execution",
    "ExecutionTriggers",
    "Fee",
    "GapDetected",
    "InstrumentPair",
    "Instrument",
    "MAX_NUMBER",
    "NON_NEGATIVE",
    "POSITIVE",
    "SIGNED",
    "L3Order",
    "L3Update",
    "OrderOutcome",
    "OrderResponse",
    "OHLC",
    "Pong",
    "ProtocolError",
    "StateChanged",
    "Subscribed",
    "SubscriptionFailed",
    "SubscriptionResult",
    "SystemStatus",
    "Ticker",
    "Trade",
    "Unsubscribed",
    "number_problem",
    "parse_timestamp",
]


def parse_timestamp(text: str) -> datetime:
    """Parse one of Kraken's RFC3339 timestamps into an aware ``datetime`` (UTC).

    Nanosecond fractions are rounded to the microsecond that ``datetime`` can hold; the
    event keeps the exact text.
    """
    return msgspec.json.decode(msgspec.json.encode(text), type=datetime)


_decode_decimal = msgspec.json.Decoder(Decimal).decode


def _number_token(value: Decimal | str | int) -> msgspec.Raw:
    """The JSON token of an exact value, written positionally (``5E-8`` -> ``0.00000005``)."""
    if isinstance(value, float):
        raise TypeError("pass a Decimal, str or int: a float is not an exact decimal value")
    number = value if isinstance(value, Decimal) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return msgspec.Raw(plain(number).encode())


def _shown(token: msgspec.Raw) -> str:
    """``repr`` of a token's Decimal, or of its bytes if it is no number at all."""
    try:
        return repr(_decode_decimal(token))
    except msgspec.ValidationError:
        return repr(bytes(token))


POSITIVE = "positive"
"""Sign rule of :func:`number_problem`: the number must be > 0 (a trade's price, say)."""
NON_NEGATIVE = "non-negative"
"""Sign rule of :func:`number_problem`: the number must be >= 0 (a 24-hour volume, say)."""
SIGNED = ""
"""Sign rule of :func:`number_problem`: either sign will do (a 24-hour change, say)."""

_ZERO = Decimal(0)
_MAX_DIGITS = 256
MAX_NUMBER = Decimal(f"1E+{_MAX_DIGITS}")
"""Every number an event carries is below this (``1E+256``) in magnitude.

No price or quantity comes near it; what it stops is ``1e999999``, which msgspec decodes
as a finite ``Decimal`` on which ordinary arithmetic overflows the default context (its
exponents stop at 999999). The bound is loose so that it costs nothing to check on the
number tokens a ticker keeps: plain tokens totalling at most 256 characters cannot reach
it.
"""


def number_problem(field: str, value: Decimal, sign: str) -> str | None:
    """What is wrong with ``value`` as the ``field`` of an event (``"trade.qty"``), or
    ``None`` if it is usable.

    Usable means finite, below :data:`MAX_NUMBER` in magnitude, and of the right sign:
    > 0 for :data:`POSITIVE`, >= 0 for :data:`NON_NEGATIVE`, any for :data:`SIGNED`.
    Never raises, whatever the thread's decimal context traps.
    """
    if value.is_finite():
        if value.copy_abs() >= MAX_NUMBER:
            return f"{field}: {_shown_number(value)} is out of range (not below 1E+256)"
        if sign == SIGNED or (value > _ZERO if sign == POSITIVE else value >= _ZERO):
            return None
    what = f"finite {sign} number" if sign else "finite number"
    return f"{field}: {_shown_number(value)} is not a {what}"


def _shown_number(value: Decimal) -> str:
    """The value as quoted text for an error message, at most about 40 characters."""
    text = str(value)
    return repr(text if len(text) <= 40 else f"{text[:36]}...")


_TICKER_NUMBERS = (
    # change and change_pct first: they alone may be negative.
    ("change", SIGNED),
    ("change_pct", SIGNED),
    ("bid", NON_NEGATIVE),
    ("bid_qty", NON_NEGATIVE),
    ("ask", NON_NEGATIVE),
    ("ask_qty", NON_NEGATIVE),
    ("last", NON_NEGATIVE),
    ("volume", NON_NEGATIVE),
    ("vwap", NON_NEGATIVE),
    ("low", NON_NEGATIVE),
    ("high", NON_NEGATIVE),
)
_PLAIN_NUMBER_CHARS = b"0123456789.-"


def _check_ticker_numbers(tokens: tuple[msgspec.Raw, ...]) -> None:
    """Raise ``ValueError`` naming the first ticker token that is no usable number."""
    for (name, sign), token in zip(_TICKER_NUMBERS, tokens, strict=True):
        try:
            value = _decode_decimal(token)
        except msgspec.ValidationError:
            raise ValueError(f"Expected a number for `{name}`, got {bytes(token)[:40]!r}") from None
        problem = number_problem(f"ticker.{name}", value, sign)
        if problem is not None:
            raise ValueError(problem)


def _raw_fields(obj: msgspec.Struct) -> Iterator[tuple[str, Any]]:
    """Every field by its public name, a raw number token as its Decimal."""
    for field in obj.__struct_fields__:
        value = getattr(obj, field)
        if isinstance(value, msgspec.Raw):
            yield field.removesuffix("_text"), _decode_decimal(value)
        else:
            yield field, value


def _raw_struct_eq(self: msgspec.Struct, other: object) -> bool:
    """Equal if of the same type with equal values (``1.0`` equals ``1.00``)."""
    if type(other) is not type(self):
        return cast(bool, NotImplemented)
    assert isinstance(other, msgspec.Struct)
    if msgspec.structs.astuple(self) == msgspec.structs.astuple(other):
        return True  # same tokens
    return list(_raw_fields(self)) == list(_raw_fields(other))


def _raw_struct_hash(self: msgspec.Struct) -> int:
    return hash(tuple(_raw_fields(self)))


def _raw_struct_repr(self: msgspec.Struct) -> str:
    parts = []
    for field in self.__struct_fields__:
        value = getattr(self, field)
        if isinstance(value, msgspec.Raw):
            parts.append(f"{field.removesuffix('_text')}={_shown(value)}")
        else:
            parts.append(f"{field}={value!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


def _raw_struct_rich_repr(self: msgspec.Struct) -> list[tuple[str, Any]]:
    return list(_raw_fields(self))


class BookLevel(msgspec.Struct, frozen=True, gc=False):
    """One price level of an L2 book: a price and the total quantity resting there.

    ``price`` and ``qty`` are exact ``Decimal`` values, made on each access from the number
    tokens exactly as Kraken sent them (``price_text``/``qty_text``; a book message is
    decoded without parsing its numbers, which would cost more than the rest of the frame).
    Build a level from values with :meth:`BookLevel.of`.

    Levels compare and hash by value: ``BookLevel.of("1.0", "2") == BookLevel.of("1.00",
    "2")``, as for ``Decimal``, although their text (and so their checksum digits when the
    pair's precision is unknown) differ. ``msgspec.json.encode`` writes the original tokens;
    ``msgspec.to_builtins`` needs an ``enc_hook`` for the ``msgspec.Raw`` fields.
    """

    price_text: msgspec.Raw = msgspec.field(name="price")
    """The price token as it appeared on the wire (a JSON number, or a quoted one)."""
    qty_text: msgspec.Raw = msgspec.field(name="qty")
    """The quantity token as it appeared on the wire; zero means the level was deleted."""

    @classmethod
    def of(cls, price: Decimal | str | int, qty: Decimal | str | int) -> BookLevel:
        """A level from values: ``BookLevel.of("63000.0", Decimal("0.5"))``.

        The text keeps the value's digits (``"63000.0"`` stays ``63000.0``), written
        positionally. Raises ``TypeError`` for a float, ``ValueError`` for NaN/infinity.
        """
        return cls(_number_token(price), _number_token(qty))

    @property
    def price(self) -> Decimal:
        """The price, exact."""
        return _decode_decimal(self.price_text)

    @property
    def qty(self) -> Decimal:
        """The total quantity at this price, exact (0 in an update deletes the level)."""
        return _decode_decimal(self.qty_text)

    __eq__ = _raw_struct_eq
    __hash__ = _raw_struct_hash
    __repr__ = _raw_struct_repr
    __rich_repr__ = _raw_struct_rich_repr


class Ticker(msgspec.Struct, frozen=True, gc=False):
    """Level-1 summary for one symbol: best bid/ask and 24-hour statistics.

    The numbers (``bid``, ``ask``, ``volume``, ...) are exact ``Decimal`` values made on
    each access from the tokens Kraken sent, kept as ``<name>_text``: decoding eleven
    Decimals per message would cost twice the rest of it. The tokens are checked when the
    ticker is made (``ValueError`` otherwise, naming the field): numbers (quoted ones too),
    finite, below :data:`MAX_NUMBER` in magnitude, and never negative except ``change``
    and ``change_pct``. Zero is allowed everywhere (no volume, or an empty side, in 24 h).
    Build one from values with :meth:`Ticker.of`; tickers compare and hash by value, like
    :class:`BookLevel`.
    """

    symbol: str
    bid_text: msgspec.Raw = msgspec.field(name="bid")
    bid_qty_text: msgspec.Raw = msgspec.field(name="bid_qty")
    ask_text: msgspec.Raw = msgspec.field(name="ask")
    ask_qty_text: msgspec.Raw = msgspec.field(name="ask_qty")
    last_text: msgspec.Raw = msgspec.field(name="last")
    volume_text: msgspec.Raw = msgspec.field(name="volume")
    vwap_text: msgspec.Raw = msgspec.field(name="vwap")
    low_text: msgspec.Raw = msgspec.field(name="low")
    high_text: msgspec.Raw = msgspec.field(name="high")
    change_text: msgspec.Raw = msgspec.field(name="change")
    change_pct_text: msgspec.Raw = msgspec.field(name="change_pct")
    timestamp: str | None = None
    trades: Annotated[int, msgspec.Meta(ge=0)] | None = None
    received_at: float = 0.0

    def __post_init__(self) -> None:
        change = self.change_text
        tokens = (
            change,
            self.change_pct_text,
            self.bid_text,
            self.bid_qty_text,
            self.ask_text,
            self.ask_qty_text,
            self.last_text,
            self.volume_text,
            self.vwap_text,
            self.low_text,
            self.high_text,
        )
        # The quick check: plain JSON numbers only (no quotes, no exponent: so finite), a
        # minus sign only at the start of change or change_pct (the two that come first),
        # too short to reach MAX_NUMBER. Anything else is decoded token by token.
        text = b"".join(tokens)
        minus = text.rfind(b"-")
        if (
            not text.translate(None, _PLAIN_NUMBER_CHARS)
            and (minus <= 0 or minus == len(change))
            and len(text) <= _MAX_DIGITS
        ):
            return
        _check_ticker_numbers(tokens)

    @classmethod
    def of(
        cls,
        symbol: str,
        bid: Decimal | str | int,
        bid_qty: Decimal | str | int,
        ask: Decimal | str | int,
        ask_qty: Decimal | str | int,
        last: Decimal | str | int,
        volume: Decimal | str | int,
        vwap: Decimal | str | int,
        low: Decimal | str | int,
        high: Decimal | str | int,
        change: Decimal | str | int,
        change_pct: Decimal | str | int,
        timestamp: str | None = None,
        trades: int | None = None,
        received_at: float = 0.0,
    ) -> Ticker:
        """A ticker from values, in the order of the fields (see :meth:`BookLevel.of`)."""
        return cls(
            symbol,
            _number_token(bid),
            _number_token(bid_qty),
            _number_token(ask),
            _number_token(ask_qty),
            _number_token(last),
            _number_token(volume),
            _number_token(vwap),
            _number_token(low),
            _number_token(high),
            _number_token(change),
            _number_token(change_pct),
            timestamp,
            trades,
            received_at,
        )

    @property
    def bid(self) -> Decimal:
        """The best bid price."""
        return _decode_decimal(self.bid_text)

    @property
    def bid_qty(self) -> Decimal:
        """The quantity at the best bid."""
        return _decode_decimal(self.bid_qty_text)

    @property
    def ask(self) -> Decimal:
        """The best ask price."""
        return _decode_decimal(self.ask_text)

    @property
    def ask_qty(self) -> Decimal:
        """The quantity at the best ask."""
        return _decode_decimal(self.ask_qty_text)

    @property
    def last(self) -> Decimal:
        """The price of the last trade."""
        return _decode_decimal(self.last_text)

    @property
    def volume(self) -> Decimal:
        """The 24-hour volume, in the base currency."""
        return _decode_decimal(self.volume_text)

    @property
    def vwap(self) -> Decimal:
        """The 24-hour volume-weighted average price."""
        return _decode_decimal(self.vwap_text)

    @property
    def low(self) -> Decimal:
        """The 24-hour low."""
        return _decode_decimal(self.low_text)

    @property
    def high(self) -> Decimal:
        """The 24-hour high."""
        return _decode_decimal(self.high_text)

    @property
    def change(self) -> Decimal:
        """The 24-hour price change, in the quote currency."""
        return _decode_decimal(self.change_text)

    @property
    def change_pct(self) -> Decimal:
        """The 24-hour price change in percent."""
        return _decode_decimal(self.change_pct_text)

    __eq__ = _raw_struct_eq
    __hash__ = _raw_struct_hash
    __repr__ = _raw_struct_repr
    __rich_repr__ = _raw_struct_rich_repr


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One public trade. ``side`` is the taker's side, ``ord_type`` the taker's order type.

    A trade the protocol emits has a finite, positive ``price`` and ``qty`` (below
    :data:`MAX_NUMBER`); one Kraken sent otherwise becomes a ``ProtocolError``.
    """

    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    ord_type: str
    trade_id: Annotated[int, msgspec.Meta(ge=0)]
    timestamp: str
    received_at: float = 0.0


class OHLC(msgspec.Struct, frozen=True, gc=False):
    """One candle. ``interval`` is in minutes; ``interval_begin`` is the candle's start.

    A candle the protocol emits has finite numbers below :data:`MAX_NUMBER`: positive
    prices (``open``, ``high``, ``low``, ``close``) and a non-negative ``volume`` and
    ``vwap``; one Kraken sent otherwise becomes a ``ProtocolError``.
    """

    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    trades: Annotated[int, msgspec.Meta(ge=0)]
    volume: Decimal
    vwap: Decimal
    interval_begin: str
    interval: Annotated[int, msgspec.Meta(ge=1)]
    timestamp: str | None = None
    received_at: float = 0.0


class BookUpdate(msgspec.Struct, frozen=True):
    """A book message for one symbol, emitted after it was applied and its checksum verified.

    ``bids``/``asks`` are the levels exactly as the message carried them (qty 0 = deleted);
    ``snapshot`` tells a snapshot (which replaced the whole book) from an update. The book
    itself is read through ``KrakenProtocol.book(symbol)``.
    """

    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    checksum: int
    timestamp: str | None = None
    snapshot: bool = False
    received_at: float = 0.0


class L3Order(msgspec.Struct, frozen=True):
    """One order of an L3 message (snapshot: no event; update: event add|modify|delete).

    ``limit_price`` and ``order_qty`` are exact and keep the digits Kraken sent;
    ``timestamp`` is Kraken's RFC3339 text (nanoseconds). Orders held by an
    :class:`~kraken_proto.level3.L3Book` have ``event`` ``None``.
    """

    order_id: str
    limit_price: Decimal
    order_qty: Decimal
    timestamp: str | None = None
    event: str | None = None


class L3Update(msgspec.Struct, frozen=True, kw_only=True):
    """One level3 message for one symbol, emitted after it was applied and verified.

    ``bids``/``asks`` are the orders exactly as the message carried them; ``snapshot`` tells
    a snapshot (which replaced the whole book) from an update; ``checksum`` is the CRC32
    Kraken sent. Keyword-only, so that the required ``checksum`` can follow the sides.
    """

    symbol: str
    bids: tuple[L3Order, ...] = ()
    asks: tuple[L3Order, ...] = ()
    checksum: int
    timestamp: str | None = None
    snapshot: bool = False
    received_at: float = 0.0


class InstrumentAsset(msgspec.Struct, frozen=True):
    """An asset of the instrument channel (``precision`` = its ledger decimals).

    Emitted with finite numbers: ``multiplier`` positive, ``collateral_value`` and
    ``margin_rate`` non-negative (an asset Kraken sent otherwise is left out of the
    :class:`Instrument` event and reported as a ``ProtocolError``).
    """

    id: str
    status: str
    precision: Annotated[int, msgspec.Meta(ge=0)]
    precision_display: Annotated[int, msgspec.Meta(ge=0)] | None = None
    borrowable: bool | None = None
    collateral_value: Decimal | None = None
    margin_rate: Decimal | None = None
    multiplier: Decimal | None = None


class InstrumentPair(msgspec.Struct, frozen=True):
    """A tradable pair of the instrument channel; its precisions drive the book checksum.

    Emitted with finite numbers: the increments (``price_increment``, ``qty_increment``,
    ``tick_size``) positive, ``qty_min``, ``cost_min`` and ``margin_initial``
    non-negative (a pair Kraken sent otherwise is left out of the :class:`Instrument`
    event, its precision unused, and reported as a ``ProtocolError``).
    """

    symbol: str
    base: str
    quote: str
    status: str
    qty_precision: Annotated[int, msgspec.Meta(ge=0, le=18)]
    price_precision: Annotated[int, msgspec.Meta(ge=0, le=18)]
    qty_increment: Decimal | None = None
    qty_min: Decimal | None = None
    price_increment: Decimal | None = None
    cost_precision: Annotated[int, msgspec.Meta(ge=0)] | None = None
    cost_min: Decimal | None = None
    marginable: bool | None = None
    has_index: bool | None = None
    margin_initial: Decimal | None = None
    position_limit_long: Annotated[int, msgspec.Meta(ge=0)] | None = None
    position_limit_short: Annotated[int, msgspec.Meta(ge=0)] | None = None
    tick_size: Decimal | None = None


class Instrument(msgspec.Struct, frozen=True):
    """An instrument-channel message: the assets and pairs it carried."""

    assets: tuple[InstrumentAsset, ...]
    pairs: tuple[InstrumentPair, ...]
    snapshot: bool = False
    received_at: float = 0.0


class SystemStatus(msgspec.Struct, frozen=True):
    """The exchange's engine status, pushed at connect and whenever it changes."""

    system: str
    version: str | None = None
    api_version: str | None = None
    connection_id: int | None = None
    received_at: float = 0.0


class StateChanged(msgspec.Struct, frozen=True):
    """The connection moved from ``old`` to ``new``.

    ``reason`` says why. On ``DEGRADED``, ``retry`` is the number of the upcoming reconnect
    attempt and ``delay`` the seconds until it; on ``CLOSED`` after a failure, ``reason``
    says why the SDK stopped retrying.
    """

    old: str
    new: str
    reason: str = ""
    retry: int = 0
    delay: float | None = None
    received_at: float = 0.0


class Subscribed(msgspec.Struct, frozen=True):
    """Kraken acknowledged a subscription (one event per symbol for symbol channels)."""

    channel: str
    symbol: str | None
    req_id: int | None
    result: dict[str, Any]
    received_at: float = 0.0


class SubscriptionFailed(msgspec.Struct, frozen=True):
    """A subscription failed: refused by Kraken (``error`` is its text), not acknowledged in
    time, or given up after too many book resyncs."""

    channel: str
    symbol: str | None
    error: str
    req_id: int | None = None
    received_at: float = 0.0


class Unsubscribed(msgspec.Struct, frozen=True):
    """Kraken acknowledged an unsubscribe requested by the user."""

    channel: str
    symbol: str | None
    req_id: int | None
    received_at: float = 0.0


class SubscriptionResult(msgspec.Struct, frozen=True):
    """The one answer to a ``subscribe`` or ``unsubscribe`` call, emitted exactly once.

    ``req_id`` is what the call returned. ``answers`` holds one event per symbol of the
    call, in the call's order: the ``Subscribed``, ``Unsubscribed`` or ``SubscriptionFailed``
    already emitted for that symbol, or a ``SubscriptionFailed`` made for the result alone
    when the call ended without Kraken's answer (the client closed or gave up, or the
    symbol was unsubscribed before its subscription was answered). It follows the last of
    them. The per-symbol events carry the ``req_id`` of the request that went on the wire:
    the call's own, unless the call waited for a connection (then it was sent with the
    others when the connection opened).
    """

    req_id: int
    method: str
    channel: str
    answers: tuple[Subscribed | Unsubscribed | SubscriptionFailed, ...]
    received_at: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no symbol failed."""
        return not any(type(answer) is SubscriptionFailed for answer in self.answers)

    @property
    def failures(self) -> tuple[SubscriptionFailed, ...]:
        """The symbols that failed, in the call's order."""
        return tuple(a for a in self.answers if type(a) is SubscriptionFailed)


class BookResync(msgspec.Struct, frozen=True):
    """One symbol's book could not be trusted and is being rebuilt from a fresh snapshot.

    ``attempt`` counts resyncs within the current budget window.
    """

    symbol: str
    reason: str
    attempt: int
    received_at: float = 0.0


class Pong(msgspec.Struct, frozen=True):
    """Answer to the protocol's application-level ping; ``rtt`` in seconds when known."""

    req_id: int | None
    rtt: float | None = None
    received_at: float = 0.0


class Dropped(msgspec.Struct, frozen=True):
    """Events were dropped or coalesced by the backpressure policy since the last delivery.

    Delivered just before the next event that made it through, so the consumer learns of a
    loss in order. ``dropped`` events were discarded; ``coalesced`` events were replaced by
    a newer one of the same kind and symbol; ``policy`` is the drop policy's value.
    """

    dropped: int
    coalesced: int
    policy: str
    received_at: float = 0.0


class ProtocolError(msgspec.Struct, frozen=True):
    """The server sent something the SDK could not use; processing continued.

    ``error`` says what was wrong, ``payload`` holds the start of the offending frame.
    """

    error: str
    payload: str = ""
    received_at: float = 0.0


Event = (
    Ticker
    | Trade
    | OHLC
    | BookUpdate
    | L3Update
    | Execution
    | Balance
    | OrderResponse
    | GapDetected
    | Instrument
    | SystemStatus
    | StateChanged
    | Subscribed
    | SubscriptionFailed
    | Unsubscribed
    | SubscriptionResult
    | BookResync
    | Pong
    | Dropped
    | ProtocolError
)
"""Every event type the protocol emits."""

MARKET_DATA_EVENTS: frozenset[type[Event]] = frozenset({Ticker, Trade, OHLC, BookUpdate, L3Update})
"""The market data events: ``Ticker``, ``Trade``, ``OHLC``, ``BookUpdate``, ``L3Update``.

The timer contract (``docs/own-driver.md``): a ``receive_data`` call that returns one or
more actions, each an ``Emit`` of one of these, leaves ``next_deadline()`` no earlier than
it was (with ``now`` no earlier than the previous input's), so a driver may keep its timer
as armed. Such a call changed no state: acks, requests, sequence gaps and every state change
come with other events or with other actions.
"""
