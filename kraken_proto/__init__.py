"""kraken_proto: the sans-IO core of kraken-ws-sdk.

One protocol object (:class:`KrakenProtocol`) turns Kraken v2 WebSocket frames into typed
events and asks its driver for IO through actions. Nothing here opens a socket, reads a
clock or starts a thread, so it runs identically under asyncio, threads, your own event
loop, or a test replaying recorded frames.
"""

from kraken_proto.actions import (
    Action,
    CloseConnection,
    Emit,
    FetchToken,
    HttpRequest,
    OpenConnection,
    ReconnectAfter,
    Send,
)
from kraken_proto.book import BookState, OrderBook
from kraken_proto.config import (
    BackpressureConfig,
    ClientConfig,
    DropPolicy,
    GapPolicy,
    Precision,
    ReconnectConfig,
)
from kraken_proto.errors import (
    AuthenticationError,
    BookNotLiveError,
    ConfigurationError,
    KrakenConnectionError,
    KrakenError,
    LocalProtocolError,
    NetworkError,
    ParseError,
    SubscriptionError,
)
from kraken_proto.events import (
    OHLC,
    BookLevel,
    BookResync,
    BookUpdate,
    Dropped,
    Event,
    Instrument,
    InstrumentAsset,
    InstrumentPair,
    Pong,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SystemStatus,
    Ticker,
    Trade,
    Unsubscribed,
    parse_timestamp,
)
from kraken_proto.protocol import KrakenProtocol
from kraken_proto.replay import CaptureLine, ReplayResult, read_capture
from kraken_proto.state import ConnectionState
from kraken_proto.subscriptions import SubscriptionInfo, SubscriptionStatus, SubscriptionsView

__version__ = "0.1.0"

__all__ = [
    "OHLC",
    "Action",
    "AuthenticationError",
    "BackpressureConfig",
    "BookLevel",
    "BookNotLiveError",
    "BookResync",
    "BookState",
    "BookUpdate",
    "CaptureLine",
    "ClientConfig",
    "CloseConnection",
    "ConfigurationError",
    "ConnectionState",
    "DropPolicy",
    "Dropped",
    "Emit",
    "Event",
    "FetchToken",
    "GapPolicy",
    "HttpRequest",
    "Instrument",
    "InstrumentAsset",
    "InstrumentPair",
    "KrakenConnectionError",
    "KrakenError",
    "KrakenProtocol",
    "LocalProtocolError",
    "NetworkError",
    "OpenConnection",
    "OrderBook",
    "ParseError",
    "Pong",
    "Precision",
    "ProtocolError",
    "ReconnectAfter",
    "ReconnectConfig",
    "ReplayResult",
    "Send",
    "StateChanged",
    "Subscribed",
    "SubscriptionError",
    "SubscriptionFailed",
    "SubscriptionInfo",
    "SubscriptionStatus",
    "SubscriptionsView",
    "SystemStatus",
    "Ticker",
    "Trade",
    "Unsubscribed",
    "__version__",
    "parse_timestamp",
    "read_capture",
]
