"""A sans-IO fake of Kraken's Spot WebSocket v2 public host, for tests and demos.

:class:`FakeExchange` holds seeded markets (:class:`MarketModel`) and hands out one
:class:`ExchangeConnection` per client socket; faults (:mod:`kraken_proto.simulator.faults`)
can be injected into a connection at once or on a schedule. ``kraken_transports.simserver``
serves it on a loopback WebSocket.
"""

from kraken_proto.simulator.exchange import (
    DEFAULT_SYMBOLS,
    ExchangeConnection,
    FakeExchange,
    ServerAction,
    SymbolSpec,
)
from kraken_proto.simulator.faults import (
    Close,
    CorruptChecksum,
    Drop,
    Fault,
    MalformedFrame,
    RateLimit,
    SlowSender,
    Stall,
    TruncatedFrame,
)
from kraken_proto.simulator.market import (
    BookDelta,
    Candle,
    Level,
    MarketModel,
    MarketStep,
    TickerStats,
    TradeRecord,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "BookDelta",
    "Candle",
    "Close",
    "CorruptChecksum",
    "Drop",
    "ExchangeConnection",
    "FakeExchange",
    "Fault",
    "Level",
    "MalformedFrame",
    "MarketModel",
    "MarketStep",
    "RateLimit",
    "ServerAction",
    "SlowSender",
    "Stall",
    "SymbolSpec",
    "TickerStats",
    "TradeRecord",
    "TruncatedFrame",
]
