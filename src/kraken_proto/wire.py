"""The v2 wire format: typed frame structs, the reused decoders, and request encoding.

Data frames are decoded in one pass into a union tagged by ``channel``, whose ``data``
entries are the public event types themselves, so no Python code runs per field. Frames
that do not fit (method responses, unknown channels, malformed input) fall back to a
slower generic path that classifies them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from kraken_proto.events import (
    OHLC,
    BookUpdate,
    InstrumentAsset,
    InstrumentPair,
    Ticker,
    Trade,
)
from kraken_proto.level3 import Level3Frame
from kraken_proto.private import BalancesFrame, ExecutionsFrame

__all__ = [
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
    "decode_data_frame",
    "decode_generic",
    "decode_response",
    "encode_request",
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
    connection_id: int | None = None


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
