"""The exact text of the frames the fake exchange sends (KRAKEN-V2.md sections 2-5).

Every number is written as a JSON number at the pair's precision (``63000.0``,
``0.00000000``): ``Decimal`` values become raw number tokens with the simulator's own
:func:`~kraken_proto.simulator.verify.decimal_text`, never strings and never floats. Acks,
errors and channel frames go through one reused msgspec encoder, which keeps dict insertion
order, so each builder writes its keys in the order Kraken uses: alphabetical for method
responses, ``channel, type, data`` for data frames. Book levels, the hot path, are joined
by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec

from kraken_proto.simulator.market import Candle, Level, TickerStats, TradeRecord
from kraken_proto.simulator.verify import decimal_text

__all__ = [
    "HEARTBEAT",
    "book_frame",
    "candle_data",
    "encode",
    "float_number",
    "instrument_frame",
    "number",
    "ohlc_frame",
    "rfc3339",
    "rfc3339_ns",
    "rfc3339_s",
    "status_frame",
    "ticker_frame",
    "trade_frame",
]

HEARTBEAT = '{"channel":"heartbeat"}'
"""The heartbeat frame: nothing but its channel."""

_ENCODER = msgspec.json.Encoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def encode(value: Any) -> str:
    """JSON text of ``value`` (dicts keep their key order)."""
    return _ENCODER.encode(value).decode()


def number(value: Decimal) -> msgspec.Raw:
    """``value`` as a raw JSON number token with all its digits, e.g. ``0.00005100``."""
    return msgspec.Raw(decimal_text(value))


def float_number(value: Decimal) -> msgspec.Raw:
    """``value`` as Kraken's documented examples write it: Python's float text.

    ``132.9995``, ``0.0``, ``1000000.0``, ``5e-05``: the shortest text that reads back as
    the same float (exact for the simulator's values, which have at most 15 significant
    digits). Used by the instrument and private channels; book numbers keep every digit
    of the pair's precision (:func:`number`).
    """
    return msgspec.Raw(repr(float(value)))


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"


def _utc(micros: int) -> tuple[str, int]:
    seconds, fraction = divmod(micros, 1_000_000)
    return _second(seconds), fraction


def rfc3339(seconds: float) -> str:
    """RFC3339 UTC text with microseconds: ``2026-08-01T02:53:53.184174Z``."""
    whole, fraction = _utc(round(seconds * 1_000_000))
    return f"{whole}.{fraction:06d}Z"


def rfc3339_s(seconds: float) -> str:
    """RFC3339 UTC text with whole seconds: ``2023-09-21T15:49:29Z`` (rounded down)."""
    return f"{_second(math.floor(seconds))}Z"


def rfc3339_ns(seconds: float) -> str:
    """RFC3339 UTC text with nanoseconds: ``2026-09-25T17:48:26.844359566Z``.

    All nine digits come from ``seconds`` (a whole second stays ``.000000000``), as on
    Kraken's ohlc and level3 frames, not a microsecond value padded with zeros.
    """
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1_000_000_000)
    if nanos == 1_000_000_000:
        whole, nanos = whole + 1, 0
    return f"{_second(whole)}.{nanos:09d}Z"


def status_frame(version: str, system: str, connection_id: int) -> str:
    """The status frame pushed at connect, keys in wire order.

    With the empty ``upcoming_maintenance`` and ``emergency`` lists that Kraken's status
    frames carry since September 2026.
    """
    return encode(
        {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "version": version,
                    "system": system,
                    "api_version": "v2",
                    "connection_id": connection_id,
                    "upcoming_maintenance": [],
                    "emergency": [],
                }
            ],
        }
    )


def _levels(levels: Iterable[Level]) -> str:
    return ",".join(
        [
            f'{{"price":{decimal_text(level.price)},"qty":{decimal_text(level.qty)}}}'
            for level in levels
        ]
    )


def book_frame(
    kind: str,
    symbol: str,
    bids: Iterable[Level],
    asks: Iterable[Level],
    checksum: int,
    timestamp: str,
) -> str:
    """A book snapshot or update (levels best first), numbers at the pair's precision."""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{encode(symbol)},'
        f'"bids":[{_levels(bids)}],"asks":[{_levels(asks)}],'
        f'"checksum":{checksum},"timestamp":"{timestamp}"}}]}}'
    )


def ticker_frame(kind: str, symbol: str, stats: TickerStats, timestamp: str) -> str:
    """A ticker snapshot or update for one symbol."""
    entry = {
        "symbol": symbol,
        "bid": number(stats.bid),
        "bid_qty": number(stats.bid_qty),
        "ask": number(stats.ask),
        "ask_qty": number(stats.ask_qty),
        "last": number(stats.last),
        "volume": number(stats.volume),
        "vwap": number(stats.vwap),
        "low": number(stats.low),
        "high": number(stats.high),
        "change": number(stats.change),
        "change_pct": number(stats.change_pct),
        "trades": stats.trades,
        "timestamp": timestamp,
    }
    return encode({"channel": "ticker", "type": kind, "data": [entry]})


def trade_frame(kind: str, symbol: str, trades: Iterable[TradeRecord]) -> str:
    """A trade snapshot or update: one entry per trade, in order."""
    data = [
        {
            "symbol": symbol,
            "side": trade.side,
            "price": number(trade.price),
            "qty": number(trade.qty),
            "ord_type": trade.ord_type,
            "trade_id": trade.trade_id,
            "timestamp": rfc3339(trade.time),
        }
        for trade in trades
    ]
    return encode({"channel": "trade", "type": kind, "data": data})


def candle_data(symbol: str, candle: Candle) -> dict[str, Any]:
    """One ohlc entry; ``timestamp`` (deprecated) is the end of the interval."""
    return {
        "symbol": symbol,
        "open": number(candle.open),
        "high": number(candle.high),
        "low": number(candle.low),
        "close": number(candle.close),
        "trades": candle.trades,
        "volume": number(candle.volume),
        "vwap": number(candle.vwap),
        "interval_begin": rfc3339_ns(candle.begin),
        "interval": candle.interval,
        "timestamp": rfc3339(candle.begin + candle.interval * 60),
    }


def ohlc_frame(kind: str, symbol: str, candles: Sequence[Candle], timestamp: str) -> str:
    """An ohlc snapshot or update; ``timestamp`` is the frame's nanosecond time."""
    return encode(
        {
            "channel": "ohlc",
            "type": kind,
            "timestamp": timestamp,
            "data": [candle_data(symbol, candle) for candle in candles],
        }
    )


def instrument_frame(assets: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> str:
    """The instrument snapshot: ``data`` is an object, not a list."""
    return encode(
        {"channel": "instrument", "type": "snapshot", "data": {"assets": assets, "pairs": pairs}}
    )
