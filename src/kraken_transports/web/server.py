"""The live order-book page's server: an aiohttp application on the client's event loop.

:class:`WebHub` follows a client's events (register :meth:`WebHub.feed` with
``client.on(None, hub.feed)``) and keeps, per served symbol, what the page shows besides the
book: a :class:`~kraken_transports.ladder.MarketTracker` (connection and book state,
counters, last trades, market status), the large-order events of an
:class:`~kraken_proto.analytics.OrderFlowTracker` and the trades of the last
``trade_window`` seconds by price level (a
:class:`~kraken_proto.analytics.TradesByPriceLevel` per tick size asked for). Feeding it is
cheap and never waits: it only marks the symbol changed.

:func:`web_app` serves the page (``GET /``, static files under ``/static/``), one frame as
JSON (``GET /api/view?symbol=BTC/USD&tick=0.5``; bad input: ``400`` with ``{"error": ...}``)
and the live feed (``GET /ws?symbol=...&tick=...``, a WebSocket). Each browser socket has
its own sender task: it sends the symbol's latest frame (:func:`~.view.build_view`, built
once per change and shared by every socket on the same symbol and tick), then waits at
least ``1 / max_rate`` seconds and until the symbol changed again (or a second passed, so
the market status and the latencies stay current). Updates in between are coalesced:
latest state wins. A slow browser only delays its own sender, never the Kraken client; one
that takes longer than :data:`SEND_TIMEOUT` to take a frame is disconnected (its connection
aborted: a closing handshake would queue behind the frames it does not read).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.resources
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import WSMsgType, web

from kraken_proto.analytics import (
    LargeOrderThreshold,
    LatencyReport,
    OrderFlowTracker,
    TradesByPriceLevel,
)
from kraken_proto.book import OrderBook
from kraken_proto.events import BookResync, BookUpdate, Event, StateChanged, Trade
from kraken_transports.ladder import LatencyFigures, MarketTracker
from kraken_transports.web.view import FlowRecord, ViewInputError, build_view, parse_tick

__all__ = [
    "DEFAULT_MAX_RATE",
    "DEFAULT_ROWS",
    "DEFAULT_TRADE_WINDOW",
    "FLOW_EVENTS_KEPT",
    "LARGE_ORDER_MULTIPLE",
    "REFRESH_INTERVAL",
    "SEND_TIMEOUT",
    "ViewHook",
    "WebHub",
    "web_app",
]

DEFAULT_MAX_RATE = 10.0
"""Frames per second pushed to one browser at most, by default."""

DEFAULT_ROWS = 12
"""Ladder rows per side, by default."""

DEFAULT_TRADE_WINDOW = 60.0
"""Seconds of trades the volume-at-price overlay sums, by default."""

LARGE_ORDER_MULTIPLE = Decimal(5)
"""A level is large at this multiple of the median level size in the tracked window."""

FLOW_EVENTS_KEPT = 12
"""Large-order events kept (and shown) per symbol."""

REFRESH_INTERVAL = 1.0
"""Seconds after which a frame is sent even if the book did not change (status, latency)."""

SEND_TIMEOUT = 10.0
"""Seconds a browser may take to accept one frame before it is disconnected."""

_LATENCY_REFRESH = 0.5  # seconds between copies of the client's latency report
_TICK_TRACKERS = 8  # trade trackers kept per symbol (one per tick size asked for)
_TRADES_KEPT = 20_000  # trades kept per symbol to seed a new tick's tracker, at most
_STATIC_FILES = {
    "index.html": "text/html",
    "app.css": "text/css",
    "app.js": "text/javascript",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

ViewHook = Callable[[str, "Decimal | None", "OrderBook | None", dict[str, Any]], None]
"""Called as ``hook(symbol, tick, book, frame)`` with each frame built (for tests)."""

_encode = msgspec.json.Encoder().encode


class _Symbol:
    """The state kept for one served symbol."""

    def __init__(self, symbol: str, window: float) -> None:
        self.tracker = MarketTracker(symbol)
        self.flow: deque[FlowRecord] = deque(maxlen=FLOW_EVENTS_KEPT)
        self.trades: deque[tuple[float, Trade]] = deque(maxlen=_TRADES_KEPT)
        self.overlays: dict[Decimal | None, TradesByPriceLevel] = {None: TradesByPriceLevel(window)}
        self.version = 0
        self.changed: set[asyncio.Event] = set()
        self.frames: dict[Decimal | None, tuple[int, float, str]] = {}

    def touch(self) -> None:
        self.version += 1
        for event in self.changed:
            event.set()


class WebHub:
    """What the page shows, per symbol, fed with every event of one client.

    ``symbols`` are the served pairs (the first is the page's default); ``book(symbol)``
    and ``latency()`` read the client (``client.book``, ``client.latency`` or ``None`` when
    not tracked) and ``clock()`` is the driver's clock (the event loop's time). ``rows`` is
    the ladder's rows per side, ``trade_window`` the seconds of trades summed by price level,
    ``on_view`` an optional :data:`ViewHook`.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        book: Callable[[str], OrderBook | None],
        latency: Callable[[], LatencyReport | None],
        clock: Callable[[], float],
        rows: int = DEFAULT_ROWS,
        trade_window: float = DEFAULT_TRADE_WINDOW,
        max_rate: float = DEFAULT_MAX_RATE,
        on_view: ViewHook | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("symbols must name at least one pair")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be an int >= 1, got {rows!r}")
        if not 0 < max_rate <= 1000:
            raise ValueError(f"max_rate must be > 0 and <= 1000 frames per second, got {max_rate}")
        self.symbols = tuple(dict.fromkeys(symbols))
        """The served pairs, the default first."""
        self.rows = rows
        """Ladder rows per side."""
        self.trade_window = trade_window
        """Seconds of trades summed by price level."""
        self.max_rate = max_rate
        """Frames per second sent to one browser at most."""
        self.flow = OrderFlowTracker(LargeOrderThreshold.relative(LARGE_ORDER_MULTIPLE))
        """The large-order tracker of every served book."""
        self.frames_built = 0
        """Frames built so far (each frame's ``seq``)."""
        self._book = book
        self._latency = latency
        self._clock = clock
        self._on_view = on_view
        self._state = {symbol: _Symbol(symbol, trade_window) for symbol in self.symbols}
        self._latency_report: tuple[float, LatencyReport | None] | None = None

    # -- events ------------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Account for one event of the client (``client.on(None, hub.feed)``)."""
        states = self._state
        for each in states.values():
            each.tracker.feed(event)
        state: _Symbol | None
        kind = type(event)
        if kind is BookUpdate:
            assert isinstance(event, BookUpdate)
            state = states.get(event.symbol)
            if state is None:
                return
            book = self._book(event.symbol)
            if book is not None and book.is_live:
                for found in self.flow.track_update(book, event.received_at):
                    state.flow.append(FlowRecord(found, event.timestamp))
            state.touch()
        elif kind is Trade:
            assert isinstance(event, Trade)
            state = states.get(event.symbol)
            if state is None:
                return
            now = event.received_at
            kept = state.trades
            kept.append((now, event))
            while kept and kept[0][0] < now - self.trade_window:
                kept.popleft()
            for overlay in state.overlays.values():
                overlay.add_trade(event, now)
            state.touch()
        elif kind is BookResync:
            assert isinstance(event, BookResync)
            state = states.get(event.symbol)
            if state is not None:
                self.flow.forget(event.symbol)  # the new snapshot is not a change of levels
                state.touch()
        elif kind is StateChanged:
            for each in states.values():
                each.touch()

    # -- queries -----------------------------------------------------------------------------

    def check_query(self, symbol: str | None, tick: str | None) -> tuple[str, Decimal | None]:
        """The symbol and tick of a page's query (absent symbol: the default one).

        Raises :class:`~.view.ViewInputError` with a message for the page.
        """
        if symbol is None or symbol == "":
            symbol = self.symbols[0]
        if symbol not in self._state:
            shown = symbol if len(symbol) <= 20 else symbol[:20] + "…"
            raise ViewInputError(
                f"unknown symbol {shown!r}: this server shows {', '.join(self.symbols)}"
            )
        return symbol, parse_tick(tick)

    def _overlay(self, state: _Symbol, tick: Decimal | None) -> TradesByPriceLevel:
        """The trades-by-price tracker of ``tick``, created (from the kept trades) if new."""
        overlays = state.overlays
        found = overlays.pop(tick, None)
        if found is None:
            found = TradesByPriceLevel(self.trade_window, tick_size=tick)
            for stamp, trade in state.trades:
                found.add_trade(trade, stamp)
            if len(overlays) >= _TICK_TRACKERS:
                oldest = next(key for key in overlays if key is not None)
                del overlays[oldest]
                state.frames.pop(oldest, None)
        overlays[tick] = found  # most recently used last
        return found

    def _latency_now(self, now: float) -> LatencyReport | None:
        cached = self._latency_report
        if (
            cached is None
            or now - cached[0] >= _LATENCY_REFRESH
            or LatencyFigures.of(cached[1]) is None  # nothing measured yet: ask again
        ):
            cached = self._latency_report = (now, self._latency())
        return cached[1]

    def view(self, symbol: str, tick: Decimal | None) -> dict[str, Any]:
        """A new frame of ``symbol`` (checked by :meth:`check_query`) at ``tick``."""
        state = self._state[symbol]
        now = self._clock()
        book = self._book(symbol)
        overlay = self._overlay(state, tick).overlay(symbol, now)
        prices = overlay if tick is None else self._overlay(state, None).overlay(symbol, now)
        large = self.flow.large_levels(symbol) if tick is None else ()
        frame = build_view(
            symbol=symbol,
            symbols=self.symbols,
            book=book,
            tracker=state.tracker,
            overlay=overlay,
            prices=prices,
            large=large,
            flow=list(state.flow),
            latency=self._latency_now(now),
            now=now,
            tick=tick,
            rows=self.rows,
            trade_window=self.trade_window,
        )
        self.frames_built += 1
        frame["seq"] = self.frames_built
        frame["max_rate"] = self.max_rate
        frame["refresh"] = REFRESH_INTERVAL
        if self._on_view is not None:
            self._on_view(symbol, tick, book, frame)
        return frame

    def frame_text(self, symbol: str, tick: Decimal | None) -> str:
        """The JSON of ``symbol``'s current frame: rebuilt when the symbol changed or the
        last one is :data:`REFRESH_INTERVAL` old, else shared."""
        state = self._state[symbol]
        now = self._clock()
        cached = state.frames.get(tick)
        if cached is not None and cached[0] == state.version and now - cached[1] < REFRESH_INTERVAL:
            return cached[2]
        version = state.version
        text = _encode(self.view(symbol, tick)).decode()
        state.frames[tick] = (version, now, text)
        return text

    @contextlib.contextmanager
    def watch(self, symbol: str) -> Iterator[asyncio.Event]:
        """A block during which the returned :class:`asyncio.Event` is set on each change of
        ``symbol`` (clear it before reading a frame)."""
        changed = asyncio.Event()
        watchers = self._state[symbol].changed
        watchers.add(changed)
        try:
            yield changed
        finally:
            watchers.discard(changed)


