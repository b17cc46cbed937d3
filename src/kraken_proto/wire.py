"""The v2 wire format: typed frame structs, the reused decoders, the checks of the numbers
Kraken sends, and request encoding.

Data frames are decoded in one pass into a union tagged by ``channel``, whose ``data``
entries are the public event types themselves, so no Python code runs per field. Frames
that do not fit (method responses, unknown channels, malformed input) fall back to a
slower generic path that classifies them; for the channels whose entries stand alone
(ticker, trade, ohlc, instrument), :func:`decode_entries` then decodes entry by entry, so
one bad entry does not cost the others.

Every number an event carries is finite, below :data:`~kraken_proto.events.MAX_NUMBER`
and of the sign Kraken's has (:func:`~kraken_proto.events.number_problem`). Decoding
cannot see that (msgspec turns ``"NaN"``, ``"Infinity"`` and ``1e999999`` into
``Decimal`` values), so the protocol asks the ``*_problem`` functions here before it emits
an entry. The sign rules, field by field (zero is allowed wherever "non-negative" is said):

- trade: ``price`` and ``qty`` positive; ``trade_id`` an int >= 0.
- ticker (checked as it is decoded, see :class:`~kraken_proto.events.Ticker`): ``change``
  and ``change_pct`` signed, every other number non-negative; ``trades`` >= 0.
- ohlc: ``open``, ``high``, ``low``, ``close`` positive (trade prices); ``volume`` and
  ``vwap`` non-negative; ``trades`` >= 0, ``interval`` >= 1.
- instrument: ``price_increment``, ``qty_increment``, ``tick_size`` and an asset's
  ``multiplier`` positive; ``qty_min``, ``cost_min``, ``margin_initial``,
  ``collateral_value`` and ``margin_rate`` non-negative.
- executions: quantities (``order_qty``, ``cash_order_qty``, ``display_qty``,
  ``display_qty_remain``, ``last_qty``, ``cum_qty``), fill prices and costs
  (``last_price``, ``avg_price``, ``cost``, ``cum_cost``) and the trigger's
  ``actual_price``, ``peak_price`` and ``last_price`` non-negative; order prices that may
  be offsets (``limit_price``, ``stop_price``, ``triggered_price``, ``triggers.price``,
  the ``contingent`` prices: their sign depends on a price type a sparse report may
  leave out) and fees (``fees[].qty``, ``fee_usd_equiv``: a rebate is negative) signed;
  ``trade_id`` >= 0.
- balances: every number signed (ledger ``amount`` is signed by design; Kraken documents
  no sign for ``balance``, ``fee`` or a wallet's ``balance``): finite is all they need.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from kraken_proto.events import (
    MAX_NUMBER,
    NON_NEGATIVE,
    OHLC,
    POSITIVE,
    SIGNED,
    BookUpdate,
    InstrumentAsset,
    InstrumentPair,
    Ticker,
    Trade,
    number_problem,
)
from kraken_proto.level3 import Level3Frame
from kraken_proto.private import Balance, BalancesFrame, Execution, ExecutionsFrame

__all__ = [
    "UNDECODABLE",
    "AckResult",
    "BalancesFrame",
    "ExecutionsFrame",
    "Level3Frame",
    "BookFrame",
    "DataFrame",
    "HeartbeatFrame",
    "InstrumentFrame",
    "OHLCFrame",
    "Response",
    "StatusEntry",
    "StatusFrame",
    "TickerFrame",
    "TradeFrame",
    "ack_result",
    "asset_problem",
    "balance_problem",
    "decode_data_frame",
    "decode_entries",
    "decode_generic",
    "decode_instrument_entries",
    "decode_response",
    "encode_request",
    "execution_problem",
    "ohlc_problem",
    "pair_problem",
    "trade_problem",
]


class BookFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="book"):
    """``{"channel":"book","type":...,"data":[one entry]}``."""

    type: str
    data: tuple[BookUpdate, ...]


class TickerFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="ticker"):
    """A ticker snapshot or update."""

    type: str
    data: tuple[Ticker, ...]


class TradeFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="trade"):
    """One or more public trades, in wire order."""

    type: str
    data: tuple[Trade, ...]


class OHLCFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="ohlc"):
    """One or more candles; ``timestamp`` is the frame's own (nanosecond) time."""

    type: str
    data: tuple[OHLC, ...]
    timestamp: str | None = None


