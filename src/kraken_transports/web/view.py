"""The view model of the live order-book page: one JSON-able frame, free of IO.

:func:`build_view` turns one symbol's book and trackers into the dict the server pushes to
the page. Every figure in it is computed here by :mod:`kraken_proto.analytics` from the
book as it is at that instant; the page only lays it out. Decimals travel as strings of
their exact digits (``"63000.10"``), positional, never in exponent form; where a figure
is shown rounded (a percentage, the imbalance, basis points, the microprice) the frame
carries both the exact value and the text shown.

The frame (see ``docs/web.md`` for every key):

- ``symbol``, ``symbols`` (the served pairs), ``tick`` (the aggregation tick size or
  null), ``tick_choices``, ``connection`` (the connection state) and ``book_state``;
  ``live``: whether the book is live on a connection that delivers data. When it is not,
  ``header``, ``asks``, ``bids`` and ``chart`` are empty and the page shows the state
  instead of numbers.
- ``header``: best bid and ask, mid, spread and its basis points
  (:func:`~kraken_proto.analytics.depth_ladder`), the microprice
  (:func:`~kraken_proto.analytics.microprice`), the imbalance of the best
  :data:`~kraken_transports.ladder.IMBALANCE_LEVELS` levels with its pressure signal
  (:func:`~kraken_proto.analytics.book_pressure`) and their VWAPs
  (:func:`~kraken_proto.analytics.imbalance_metrics`).
- ``asks`` and ``bids``, best first: the ladder rows. Without a tick a row is a level of
  :func:`~kraken_proto.analytics.depth_ladder`; with one, a bucket of
  :func:`~kraken_proto.analytics.aggregate` whose cumulative size and percentage are read
  from :func:`~kraken_proto.analytics.depth_ladder` at the last level the bucket holds (so
  they too are the analytics' own). Each row carries the trades at the prices it covers
  (:class:`~kraken_proto.analytics.TradesByPriceLevel` per exact price, summed over the
  row's bucket) and whether an :class:`~kraken_proto.analytics.OrderFlowTracker` counts
  its price as a large level.
- ``chart``: cumulative size against price over every level of the book's view, per side.
- ``market`` (:class:`~kraken_proto.analytics.MarketHealthTracker`), ``latency`` (the
  book channel's p50/p99 from the client's :class:`~kraken_proto.analytics.LatencyReport`),
  ``counters``, ``trades`` (the last ones), ``volume`` (the trade overlay by price level
  with its point of control) and ``flow`` (the last large-order events).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from kraken_proto.analytics import (
    FlowEvent,
    LadderLevel,
    LargeLevel,
    LatencyReport,
    PriceLevelActivity,
    TradeOverlay,
    TradesByPriceLevel,
    aggregate,
    book_pressure,
    depth_ladder,
    imbalance_metrics,
    microprice,
)
from kraken_proto.book import OrderBook
from kraken_proto.errors import LocalProtocolError
from kraken_transports.ladder import (
    IMBALANCE_LEVELS,
    LatencyFigures,
    MarketTracker,
    clock_text,
    duration_text,
    microprice_text,
    number_text,
)

__all__ = [
    "LIVE_CONNECTION_STATES",
    "TICK_MULTIPLES",
    "FlowRecord",
    "ViewInputError",
    "build_view",
    "parse_tick",
    "tick_choices",
]

LIVE_CONNECTION_STATES = frozenset({"subscribed", "resyncing"})
"""Connection states in which a live book's figures are current (``resyncing`` is about
some book, maybe another symbol's: the book's own state tells)."""

TICK_MULTIPLES = (10, 100, 1000)
"""The aggregation ticks the page offers: these multiples of the pair's price increment."""

VOLUME_LEVELS_SHOWN = 14
"""How many trade price levels the volume panel lists (the busiest ones)."""

_MAX_TICK_TEXT = 40  # characters of a tick size in a query string
_EXACT = Context(prec=1000)  # sums of quantities: never rounded
_ZERO = Decimal(0)
_ONE_PLACE = Decimal("0.1")
_TWO_PLACES = Decimal("0.01")
_THREE_PLACES = Decimal("0.001")


