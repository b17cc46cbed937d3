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
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

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
    "TRADES_SHOWN",
    "LadderView",
    "MarketTracker",
    "clip",
    "clock_text",
    "depth_bar",
    "level_text",
    "number_text",
    "render_ladder",
    "render_line",
    "render_summary",
    "take_view",
    "visible_width",
]

TRADES_SHOWN = 8
"""How many recent trades the ladder lists."""

_RATE_WINDOW = 1.0  # seconds over which events per second are measured
_PARTIAL_BLOCKS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
_FULL_BLOCK = "█"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
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
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        """The tracked pair."""
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


def take_view(
    tracker: MarketTracker,
    book: OrderBook | None,
    *,
    now: float,
    elapsed: float,
    depth: int | None = None,
) -> LadderView:
    """Freeze a frame: the tracker's counters and ``depth`` levels per side of ``book``.

    A book that is absent or not live shows no levels (its state says why).
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
        if line and len(candidate) > width:
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
    header += _flow(
        (view.symbol, f"state {view.state}", f"book {view.book_state}"),
        width,
    )
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
    return (
        f"[{view.elapsed:5.1f}s] {view.symbol} {view.state} (book {view.book_state}) | "
        f"bid {bid} | ask {ask} | spread {number_text(view.spread)} | "
        f"mid {number_text(view.mid)} | "
        f"verified {view.verified} | resyncs {view.resyncs} | trades {view.trade_count}"
        f"{last} | {view.events_per_second:.0f} ev/s"
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