class StatusEntry(msgspec.Struct, frozen=True):
    """The single entry of a status frame."""

    system: str
    version: str | None = None
    api_version: str | None = None
    connection_id: Annotated[int, msgspec.Meta(ge=0)] | None = None


class StatusFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="status"):
    """The engine status, pushed at connect and on change."""

    type: str
    data: tuple[StatusEntry, ...]


class InstrumentData(msgspec.Struct, frozen=True):
    """The instrument channel's ``data`` object (not a list, unlike every other channel)."""

    assets: tuple[InstrumentAsset, ...] = ()
    pairs: tuple[InstrumentPair, ...] = ()


class InstrumentFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="instrument"):
    """Assets and pairs with their precisions."""

    type: str
    data: InstrumentData


class HeartbeatFrame(msgspec.Struct, frozen=True, tag_field="channel", tag="heartbeat"):
    """``{"channel":"heartbeat"}``: the server is alive."""


DataFrame = (
    BookFrame
    | TickerFrame
    | TradeFrame
    | OHLCFrame
    | StatusFrame
    | InstrumentFrame
    | HeartbeatFrame
    | ExecutionsFrame
    | BalancesFrame
    | Level3Frame
)


class Response(msgspec.Struct, frozen=True):
    """A response to a method call (acks, errors, pong).

    ``success`` is kept as sent: anything but ``True`` counts as failure. ``symbol`` is the
    top-level symbol of an error response; ``channel`` appears on some private errors.
    """

    method: str
    success: Any = None
    req_id: int | None = None
    result: Any = None
    error: str | None = None
    symbol: str | None = None
    channel: str | None = None
    time_in: str | None = None
    time_out: str | None = None


class AckResult(msgspec.Struct, frozen=True):
    """The ``result`` of a subscribe/unsubscribe ack, checked for the fields the core uses."""

    channel: str
    symbol: str | None = None
    depth: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    interval: Annotated[int, msgspec.Meta(ge=1)] | None = None
    snapshot: bool | None = None
    event_trigger: str | None = None


def ack_result(result: Any) -> AckResult:
    """Check an ack's ``result`` object; raises ``msgspec.ValidationError`` if unusable."""
    return msgspec.convert(result, AckResult)


_data_decoder: msgspec.json.Decoder[DataFrame] = msgspec.json.Decoder(DataFrame)
_response_decoder = msgspec.json.Decoder(Response)
_generic_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

decode_data_frame = _data_decoder.decode
"""Decode a data frame of a known channel; raises ``msgspec.DecodeError`` otherwise."""

decode_response = _response_decoder.decode
"""Decode a method response; raises ``msgspec.DecodeError`` if it is not one."""

decode_generic = _generic_decoder.decode
"""Decode any JSON into Python objects (used only to classify unusual frames)."""


# --------------------------------------------------------------------------- numbers

_ZERO = Decimal(0)
_NumberRules = tuple[tuple[str, str], ...]


def _first_problem(kind: str, obj: msgspec.Struct, rules: _NumberRules) -> str | None:
    """The first number of ``obj`` (fields named in ``rules``; ``None`` ones skipped) that
    breaks its sign rule, described as :func:`number_problem` does; else ``None``."""
    for name, sign in rules:
        value = getattr(obj, name)
        if value is not None:
            problem = number_problem(f"{kind}.{name}", value, sign)
            if problem is not None:
                return problem
    return None


def trade_problem(trade: Trade) -> str | None:
    """Why ``trade`` cannot be delivered (``"trade.qty: 'NaN' is not a finite positive
    number"``), or ``None``: its price and quantity must be positive."""
    price = trade.price
    qty = trade.qty
    try:
        if _ZERO < price < MAX_NUMBER and _ZERO < qty < MAX_NUMBER:
            return None
    except ArithmeticError:  # a NaN compared while InvalidOperation is trapped
        pass
    return _first_problem("trade", trade, _TRADE_NUMBERS)


