"""Builders of Kraken v2 frames for tests, with checksums computed from a naive model."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from kraken_proto.checksum import book_checksum


def ack(
    channel: str, symbol: str | None, req_id: int | None, method: str = "subscribe", **extra: Any
) -> str:
    """A success ack, keys in Kraken's alphabetical order."""
    result: dict[str, Any] = {"channel": channel, **extra}
    if symbol is not None:
        result["symbol"] = symbol
    frame: dict[str, Any] = {"method": method}
    if req_id is not None:
        frame["req_id"] = req_id
    frame.update(result=dict(sorted(result.items())), success=True)
    frame.update(time_in="2026-08-01T02:53:53.184174Z", time_out="2026-08-01T02:53:53.184216Z")
    return json.dumps(frame)


def error(
    error_text: str, req_id: int | None, symbol: str | None = None, method: str = "subscribe"
) -> str:
    """An error response (no result; the failing symbol at top level)."""
    frame: dict[str, Any] = {"error": error_text, "method": method}
    if req_id is not None:
        frame["req_id"] = req_id
    frame["success"] = False
    if symbol is not None:
        frame["symbol"] = symbol
    frame.update(time_in="2026-08-01T02:53:53.184174Z", time_out="2026-08-01T02:53:53.184216Z")
    return json.dumps(frame)


HEARTBEAT = '{"channel":"heartbeat"}'
STATUS = (
    '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online",'
    '"api_version":"v2","connection_id":18125794168470749634}]}'
)


class NaiveBook:
    """A dict book that renders frames the way Kraken does, padded to a precision."""

    def __init__(self, symbol: str, depth: int = 10, price_dp: int = 1, qty_dp: int = 8) -> None:
        self.symbol = symbol
        self.depth = depth
        self.price_dp = price_dp
        self.qty_dp = qty_dp
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def _fmt(self, value: Decimal, dp: int) -> str:
        return format(value.quantize(Decimal(1).scaleb(-dp)), "f")

    def _apply(self, side: dict[Decimal, Decimal], levels: list[tuple[str, str]]) -> None:
        for price, qty in levels:
            if Decimal(qty) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = Decimal(qty)

    def _truncate(self) -> None:
        for price in sorted(self.bids, reverse=True)[self.depth :]:
            del self.bids[price]
        for price in sorted(self.asks)[self.depth :]:
            del self.asks[price]

    def checksum(self) -> int:
        asks = sorted(self.asks.items())
        bids = sorted(self.bids.items(), reverse=True)
        return book_checksum(asks, bids, self.price_dp, self.qty_dp)

    def frame(
        self,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        *,
        snapshot: bool = False,
        checksum: int | None = None,
    ) -> str:
        """Apply the levels and render the frame Kraken would send for them."""
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        self._apply(self.bids, bids)
        self._apply(self.asks, asks)
        self._truncate()

        def render(levels: list[tuple[str, str]]) -> str:
            return ",".join(
                f'{{"price":{self._fmt(Decimal(p), self.price_dp)},'
                f'"qty":{self._fmt(Decimal(q), self.qty_dp)}}}'
                for p, q in levels
            )

        crc = self.checksum() if checksum is None else checksum
        kind = "snapshot" if snapshot else "update"
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{self.symbol}",'
            f'"bids":[{render(bids)}],"asks":[{render(asks)}],"checksum":{crc},'
            f'"timestamp":"2026-08-01T02:53:53.398143Z"}}]}}'
        )

    def snapshot(self, mid: int = 100, levels: int = 10) -> str:
        """A snapshot of ``levels`` levels per side around ``mid``."""
        bids = [(f"{mid - 1 - i}.0", f"1.{i:08d}") for i in range(levels)]
        asks = [(f"{mid + 1 + i}.0", f"2.{i:08d}") for i in range(levels)]
        return self.frame(bids, asks, snapshot=True)


def trade(symbol: str, trade_id: int, price: str = "100.5", qty: str = "0.5") -> str:
    """A one-trade update frame."""
    return (
        f'{{"channel":"trade","type":"update","data":[{{"symbol":"{symbol}","side":"buy",'
        f'"price":{price},"qty":{qty},"ord_type":"limit","trade_id":{trade_id},'
        f'"timestamp":"2026-09-25T17:48:26.844359Z"}}]}}'
    )


def ticker(symbol: str, bid: str = "99.0", ask: str = "101.0") -> str:
    """A ticker update frame."""
    return (
        f'{{"channel":"ticker","type":"update","data":[{{"symbol":"{symbol}","bid":{bid},'
        f'"bid_qty":1.5,"ask":{ask},"ask_qty":2.5,"last":100.0,"volume":1000.5,"vwap":100.1,'
        f'"low":95.0,"high":105.0,"change":1.0,"change_pct":1.01,'
        f'"timestamp":"2026-09-25T17:48:26.844359Z"}}]}}'
    )


def instrument(symbol: str, price_precision: int, qty_precision: int) -> str:
    """An instrument snapshot with one pair."""
    base, quote = symbol.split("/")
    return json.dumps(
        {
            "channel": "instrument",
            "type": "snapshot",
            "data": {
                "assets": [{"id": base, "status": "enabled", "precision": 10}],
                "pairs": [
                    {
                        "symbol": symbol,
                        "base": base,
                        "quote": quote,
                        "status": "online",
                        "qty_precision": qty_precision,
                        "price_precision": price_precision,
                    }
                ],
            },
        }
    )