class ViewInputError(ValueError):
    """A bad value from the page's query string; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class FlowRecord:
    """A large-order event and the Kraken time of the book update that caused it."""

    event: FlowEvent
    """What the :class:`~kraken_proto.analytics.OrderFlowTracker` reported."""
    timestamp: str | None
    """The update's Kraken timestamp (RFC 3339), if it had one."""


def parse_tick(text: str | None) -> Decimal | None:
    """The tick size of a query string: ``None`` for none (absent, empty or ``"none"``).

    Raises :class:`ViewInputError` naming ``tick`` unless ``text`` is a positive decimal
    number the analytics accept (between 1E-64 and 1E+64).
    """
    if text is None or text.strip() in ("", "none"):
        return None
    shown = text if len(text) <= _MAX_TICK_TEXT else text[:_MAX_TICK_TEXT] + "…"
    if len(text) > _MAX_TICK_TEXT:
        raise ViewInputError(f"tick must be a positive decimal number such as 0.5, got {shown!r}")
    try:
        tick = Decimal(text.strip())
    except InvalidOperation:
        raise ViewInputError(
            f"tick must be a positive decimal number such as 0.5, got {shown!r}"
        ) from None
    if not tick.is_finite() or tick <= 0:
        raise ViewInputError(f"tick must be a positive decimal number such as 0.5, got {shown!r}")
    try:
        TradesByPriceLevel(1.0, tick_size=tick)  # the analytics' own bounds
    except LocalProtocolError as exc:
        raise ViewInputError(f"tick: {exc}") from None
    return tick


def tick_choices(book: OrderBook | None, price: Decimal | None) -> list[str]:
    """The ticks the page offers: :data:`TICK_MULTIPLES` of the pair's price increment (its
    ``price_precision``, else the decimals of ``price``, a price of the book)."""
    places = None if book is None else book.price_precision
    if places is None and price is not None:
        exponent = price.as_tuple().exponent
        if isinstance(exponent, int):
            places = -exponent
    if places is None:
        return []
    increment = Decimal(1).scaleb(-places)
    return [number_text((increment * multiple).normalize()) for multiple in TICK_MULTIPLES]


def _text(value: Decimal | None) -> str | None:
    """The exact digits of ``value`` (positional), or None."""
    return None if value is None else number_text(value)


def _rounded(value: Decimal | None, quantum: Decimal, *, sign: bool = False) -> str | None:
    """``value`` rounded half-even to ``quantum`` for display (``+`` shown with ``sign``)."""
    if value is None:
        return None
    text = number_text(value.quantize(quantum, rounding=ROUND_HALF_EVEN))
    return f"+{text}" if sign and not text.startswith("-") else text


def _figure(value: Decimal | None, text: str | None = None) -> dict[str, str | None]:
    """A figure as its exact value and the text shown (the exact value if no ``text``)."""
    exact = _text(value)
    return {"value": exact, "text": exact if text is None else text}


def _traded(
    prices: TradeOverlay, price: Decimal, tick: Decimal | None, side: str
) -> dict[str, Any] | None:
    """The trades at the prices a ladder row covers: ``price`` itself without a tick; with
    one, the row's bucket as :func:`~kraken_proto.analytics.aggregate` makes it (a bid
    bucket is ``[price, price + tick)``, an ask bucket ``(price - tick, price]``), summed
    from ``prices`` (the overlay of exact prices)."""
    levels: tuple[PriceLevelActivity, ...]
    if tick is None:
        found = prices.level(price)
        levels = () if found is None else (found,)
    elif side == "bid":
        high = _EXACT.add(price, tick)
        levels = tuple(level for level in prices.levels if price <= level.price < high)
    else:
        low = _EXACT.subtract(price, tick)
        levels = tuple(level for level in prices.levels if low < level.price <= price)
    if not levels:
        return None
    buy = sell = _ZERO
    for level in levels:
        buy, sell = _EXACT.add(buy, level.buy_qty), _EXACT.add(sell, level.sell_qty)
    return {
        "count": sum(level.trade_count for level in levels),
        "buy": _text(buy),
        "sell": _text(sell),
        "volume": _text(_EXACT.add(buy, sell)),
    }


def _row(
    level: LadderLevel,
    price: Decimal,
    qty: Decimal,
    levels: int,
    traded: dict[str, Any] | None,
    large: frozenset[Decimal],
) -> dict[str, Any]:
    return {
        "price": _text(price),
        "qty": _text(qty),
        "levels": levels,
        "cumulative": _text(level.cumulative_qty),
        "percent": _text(level.cumulative_percent),
        "percent_text": _rounded(level.cumulative_percent, _ONE_PLACE),
        "large": price in large,
        "traded": traded,
    }


