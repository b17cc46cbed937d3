"""Events: what the protocol tells its user, as frozen msgspec Structs.

Market events are decoded straight from the wire into these types (no intermediate dicts),
which is why their field names are Kraken's. Every event carries ``received_at``, the
driver's monotonic time at which the frame arrived; market events also carry the exchange's
``timestamp`` as the RFC3339 text Kraken sent (nanoseconds included), with a ``datetime``
available through :func:`parse_timestamp`. Prices and quantities are exact ``Decimal``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

__all__ = [
    "BookLevel",
    "BookResync",
    "BookUpdate",
    "Dropped",
    "Event",
    "InstrumentAsset",
    "InstrumentPair",
    "Instrument",
    "OHLC",
    "Pong",
    "ProtocolError",
    "StateChanged",
    "Subscribed",
    "SubscriptionFailed",
    "SystemStatus",
    "Ticker",
    "Trade",
    "Unsubscribed",
    "parse_timestamp",
]


def parse_timestamp(text: str) -> datetime:
    """Parse one of Kraken's RFC3339 timestamps into an aware ``datetime`` (UTC).

    Nanosecond fractions are rounded to the microsecond that ``datetime`` can hold; the
    event keeps the exact text.
    """
    return msgspec.json.decode(msgspec.json.encode(text), type=datetime)


class BookLevel(msgspec.Struct, frozen=True, gc=False):
    """One price level of an L2 book: a price and the total quantity resting there."""

    price: Decimal
    qty: Decimal


class Ticker(msgspec.Struct, frozen=True, gc=False):
    """Level-1 summary for one symbol: best bid/ask and 24-hour statistics."""

    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    last: Decimal
    volume: Decimal
    vwap: Decimal
    low: Decimal
    high: Decimal
    change: Decimal
    change_pct: Decimal
    timestamp: str | None = None
    trades: int | None = None
    received_at: float = 0.0


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One public trade. ``side`` is the taker's side, ``ord_type`` the taker's order type."""

    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    ord_type: str
    trade_id: int
    timestamp: str
    received_at: float = 0.0


class OHLC(msgspec.Struct, frozen=True, gc=False):
    """One candle. ``interval`` is in minutes; ``interval_begin`` is the candle's start."""

    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    trades: int
    volume: Decimal
    vwap: Decimal
    interval_begin: str
    interval: int
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


class InstrumentAsset(msgspec.Struct, frozen=True):
    """An asset of the instrument channel (``precision`` = its ledger decimals)."""

    id: str
    status: str
    precision: int
    precision_display: int | None = None
    borrowable: bool | None = None
    collateral_value: Decimal | None = None
    margin_rate: Decimal | None = None
    multiplier: Decimal | None = None


class InstrumentPair(msgspec.Struct, frozen=True):
    """A tradable pair of the instrument channel; its precisions drive the book checksum."""

    symbol: str
    base: str
    quote: str
    status: str
    qty_precision: Annotated[int, msgspec.Meta(ge=0, le=18)]
    price_precision: Annotated[int, msgspec.Meta(ge=0, le=18)]
    qty_increment: Decimal | None = None
    qty_min: Decimal | None = None
    price_increment: Decimal | None = None
    cost_precision: int | None = None
    cost_min: Decimal | None = None
    marginable: bool | None = None
    has_index: bool | None = None
    margin_initial: Decimal | None = None
    position_limit_long: int | None = None
    position_limit_short: int | None = None
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
    | Instrument
    | SystemStatus
    | StateChanged
    | Subscribed
    | SubscriptionFailed
    | Unsubscribed
    | BookResync
    | Pong
    | Dropped
    | ProtocolError
)
"""Every event type the protocol emits."""
