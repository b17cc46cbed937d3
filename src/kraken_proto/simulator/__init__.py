"""A sans-IO fake of Kraken's Spot WebSocket v2 hosts, for tests and demos.

:class:`FakeExchange` holds seeded markets (:class:`MarketModel`), a simulated account with
a matching engine, and hands out one :class:`ExchangeConnection` per client socket on the
``public``, ``auth`` or ``level3`` host; it also answers the REST token request
(:meth:`FakeExchange.handle_token_request`, signed with :data:`SIM_API_KEY` /
:data:`SIM_API_SECRET`). Faults (:mod:`kraken_proto.simulator.faults`) can be injected into a
connection at once or on a schedule. ``kraken_transports.simserver`` serves it on loopback.
"""

from kraken_proto.simulator.account import DEFAULT_BALANCES
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET
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
    LoseResponse,
    MalformedFrame,
    RateLimit,
    RevokeTokens,
    SequenceGap,
    SlowSender,
    Stall,
    TokenError,
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
    "DEFAULT_BALANCES",
    "DEFAULT_SYMBOLS",
    "SIM_API_KEY",
    "SIM_API_SECRET",
    "BookDelta",
    "Candle",
    "Close",
    "CorruptChecksum",
    "Drop",
    "ExchangeConnection",
    "FakeExchange",
    "Fault",
    "Level",
    "LoseResponse",
    "MalformedFrame",
    "MarketModel",
    "MarketStep",
    "RateLimit",
    "RevokeTokens",
    "SequenceGap",
    "ServerAction",
    "SlowSender",
    "Stall",
    "SymbolSpec",
    "TickerStats",
    "TokenError",
    "TradeRecord",
    "TruncatedFrame",
]