_TRADE_NUMBERS: _NumberRules = (("price", POSITIVE), ("qty", POSITIVE))
_OHLC_NUMBERS: _NumberRules = (
    ("open", POSITIVE),
    ("high", POSITIVE),
    ("low", POSITIVE),
    ("close", POSITIVE),
    ("volume", NON_NEGATIVE),
    ("vwap", NON_NEGATIVE),
)


def ohlc_problem(candle: OHLC) -> str | None:
    """Why ``candle`` cannot be delivered, or ``None``: its prices must be positive, its
    volume and vwap non-negative."""
    try:
        if (
            _ZERO < candle.open < MAX_NUMBER
            and _ZERO < candle.high < MAX_NUMBER
            and _ZERO < candle.low < MAX_NUMBER
            and _ZERO < candle.close < MAX_NUMBER
            and _ZERO <= candle.volume < MAX_NUMBER
            and _ZERO <= candle.vwap < MAX_NUMBER
        ):
            return None
    except ArithmeticError:  # a NaN compared while InvalidOperation is trapped
        pass
    return _first_problem("ohlc", candle, _OHLC_NUMBERS)


_ASSET_NUMBERS: _NumberRules = (
    ("collateral_value", NON_NEGATIVE),
    ("margin_rate", NON_NEGATIVE),
    ("multiplier", POSITIVE),
)
_PAIR_NUMBERS: _NumberRules = (
    ("qty_increment", POSITIVE),
    ("qty_min", NON_NEGATIVE),
    ("price_increment", POSITIVE),
    ("cost_min", NON_NEGATIVE),
    ("margin_initial", NON_NEGATIVE),
    ("tick_size", POSITIVE),
)


def asset_problem(asset: InstrumentAsset) -> str | None:
    """Why an instrument ``asset`` cannot be delivered, or ``None``."""
    return _first_problem("instrument.asset", asset, _ASSET_NUMBERS)


def pair_problem(pair: InstrumentPair) -> str | None:
    """Why an instrument ``pair`` cannot be delivered, or ``None``."""
    return _first_problem("instrument.pair", pair, _PAIR_NUMBERS)


_EXECUTION_NUMBERS: _NumberRules = (
    ("order_qty", NON_NEGATIVE),
    ("cash_order_qty", NON_NEGATIVE),
    ("display_qty", NON_NEGATIVE),
    ("display_qty_remain", NON_NEGATIVE),
    ("limit_price", SIGNED),
    ("last_qty", NON_NEGATIVE),
    ("last_price", NON_NEGATIVE),
    ("cost", NON_NEGATIVE),
    ("cum_qty", NON_NEGATIVE),
    ("cum_cost", NON_NEGATIVE),
    ("avg_price", NON_NEGATIVE),
    ("fee_usd_equiv", SIGNED),
    ("stop_price", SIGNED),
    ("triggered_price", SIGNED),
)
_TRIGGERS_NUMBERS: _NumberRules = (
    ("price", SIGNED),
    ("actual_price", NON_NEGATIVE),
    ("peak_price", NON_NEGATIVE),
    ("last_price", NON_NEGATIVE),
)
_CONTINGENT_NUMBERS: _NumberRules = (("trigger_price", SIGNED), ("limit_price", SIGNED))


def execution_problem(report: Execution) -> str | None:
    """Why an execution ``report`` cannot be delivered, or ``None`` (its fees, triggers and
    contingent order included)."""
    problem = _first_problem("execution", report, _EXECUTION_NUMBERS)
    if problem is not None:
        return problem
    for index, fee in enumerate(report.fees or ()):
        problem = number_problem(f"execution.fees[{index}].qty", fee.qty, SIGNED)
        if problem is not None:
            return problem
    if report.triggers is not None:
        problem = _first_problem("execution.triggers", report.triggers, _TRIGGERS_NUMBERS)
        if problem is not None:
            return problem
    if report.contingent is not None:
        return _first_problem("execution.contingent", report.contingent, _CONTINGENT_NUMBERS)
    return None


_BALANCE_NUMBERS: _NumberRules = (("balance", SIGNED), ("amount", SIGNED), ("fee", SIGNED))


