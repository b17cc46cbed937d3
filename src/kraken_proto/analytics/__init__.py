"""Analytics over live books and event streams, sans-IO and exact.

Pure functions read an :class:`~kraken_proto.OrderBook` (or a level3
:class:`~kraken_proto.L3Book` where that makes sense) and return frozen values; trackers are
fed events together with ``now`` by their caller and never read a clock. Every price and
quantity is a :class:`~decimal.Decimal` computed exactly from Kraken's own text, and every
quotient correctly rounded to :data:`QUOTIENT_DIGITS` digits, whatever the thread's decimal
context; times (``now``, ``at``, latency figures) are seconds as ``float``, being
measurements rather than prices. A book that is not live raises
:class:`~kraken_proto.BookNotLiveError` as the book's own queries do; an argument out of
range raises :class:`~kraken_proto.LocalProtocolError` naming the argument and what is
allowed (quantities, multiples and tick sizes are a ``Decimal``, an ``int`` or a numeric
``str``, never a float; times are an ``int`` or a ``float``).

Modules: :mod:`~kraken_proto.analytics.depth` (ladder, buckets, imbalance, pressure,
microprice) and :mod:`~kraken_proto.analytics.fill` (fill estimate) are the book functions;
:mod:`~kraken_proto.analytics.flow` (large orders), :mod:`~kraken_proto.analytics.trades`
(volume at price), :mod:`~kraken_proto.analytics.health` (market status) and
:mod:`~kraken_proto.analytics.latency` (latency histograms) the trackers. Sides are a
taker's ``"buy"``/``"sell"`` where an order or a trade is meant (``fill_estimate``,
``Trade``) and the book's ``"bid"``/``"ask"`` where a resting level is (``FlowEvent``).
"""

from __future__ import annotations

from kraken_proto.analytics.depth import (
    QUOTIENT_DIGITS,
    AggregatedBook,
    AggregatedLevel,
    BookPressure,
    DepthLadder,
    ImbalanceMetrics,
    LadderLevel,
    PressureSignal,
    PressureThresholds,
    aggregate,
    book_pressure,
    depth_ladder,
    imbalance,
    imbalance_metrics,
    microprice,
)
from kraken_proto.analytics.fill import FillEstimate, fill_estimate
from kraken_proto.analytics.flow import (
    FlowEvent,
    FlowEventKind,
    LargeLevel,
    LargeOrderThreshold,
    OrderFlowTracker,
    ThresholdKind,
)
from kraken_proto.analytics.health import (
    TRADING_STATUSES,
    MarketHealth,
    MarketHealthTracker,
    MarketStatus,
)
from kraken_proto.analytics.latency import (
    DIRECTIONS,
    LATENCY_CHANNELS,
    ChannelLatency,
    ClockOffset,
    LatencyHistogram,
    LatencyPercentiles,
    LatencyReport,
    LatencySampler,
    LatencyTracker,
    pong_times,
)
from kraken_proto.analytics.trades import PriceLevelActivity, TradeOverlay, TradesByPriceLevel

__all__ = [
    "DIRECTIONS",
    "LATENCY_CHANNELS",
    "QUOTIENT_DIGITS",
    "TRADING_STATUSES",
    "AggregatedBook",
    "AggregatedLevel",
    "BookPressure",
    "ChannelLatency",
    "ClockOffset",
    "DepthLadder",
    "FillEstimate",
    "FlowEvent",
    "FlowEventKind",
    "ImbalanceMetrics",
    "LadderLevel",
    "LargeLevel",
    "LargeOrderThreshold",
    "LatencyHistogram",
    "LatencyPercentiles",
    "LatencyReport",
    "LatencySampler",
    "LatencyTracker",
    "MarketHealth",
    "MarketHealthTracker",
    "MarketStatus",
    "OrderFlowTracker",
    "PressureSignal",
    "PressureThresholds",
    "PriceLevelActivity",
    "ThresholdKind",
    "TradeOverlay",
    "TradesByPriceLevel",
    "aggregate",
    "book_pressure",
    "depth_ladder",
    "fill_estimate",
    "imbalance",
    "imbalance_metrics",
    "microprice",
    "pong_times",
]
