"""The order book ladder of ``kraken-ws demo`` and ``kraken-ws book``: plain text, no deps.

Two pieces, both free of IO:

- :class:`MarketTracker` follows one symbol from a client's events (register
  :meth:`MarketTracker.feed` with ``client.on(None, ...)``): connection state, verified
  book updates, resyncs, the last trades, the ticker and the event rate.
- :func:`render_ladder` draws a full-screen frame (asks above bids with depth bars,
  spread, mid, last trades) that keeps to a given terminal width (80 columns by default)
  and :func:`render_line` a one-line frame for logs; :func:`render_summary` is the closing
  line. :func:`take_view` freezes what they show from a tracker and the client's
  :class:`~kraken_proto.book.OrderBook`.

The header also shows the book's analytics (:mod:`kraken_proto.analytics`): the
microprice, the imbalance of the top :data:`IMBALANCE_LEVELS` levels with its pressure
signal, the market status (a :class:`~kraken_proto.analytics.MarketHealthTracker` the
tracker feeds with every event) and the book channel's latency p50/p99 (receive ->
delivery, and exchange -> receive once a clock offset is known) from the client's
:class:`~kraken_proto.analytics.LatencyReport`. They are computed by :func:`take_view`,
once per frame, never per event; a book that is not live shows its status and no book
analytics. :func:`ladder_json` is the same as one JSON object (``kraken-ws book --json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import textwrap
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Context, Decimal
from typing import Any

import msgspec

from kraken_proto.analytics import (
    LatencyReport,
    MarketHealthTracker,
    MarketStatus,
    PressureSignal,
    book_pressure,
    depth_ladder,
    microprice,
)
from kraken_proto.book import OrderBook
from kraken_proto.checksum import plain
from kraken_proto.errors import BookNotLiveError
from kraken_proto.events import (
    BookLevel,
    BookResync,
    BookUpdate,
    Event,
    StateChanged,
    Ticker,
    Trade,
)

__all__ = [
    "IMBALANCE_LEVELS",
    "TRADES_SHOWN",
    "BookFigures",
    "LadderView",
    "LatencyFigures",
    "MarketTracker",
    "book_figures",
    "clip",
    "clock_text",
    "depth_bar",
    "duration_text",
    "ladder_json",
    "level_text",
    "microprice_text",
    "number_text",
    "render_ladder",
    "render_line",
    "render_summary",
    "take_view",
    "visible_width",
]

TRADES_SHOWN = 8
"""How many recent trades the ladder lists."""

IMBALANCE_LEVELS = 10
"""How many of the best levels per side the imbalance (and its pressure signal) sums."""

LATENCY_CHANNEL = "book"
"""The channel whose latencies the ladder shows."""

_RATE_WINDOW = 1.0  # seconds over which events per second are measured
_PARTIAL_BLOCKS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
_FULL_BLOCK = "█"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"
_CLEAR_LINE = "\x1b[K"
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ELLIPSIS = "…"


def clock_text(timestamp: str | None) -> str:
    """``HH:MM:SS.mmm`` of a Kraken RFC3339 timestamp, or of the current UTC time if None."""
    if timestamp is not None and len(timestamp) >= 19 and timestamp[10] in "T ":
        clock = timestamp[11:19]
        fraction = timestamp[20:23] if len(timestamp) > 20 and timestamp[19] == "." else ""
        return f"{clock}.{fraction.ljust(3, '0')}"
    now = datetime.now(timezone.utc)
    return now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d}"


class MarketTracker:
    """What the ladder shows about one ``symbol``, fed with every event of a client.

    ``verified`` counts the symbol's :class:`BookUpdate` events (each one was applied and its
    checksum verified before it was emitted), ``resyncs`` its :class:`BookResync` events.
    Every event is also shown to :attr:`health` with its ``received_at`` as ``now`` (the
    driver's clock, the one :func:`take_view` is given); by default a
    :class:`~kraken_proto.analytics.MarketHealthTracker` with its default timers.
    """

    def __init__(self, symbol: str, health: MarketHealthTracker | None = None) -> None:
        self.symbol = symbol
        """The tracked pair."""
        self.health = MarketHealthTracker() if health is None else health
        """The market status of :attr:`symbol` (and of any other symbol seen)."""
        self.state = "disconnected"
        """The connection state (its value, e.g. ``"subscribed"``)."""
        self.state_reason = ""
        """Why the connection entered :attr:`state`."""
        self.verified = 0
        """Checksum-verified book messages (snapshots included) of :attr:`symbol`."""
        self.resyncs = 0
        """Book resyncs of :attr:`symbol`."""
        self.trade_count = 0
        """Trades of :attr:`symbol` seen."""
        self.events = 0
        """Events of any kind seen."""
        self.trades: deque[Trade] = deque(maxlen=TRADES_SHOWN)
        """The most recent trades, oldest first."""
        self.ticker: Ticker | None = None
        """The latest ticker of :attr:`symbol`, if any."""
        self._samples: deque[tuple[float, int]] = deque()

    def feed(self, event: Event) -> None:
        """Account for one event (a callback for ``client.on(None, tracker.feed)``)."""
        self.events += 1
        self.health.observe(event, event.received_at)
        kind = type(event)
        if kind is BookUpdate:
            assert isinstance(event, BookUpdate)
            if event.symbol == self.symbol:
                self.verified += 1
        elif kind is Trade:
            assert isinstance(event, Trade)
            if event.symbol == self.symbol:
                self.trade_count += 1
                self.trades.append(event)
        elif kind is Ticker:
            assert isinstance(event, Ticker)
            if event.symbol == self.symbol:
                self.ticker = event
        elif kind is StateChanged:
            assert isinstance(event, StateChanged)
            self.state = event.new
            self.state_reason = event.reason
        elif kind is BookResync:
            assert isinstance(event, BookResync)
            if event.symbol == self.symbol:
                self.resyncs += 1

    def events_per_second(self, now: float) -> float:
        """Events per second over about the last second (call it at each frame)."""
        samples = self._samples
        samples.append((now, self.events))
        while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW:
            samples.popleft()
        start, count = samples[0]
        elapsed = now - start
        return (self.events - count) / elapsed if elapsed > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class BookFigures:
    """The analytics of a live book that the ladder shows (see :func:`book_figures`)."""

    microprice: Decimal | None
    """The size-weighted mid of the top of the book; ``None`` when a side is empty."""
    imbalance: Decimal
    """The imbalance of the best :data:`IMBALANCE_LEVELS` levels per side, in [-1, 1]."""
    signal: PressureSignal
    """The pressure signal read from :attr:`imbalance` (default thresholds ±0.2, ±0.5)."""


def book_figures(book: OrderBook | None) -> BookFigures | None:
    """The microprice, imbalance and pressure of ``book``; ``None`` unless it is live."""
    if book is None or not book.is_live:
        return None
    try:
        pressure = book_pressure(book, IMBALANCE_LEVELS)
        return BookFigures(microprice(book), pressure.imbalance, pressure.signal)
    except BookNotLiveError:
        return None


@dataclasses.dataclass(frozen=True)
class LatencyFigures:
    """The p50 and p99 of one channel's two latencies, seconds (``None``: not measured)."""

    delivery_p50: float | None
    """Receive -> delivery to user code, median."""
    delivery_p99: float | None
    """Receive -> delivery to user code, 99th percentile."""
    exchange_p50: float | None
    """Exchange timestamp -> receive, median (``None`` until a clock offset is known)."""
    exchange_p99: float | None
    """Exchange timestamp -> receive, 99th percentile."""

    @classmethod
    def of(
        cls, report: LatencyReport | None, channel: str = LATENCY_CHANNEL
    ) -> LatencyFigures | None:
        """The figures of ``channel`` in ``report``; ``None`` if it recorded nothing yet."""
        found = None if report is None else report.channels.get(channel)
        if found is None:
            return None
        delivery, exchange = found.delivery, found.exchange
        return cls(delivery.p50, delivery.p99, exchange.p50, exchange.p99)


@dataclasses.dataclass(frozen=True)
class LadderView:
    """Everything one frame shows, frozen at one instant."""

    symbol: str
    state: str
    book_state: str
    asks: list[BookLevel]
    """Best (lowest) first."""
    bids: list[BookLevel]
    """Best (highest) first."""
    spread: Decimal | None
    mid: Decimal | None
    trades: list[Trade]
    """Most recent first."""
    ticker: Ticker | None
    verified: int
    resyncs: int
    trade_count: int
    events_per_second: float
    elapsed: float
    market: MarketStatus | None = None
    """The market status of :attr:`symbol`; ``None``: not shown."""
    figures: BookFigures | None = None
    """The book's analytics; ``None`` when the book is not live (or not shown)."""
    latency: LatencyFigures | None = None
    """The book channel's latencies; ``None`` when not tracked or nothing measured yet."""


def take_view(
    tracker: MarketTracker,
    book: OrderBook | None,
    *,
    now: float,
    elapsed: float,
    depth: int | None = None,
    latency: LatencyReport | None = None,
) -> LadderView:
    """Freeze a frame: the tracker's counters and ``depth`` levels per side of ``book``,
    the book's analytics, the market status at ``now`` (the driver's clock) and the book
    channel's latencies from ``latency`` (``client.latency``, when tracked).

    A book that is absent or not live shows no levels and no analytics (its state and the
    market status say why). This is where the analytics are computed: once per frame.
    """
    asks: list[BookLevel] = []
    bids: list[BookLevel] = []
    spread: Decimal | None = None
    mid: Decimal | None = None
    book_state = "absent" if book is None else book.state.value
    if book is not None:
        try:
            asks = book.asks(depth)
            bids = book.bids(depth)
            spread = book.spread()
            mid = book.mid_price()
        except BookNotLiveError:
            asks, bids, spread, mid = [], [], None, None
    return LadderView(
        symbol=tracker.symbol,
        state=tracker.state,
        book_state=book_state,
        asks=asks,
        bids=bids,
        spread=spread,
        mid=mid,
        trades=list(reversed(tracker.trades)),
        ticker=tracker.ticker,
        verified=tracker.verified,
        resyncs=tracker.resyncs,
        trade_count=tracker.trade_count,
        events_per_second=tracker.events_per_second(now),
        elapsed=elapsed,
        market=tracker.health.check_status(tracker.symbol, now),
        figures=book_figures(book),
        latency=LatencyFigures.of(latency),
    )


def depth_bar(qty: Decimal, largest: Decimal, width: int) -> str:
    """A bar of unicode blocks, ``width`` cells for ``largest``, in eighths of a cell.

    Any positive quantity gets at least one eighth, so no level looks empty.
    """
    if largest <= 0 or qty <= 0 or width <= 0:
        return ""
    eighths = max(1, min(width * 8, int(qty / largest * width * 8 + Decimal("0.5"))))
    full, rest = divmod(eighths, 8)
    return _FULL_BLOCK * full + _PARTIAL_BLOCKS[rest]


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color and text else text


def number_text(value: Decimal | None) -> str:
    """``value`` written positionally (``0.00000005``, never ``5E-8``); ``"-"`` for None."""
    if value is None:
        return "-"
    try:
        return plain(value)
    except (ArithmeticError, ValueError):  # absurd magnitudes: the exponent form will do
        return str(value)


def _signed_pct(value: Decimal) -> str:
    return f"{value:+.2f}%"


def _basis_points(spread: Decimal | None, mid: Decimal | None) -> str:
    if spread is None or mid is None or mid <= 0:
        return ""
    return f" ({float(spread / mid) * 10_000:.2f} bps)"


def duration_text(seconds: float | None) -> str:
    """A latency for people: ``45 µs``, ``1.2 ms``, ``2.35 s`` (either sign); ``-`` for None."""
    if seconds is None:
        return "-"
    magnitude = abs(seconds)
    if magnitude < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if magnitude < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


_WIDE = Context(prec=1000)  # rounds nothing a price needs: 1000 digits
_EXTRA_PLACES = 2  # decimals of the microprice shown beyond the price's own


def microprice_text(value: Decimal | None, reference: Decimal | None) -> str:
    """The microprice to show: to two decimals more than ``reference`` (a price of the
    book) has, half to even; ``-`` for None. The exact value is :class:`BookFigures`'."""
    if value is None:
        return "-"
    if reference is not None:
        exponent = reference.as_tuple().exponent
        if isinstance(exponent, int):
            quantum = Decimal(1).scaleb(exponent - _EXTRA_PLACES)
            with contextlib.suppress(ArithmeticError):  # absurd magnitudes: shown as they are
                value = value.quantize(quantum, context=_WIDE)
    return number_text(value)


_MARKET_COLORS = {
    MarketStatus.ACTIVE: _GREEN,
    MarketStatus.STALE: _YELLOW,
    MarketStatus.HALTED: _RED,
    MarketStatus.UNKNOWN: _DIM,
}
_BUYING = frozenset({PressureSignal.BUY, PressureSignal.STRONG_BUY})
_SELLING = frozenset({PressureSignal.SELL, PressureSignal.STRONG_SELL})


def _signal_color(signal: PressureSignal) -> str:
    return _GREEN if signal in _BUYING else _RED if signal in _SELLING else _DIM


def _analytics_fields(view: LadderView, color: bool) -> list[str]:
    """The header's analytics: microprice, imbalance and signal, the book's latencies."""
    fields: list[str] = []
    figures = view.figures
    if figures is not None:
        reference = view.bids[0].price if view.bids else None
        fields.append(f"microprice {microprice_text(figures.microprice, reference)}")
        signal = _paint(figures.signal.value, _signal_color(figures.signal), color)
        fields.append(f"imbalance({IMBALANCE_LEVELS}) {figures.imbalance:+.3f} {signal}")
    latency = view.latency
    if latency is not None:
        fields.append(
            f"latency recv→deliver p50 {duration_text(latency.delivery_p50)} "
            f"p99 {duration_text(latency.delivery_p99)}"
        )
        if latency.exchange_p50 is not None:
            fields.append(
                f"exch→recv p50 {duration_text(latency.exchange_p50)} "
                f"p99 {duration_text(latency.exchange_p99)}"
            )
    return fields


def level_text(level: BookLevel) -> str:
    """``price x qty`` of a book level, both written positionally."""
    return f"{number_text(level.price)} x {number_text(level.qty)}"


def _rows(levels: Sequence[BookLevel]) -> list[tuple[str, str, Decimal]]:
    """Each level's price text, quantity text and quantity (each token decoded once)."""
    rows = []
    for level in levels:
        qty = level.qty
        rows.append((number_text(level.price), number_text(qty), qty))
    return rows


def visible_width(text: str) -> int:
    """The columns ``text`` takes on a terminal: its characters, ANSI codes left out."""
    return len(_ANSI_RE.sub("", text))


def clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` visible columns, ``…`` marking the cut.

    ANSI codes take no column and are kept; a colour cut off is reset.
    """
    if visible_width(text) <= width:
        return text
    keep = max(0, width - 1)  # room for the ellipsis
    parts: list[str] = []
    shown = 0
    painted = False
    position = 0
    for match in _ANSI_RE.finditer(text):
        plain_text = text[position : match.start()]
        take = plain_text[: keep - shown]
        parts.append(take)
        shown += len(take)
        if shown >= keep:
            break
        parts.append(match.group())
        painted = True
        position = match.end()
    else:
        take = text[position:][: keep - shown]
        parts.append(take)
        shown += len(take)
    if width > 0:
        parts.append(_ELLIPSIS)
    if painted:
        parts.append(_RESET)
    return "".join(parts)


def _flow(fields: Sequence[str], width: int, separator: str = "   ") -> list[str]:
    """``fields`` packed into as few lines of ``width`` columns as they fit, one space in.

    A field is never split; one wider than a line is clipped.
    """
    lines: list[str] = []
    line = ""
    for field in fields:
        candidate = f"{line}{separator}{field}" if line else f" {field}"
        if line and visible_width(candidate) > width:
            lines.append(line)
            candidate = f" {field}"
        line = candidate
    if line:
        lines.append(line)
    return [clip(line, width) for line in lines]


def render_ladder(
    view: LadderView,
    *,
    title: str,
    width: int = 80,
    max_rows: int | None = None,
    height: int | None = None,
    color: bool = True,
) -> str:
    """A full frame: header, asks above bids with depth bars, spread and mid, last trades.

    No line is wider than ``width`` columns (ANSI codes take none): the status and ticker
    lines wrap between fields, the depth bars shrink, and what still does not fit is cut
    with ``…``. ``max_rows`` caps the levels drawn per side; with ``height`` (the
    terminal's lines) the frame keeps to ``height - 1`` lines, drawing at least 3 levels
    per side and fewer trades on a short terminal. ``color`` adds ANSI colours (asks red,
    bids green). Lines are terminated with an erase-to-end-of-line code when ``color`` is
    set, so a redraw over a previous frame leaves no debris.
    """
    width = max(1, width)
    header = [_paint(clip(f" {title}", width), _BOLD, color)]
    status = [view.symbol, f"state {view.state}", f"book {view.book_state}"]
    if view.market is not None:
        status.append(f"market {_paint(view.market.value, _MARKET_COLORS[view.market], color)}")
    header += _flow(status, width)
    header += _flow(
        (
            f"{view.events_per_second:,.0f} ev/s",
            f"verified {view.verified:,}",
            f"resyncs {view.resyncs:,}",
            f"trades {view.trade_count:,}",
            f"{view.elapsed:.1f} s",
        ),
        width,
    )
    ticker = view.ticker
    if ticker is not None:
        header += _flow(
            (
                f"last {number_text(ticker.last)}",
                f"24h high {number_text(ticker.high)}  low {number_text(ticker.low)}",
                f"vol {number_text(ticker.volume)}",
                f"change {_signed_pct(ticker.change_pct)}",
            ),
            width,
        )
    analytics = _analytics_fields(view, color)
    if analytics:
        header += _flow(analytics, width)

    rows = max_rows
    trades_shown = max(1, len(view.trades))
    if height is not None:
        # The lines besides levels and trades: header, the blank line and the column
        # names, the spread, a blank line and "last trades", a blank line and the hint.
        space = height - 1 - len(header) - 7
        fitted = max(3, (space - trades_shown) // 2)
        rows = fitted if rows is None else min(rows, fitted)
    asks = _rows(view.asks if rows is None else view.asks[:rows])
    bids = _rows(view.bids if rows is None else view.bids[:rows])
    levels = asks + bids
    if height is not None:
        space = height - 1 - len(header) - 7 - max(1, len(levels))
        trades_shown = max(1, min(trades_shown, space))
    shown = view.trades[:trades_shown]
    trades = [(trade, number_text(trade.price), number_text(trade.qty)) for trade in shown]
    price_w = max((len(price) for price, _, _ in levels), default=5)
    price_w = max([price_w, *(len(price) for _, price, _ in trades)])
    qty_w = max((len(qty) for _, qty, _ in levels), default=3)
    bar_w = max(0, min(50, width - price_w - qty_w - 15))
    largest = max((qty for _, _, qty in levels), default=Decimal(0))

    lines = [*header, ""]
    lines.append(_paint(clip(f"       {'price':>{price_w}}  {'qty':>{qty_w}}", width), _DIM, color))
    for price, qty_text, qty in reversed(asks):
        bar = _paint(depth_bar(qty, largest, bar_w), _RED, color)
        side = _paint("ask", _RED, color)
        lines.append(f"  {side}  {price:>{price_w}}  {qty_text:>{qty_w}}  {bar}")
    if not levels:
        lines.append(f"  (book {view.book_state}: waiting for a verified snapshot)")
    middle = (
        f" spread {number_text(view.spread)}{_basis_points(view.spread, view.mid)}"
        f"   mid {number_text(view.mid)} "
    )
    spread_line = clip(f"  ──{middle}".ljust(min(width, 60), "─"), width)
    lines.append(_paint(spread_line, _BOLD, color))
    for price, qty_text, qty in bids:
        bar = _paint(depth_bar(qty, largest, bar_w), _GREEN, color)
        side = _paint("bid", _GREEN, color)
        lines.append(f"  {side}  {price:>{price_w}}  {qty_text:>{qty_w}}  {bar}")
    lines.append("")
    lines.append(_paint(" last trades", _DIM, color))
    if not view.trades:
        lines.append("  (none yet)")
    for trade, price, qty_text in trades:
        side = _paint(f"{trade.side:<4}", _GREEN if trade.side == "buy" else _RED, color)
        lines.append(f"  {clock_text(trade.timestamp)}  {side}  {price:>{price_w}}  {qty_text}")
    lines.append("")
    lines.append(_paint(" Ctrl-C to quit", _DIM, color))
    if height is not None:
        lines = lines[: max(1, height - 1)]
    end = _CLEAR_LINE if color else ""
    return "".join(f"{clip(line, width)}{end}\n" for line in lines)


def render_line(view: LadderView) -> str:
    """A compact one-line frame for logs and pipes (no ANSI codes)."""
    best_bid = view.bids[0] if view.bids else None
    best_ask = view.asks[0] if view.asks else None
    bid = "-" if best_bid is None else level_text(best_bid)
    ask = "-" if best_ask is None else level_text(best_ask)
    last = ""
    if view.trades:
        trade = view.trades[0]
        last = f" | last trade {trade.side} {number_text(trade.qty)} @ {number_text(trade.price)}"
    extra = "" if view.market is None else f" | market {view.market.value}"
    extra += "".join(f" | {field}" for field in _analytics_fields(view, color=False))
    return (
        f"[{view.elapsed:5.1f}s] {view.symbol} {view.state} (book {view.book_state}) | "
        f"bid {bid} | ask {ask} | spread {number_text(view.spread)} | "
        f"mid {number_text(view.mid)} | "
        f"verified {view.verified} | resyncs {view.resyncs} | trades {view.trade_count}"
        f"{last} | {view.events_per_second:.0f} ev/s{extra}"
    )


def render_summary(tracker: MarketTracker, elapsed: float, width: int | None = None) -> str:
    """The closing line: updates verified, resyncs and trades of the tracked symbol.

    With ``width`` it is wrapped into lines of at most ``width`` columns (a terminal's);
    without, it is one line (for logs and pipes).
    """
    text = (
        f"summary: {tracker.symbol} {tracker.verified} book updates verified, "
        f"{tracker.resyncs} resyncs, {tracker.trade_count} trades, "
        f"{tracker.events} events in {elapsed:.1f} s (state {tracker.state})"
    )
    if width is None:
        return text
    width = max(1, width)
    lines = textwrap.wrap(
        text, width, subsequent_indent="  " if width > 2 else "", break_on_hyphens=False
    )
    return "\n".join(lines)


_encode_json = msgspec.json.Encoder().encode


def _json_number(value: Decimal | None) -> msgspec.Raw | None:
    """``value`` as a JSON number written from its exact digits (positional), or null."""
    return None if value is None else msgspec.Raw(number_text(value).encode())


def ladder_json(
    book: OrderBook,
    *,
    depth: int,
    market: MarketStatus | None = None,
    latency: LatencyFigures | None = None,
    timestamp: str | None = None,
) -> str:
    """One JSON object (one line, no newline) with ``book``'s ladder and analytics.

    Keys: ``type`` (``"ladder"``), ``symbol``, ``timestamp`` (``timestamp``, Kraken's time
    of the update shown, or null), ``status`` (``market``'s value or null), ``microprice``,
    ``imbalance`` (of the best :data:`IMBALANCE_LEVELS` levels per side), ``signal`` (the
    :class:`~kraken_proto.analytics.PressureSignal` value), ``spread``, ``mid``,
    ``spread_bps``, ``latency`` (null, or ``{"delivery": {"p50", "p99"}, "exchange":
    {"p50", "p99"}}`` in seconds, null where not measured), and ``bids`` and ``asks``: the
    :func:`~kraken_proto.analytics.depth_ladder` of the best ``depth`` levels, best first,
    as ``{"price", "qty", "cumulative"}`` (``cumulative``: the running quantity from the
    best level). Every price, quantity and figure is a JSON number written from its exact
    ``Decimal`` (positional, all digits: ``0.00000005``, ``63000.10``), null when it does
    not exist (a side is empty). Raises :class:`~kraken_proto.BookNotLiveError` if the book
    is not live.
    """
    ladder = depth_ladder(book, depth)
    pressure = book_pressure(book, IMBALANCE_LEVELS)
    data: dict[str, Any] = {
        "type": "ladder",
        "symbol": book.symbol,
        "timestamp": timestamp,
        "status": None if market is None else market.value,
        "microprice": _json_number(microprice(book)),
        "imbalance": _json_number(pressure.imbalance),
        "signal": pressure.signal.value,
        "spread": _json_number(ladder.spread),
        "mid": _json_number(ladder.mid),
        "spread_bps": _json_number(ladder.spread_bps),
        "latency": None
        if latency is None
        else {
            "delivery": {"p50": latency.delivery_p50, "p99": latency.delivery_p99},
            "exchange": {"p50": latency.exchange_p50, "p99": latency.exchange_p99},
        },
    }
    for side, levels in (("bids", ladder.bids), ("asks", ladder.asks)):
        data[side] = [
            {
                "price": _json_number(level.price),
                "qty": _json_number(level.qty),
                "cumulative": _json_number(level.cumulative_qty),
            }
            for level in levels
        ]
    return _encode_json(data).decode()