# -- the aiohttp application -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Static:
    body: bytes
    content_type: str


def _static_files() -> dict[str, _Static]:
    folder = importlib.resources.files("kraken_transports.web") / "static"
    return {
        name: _Static((folder / name).read_bytes(), kind) for name, kind in _STATIC_FILES.items()
    }


def _same_origin(request: web.Request) -> bool:
    """True unless the request carries an ``Origin`` of another host (a page elsewhere)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def web_app(hub: WebHub) -> web.Application:
    """The aiohttp application serving ``hub``'s page, its JSON view and its live feed."""
    files = _static_files()
    app = web.Application()
    sockets: set[web.WebSocketResponse] = set()

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        found = files.get(name)
        if found is None:
            raise web.HTTPNotFound(text=f"no such file: {name}")
        return web.Response(
            body=found.body,
            content_type=found.content_type,
            charset="utf-8",
            headers=_SECURITY_HEADERS,
        )

    async def api_view(request: web.Request) -> web.Response:
        try:
            symbol, tick = hub.check_query(request.query.get("symbol"), request.query.get("tick"))
        except ViewInputError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.Response(text=hub.frame_text(symbol, tick), content_type="application/json")

    async def socket(request: web.Request) -> web.WebSocketResponse:
        if not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        try:
            symbol, tick = hub.check_query(request.query.get("symbol"), request.query.get("tick"))
        except ViewInputError as exc:
            await ws.send_str(
                _encode({"type": "error", "message": str(exc), "symbols": hub.symbols}).decode()
            )
            await ws.close()
            return ws
        sockets.add(ws)
        sender = asyncio.create_task(_send_frames(hub, ws, symbol, tick, request.transport))
        try:
            async for message in ws:  # the page sends nothing; this notices the close
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            sockets.discard(ws)
        return ws

    async def close_sockets(_app: web.Application) -> None:
        for ws in list(sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001, message=b"server stopping"), 1.0)

    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", page)
    app.router.add_get("/api/view", api_view)
    app.router.add_get("/ws", socket)
    app.on_shutdown.append(close_sockets)
    return app


async def _send_frames(
    hub: WebHub,
    ws: web.WebSocketResponse,
    symbol: str,
    tick: Decimal | None,
    transport: asyncio.Transport | None,
) -> None:
    """Send ``symbol``'s frames to one browser: at most ``hub.max_rate`` a second, the
    latest state each time, at least one every :data:`REFRESH_INTERVAL`. A browser that
    takes longer than :data:`SEND_TIMEOUT` to take one has its ``transport`` aborted."""
    interval = 1.0 / hub.max_rate
    with hub.watch(symbol) as changed:
        while not ws.closed:
            changed.clear()
            text = hub.frame_text(symbol, tick)
            try:
                await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT)
            except asyncio.TimeoutError:
                # Its buffers are full: a close frame would wait behind them for good.
                if transport is not None:
                    transport.abort()
                return
            except ConnectionError:  # the browser went away meanwhile
                return
            await asyncio.sleep(interval)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, REFRESH_INTERVAL - interval))