def _side_rows(
    book: OrderBook,
    side: str,
    rows: int,
    tick: Decimal | None,
    prices: TradeOverlay,
    large: frozenset[Decimal],
) -> list[dict[str, Any]]:
    """The ladder rows of one side, best first (see the module's docstring)."""
    if tick is None:
        ladder = depth_ladder(book, rows)
        levels = ladder.bids if side == "bid" else ladder.asks
        return [
            _row(level, level.price, level.qty, 1, _traded(prices, level.price, None, side), large)
            for level in levels
        ]
    grouped = aggregate(book, tick)
    buckets = (grouped.bids if side == "bid" else grouped.asks)[:rows]
    held = sum(bucket.level_count for bucket in buckets)
    if not held:
        return []
    ladder = depth_ladder(book, held)
    levels = ladder.bids if side == "bid" else ladder.asks
    out = []
    last = 0
    for bucket in buckets:
        last += bucket.level_count
        out.append(
            _row(
                levels[last - 1],
                bucket.price,
                bucket.qty,
                bucket.level_count,
                _traded(prices, bucket.price, tick, side),
                large,
            )
        )
    return out


def _header(book: OrderBook) -> dict[str, Any]:
    """The header figures of a live ``book``, all by the analytics."""
    top = depth_ladder(book, 1)
    pressure = book_pressure(book, IMBALANCE_LEVELS)
    metrics = imbalance_metrics(book, IMBALANCE_LEVELS)
    micro = microprice(book)
    best_bid = top.bids[0] if top.bids else None
    best_ask = top.asks[0] if top.asks else None
    reference = None if best_bid is None else best_bid.price
    return {
        "best_bid": _figure(None if best_bid is None else best_bid.price),
        "best_bid_qty": _figure(None if best_bid is None else best_bid.qty),
        "best_ask": _figure(None if best_ask is None else best_ask.price),
        "best_ask_qty": _figure(None if best_ask is None else best_ask.qty),
        "mid": _figure(top.mid),
        "spread": _figure(top.spread),
        "spread_bps": _figure(top.spread_bps, _rounded(top.spread_bps, _TWO_PLACES)),
        "microprice": _figure(micro, None if micro is None else microprice_text(micro, reference)),
        "imbalance": _figure(
            pressure.imbalance, _rounded(pressure.imbalance, _THREE_PLACES, sign=True)
        ),
        "imbalance_levels": IMBALANCE_LEVELS,
        "signal": pressure.signal.value,
        "bid_qty": _figure(metrics.bid_qty),
        "ask_qty": _figure(metrics.ask_qty),
        "bid_vwap": _figure(metrics.bid_vwap),
        "ask_vwap": _figure(metrics.ask_vwap),
    }


def _chart(book: OrderBook) -> dict[str, list[list[str | None]]]:
    """``[price, cumulative]`` of every level within the book's view, per side, best first."""
    ladder = depth_ladder(book, book.view_depth)
    return {
        "bids": [[_text(level.price), _text(level.cumulative_qty)] for level in ladder.bids],
        "asks": [[_text(level.price), _text(level.cumulative_qty)] for level in ladder.asks],
    }


def _latency(report: LatencyReport | None) -> dict[str, Any] | None:
    figures = LatencyFigures.of(report)
    if figures is None:
        return None
    return {
        "delivery_p50": figures.delivery_p50,
        "delivery_p99": figures.delivery_p99,
        "exchange_p50": figures.exchange_p50,
        "exchange_p99": figures.exchange_p99,
        "delivery_p50_text": duration_text(figures.delivery_p50),
        "delivery_p99_text": duration_text(figures.delivery_p99),
        "exchange_p50_text": duration_text(figures.exchange_p50),
        "exchange_p99_text": duration_text(figures.exchange_p99),
    }