def balance_problem(entry: Balance) -> str | None:
    """Why a balances ``entry`` cannot be delivered, or ``None`` (its wallets included)."""
    problem = _first_problem("balance", entry, _BALANCE_NUMBERS)
    if problem is not None:
        return problem
    for index, wallet in enumerate(entry.wallets or ()):
        problem = number_problem(f"balance.wallets[{index}].balance", wallet.balance, SIGNED)
        if problem is not None:
            return problem
    return None


# --------------------------------------------------------------------------- salvage


class _EntriesFrame(msgspec.Struct, frozen=True):
    """A ticker, trade or ohlc frame with its entries left undecoded."""

    type: str
    data: tuple[msgspec.Raw, ...]
    timestamp: str | None = None


class _InstrumentEntries(msgspec.Struct, frozen=True):
    assets: tuple[msgspec.Raw, ...] = ()
    pairs: tuple[msgspec.Raw, ...] = ()


class _InstrumentEntriesFrame(msgspec.Struct, frozen=True):
    """An instrument frame with its assets and pairs left undecoded."""

    type: str
    data: _InstrumentEntries


_ENTRY_DECODERS: dict[str, Any] = {
    "ticker": msgspec.json.Decoder(Ticker).decode,
    "trade": msgspec.json.Decoder(Trade).decode,
    "ohlc": msgspec.json.Decoder(OHLC).decode,
}
_entries_decoder = msgspec.json.Decoder(_EntriesFrame)
_instrument_entries_decoder = msgspec.json.Decoder(_InstrumentEntriesFrame)
_decode_asset = msgspec.json.Decoder(InstrumentAsset).decode
_decode_pair = msgspec.json.Decoder(InstrumentPair).decode
UNDECODABLE = (msgspec.DecodeError, UnicodeError, RecursionError)
"""What decoding hostile input can raise besides ``DecodeError``: invalid UTF-8 inside a
string (or a lone surrogate in a str payload), and nesting deep enough to exhaust the
stack."""

Salvaged = list[tuple[Any, msgspec.Raw]]
"""Per entry, in wire order: the decoded entry, or the text of why it failed; and its
undecoded JSON."""


def _salvage(decode: Any, raws: tuple[msgspec.Raw, ...], where: str) -> Salvaged:
    entries: Salvaged = []
    for index, raw in enumerate(raws):
        try:
            entries.append((decode(raw), raw))
        except UNDECODABLE as exc:
            entries.append((f"{where}[{index}]: {exc}", raw))
    return entries


def decode_entries(channel: str, payload: bytes | str) -> Salvaged | None:
    """Decode a ``ticker``, ``trade`` or ``ohlc`` frame entry by entry, for when decoding it
    whole failed: per entry, the decoded event or why it failed.

    ``None`` when the frame itself (not an entry) is broken.
    """
    try:
        frame = _entries_decoder.decode(payload)
    except UNDECODABLE:
        return None
    return _salvage(_ENTRY_DECODERS[channel], frame.data, "data")


def decode_instrument_entries(payload: bytes | str) -> tuple[str, Salvaged, Salvaged] | None:
    """Decode an ``instrument`` frame asset by asset and pair by pair (see
    :func:`decode_entries`): its ``type``, its assets, its pairs."""
    try:
        frame = _instrument_entries_decoder.decode(payload)
    except UNDECODABLE:
        return None
    data = frame.data
    assets = _salvage(_decode_asset, data.assets, "data.assets")
    return frame.type, assets, _salvage(_decode_pair, data.pairs, "data.pairs")


# --------------------------------------------------------------------------- requests


def _positional(value: Any) -> Any:
    """``value`` with every Decimal as a positional JSON number token (``1E-7`` would be
    valid JSON, but Kraken documents only plain numbers)."""
    if isinstance(value, Decimal):
        return msgspec.Raw(format(value, "f").encode())
    if isinstance(value, dict):
        return {key: _positional(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_positional(item) for item in value]
    return value


def encode_request(method: str, params: dict[str, Any] | None, req_id: int | None) -> str:
    """Encode a client request ``{"method", "params"?, "req_id"?}`` as JSON text.

    Decimals (prices and quantities of trading requests) leave as plain JSON numbers with
    exactly their digits.
    """
    request: dict[str, Any] = {"method": method}
    if params is not None:
        request["params"] = _positional(params)
    if req_id is not None:
        request["req_id"] = req_id
    return _encoder.encode(request).decode()