def _volume(overlay: TradeOverlay, window: float) -> dict[str, Any]:
    """The trade overlay: totals, point of control and the busiest levels by price."""
    busiest = sorted(overlay.levels, key=lambda level: level.volume, reverse=True)
    shown = sorted(busiest[:VOLUME_LEVELS_SHOWN], key=lambda level: level.price, reverse=True)
    return {
        "window": window,
        "trade_count": overlay.trade_count,
        "buy": _text(overlay.buy_qty),
        "sell": _text(overlay.sell_qty),
        "vwap": _text(overlay.vwap),
        "vwap_text": microprice_text(overlay.vwap, overlay.point_of_control),
        "point_of_control": _text(overlay.point_of_control),
        "levels": [
            {
                "price": _text(level.price),
                "count": level.trade_count,
                "buy": _text(level.buy_qty),
                "sell": _text(level.sell_qty),
                "volume": _text(level.volume),
                "vwap": _text(level.vwap),
                "control": level.price == overlay.point_of_control,
            }
            for level in shown
        ],
    }


def _flow(records: Sequence[FlowRecord]) -> list[dict[str, Any]]:
    """The large-order events, most recent first."""
    return [
        {
            "kind": record.event.kind.value,
            "side": record.event.side,
            "price": _text(record.event.price),
            "qty": _text(record.event.qty),
            "previous_qty": _text(record.event.previous_qty),
            "threshold": _text(record.event.threshold),
            "time": clock_text(record.timestamp) if record.timestamp else None,
        }
        for record in reversed(records)
    ]


def build_view(
    *,
    symbol: str,
    symbols: Sequence[str],
    book: OrderBook | None,
    tracker: MarketTracker,
    overlay: TradeOverlay,
    prices: TradeOverlay,
    large: Sequence[LargeLevel],
    flow: Sequence[FlowRecord],
    latency: LatencyReport | None,
    now: float,
    tick: Decimal | None,
    rows: int,
    trade_window: float,
) -> dict[str, Any]:
    """The frame of ``symbol`` at ``now`` (the driver's clock): see the module docstring.

    ``book`` is the client's book of ``symbol``, ``tracker`` follows the client's events
    for it, ``overlay`` is the trades of the last ``trade_window`` seconds by price level
    (bucketed by ``tick``: the volume panel) and ``prices`` the same by exact price (the
    ladder rows sum it over their buckets; the same overlay as ``overlay`` without a
    tick), ``large`` and ``flow`` the order-flow tracker's large levels and last events,
    ``latency`` the client's report (``None``: not tracked); ``rows`` is the ladder's rows
    per side. Raises :class:`~kraken_proto.LocalProtocolError` for a ``rows`` that is not
    an int >= 1 (as the analytics do).
    """
    connection = tracker.state
    book_state = "absent" if book is None else book.state.value
    live = book is not None and book.is_live and connection in LIVE_CONNECTION_STATES
    header: dict[str, Any] | None = None
    asks: list[dict[str, Any]] = []
    bids: list[dict[str, Any]] = []
    chart: dict[str, list[list[str | None]]] = {"bids": [], "asks": []}
    choices: list[str] = []
    if live:  # every figure below from this one state of the book (no await in between)
        assert book is not None
        header = _header(book)
        bid_large = frozenset(level.price for level in large if level.side == "bid")
        ask_large = frozenset(level.price for level in large if level.side == "ask")
        asks = _side_rows(book, "ask", rows, tick, prices, ask_large)
        bids = _side_rows(book, "bid", rows, tick, prices, bid_large)
        chart = _chart(book)
        best = book.best_bid()
        choices = tick_choices(book, None if best is None else best.price)
    market = tracker.health.check_status(symbol, now)
    return {
        "type": "frame",
        "symbol": symbol,
        "symbols": list(symbols),
        "tick": _text(tick),
        "tick_choices": choices,
        "connection": connection,
        "connection_reason": tracker.state_reason,
        "book_state": book_state,
        "live": live,
        "market": market.value,
        "header": header,
        "asks": asks,
        "bids": bids,
        "chart": chart,
        "latency": _latency(latency),
        "counters": {
            "verified": tracker.verified,
            "resyncs": tracker.resyncs,
            "trades": tracker.trade_count,
            "events": tracker.events,
        },
        "trades": [
            {
                "time": clock_text(trade.timestamp),
                "side": trade.side,
                "price": _text(trade.price),
                "qty": _text(trade.qty),
            }
            for trade in reversed(tracker.trades)
        ],
        "volume": _volume(overlay, trade_window),
        "flow": _flow(flow),
    }
