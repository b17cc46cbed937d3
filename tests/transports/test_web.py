"""``kraken-ws web``, server side: the pushed frames are the analytics of the book they show.

A scripted simulator run feeds a real asyncio client; the page's hub serves it through
aiohttp's test server. Each time the hub builds a frame, the test computes the figures
directly from the same book at that instant (its own code over :mod:`kraken_proto.analytics`,
bucket totals summed here) and keeps them by the frame's ``seq``; the frames received over
the page's WebSocket must equal them. Also: the push rate bound, bad query input (a 400 and
an error frame, never a stack trace), the static page (no external URL), and frames of a
book that is not live carrying no numbers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from budget import sized
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.analytics import (
    TradesByPriceLevel,
    aggregate,
    book_pressure,
    depth_ladder,
    imbalance_metrics,
    microprice,
)
from kraken_proto.book import OrderBook
from kraken_proto.checksum import plain
from kraken_proto.events import BookLevel, BookUpdate, StateChanged, Trade
from kraken_transports import cli
from kraken_transports.aio import connect
from kraken_transports.ladder import MarketTracker
from kraken_transports.simserver import run_simulator
from kraken_transports.web import server
from kraken_transports.web.server import WebHub, web_app
from kraken_transports.web.view import ViewInputError, build_view, parse_tick, tick_choices

STATIC = Path(__file__).resolve().parents[2] / "src/kraken_transports/web/static"
SYMBOLS = ("BTC/USD", "ETH/USD")
EPOCH = 1_780_000_000.0  # a fixed start: the same market every run
WAIT = 10.0  # ceiling for any condition the test waits on


def text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def expected_frame(book: OrderBook, tick: Decimal | None, rows: int) -> dict[str, Any]:
    """The figures of ``book`` computed directly from the analytics (independently of view.py)."""
    top = depth_ladder(book, 1)
    pressure = book_pressure(book, 10)
    metrics = imbalance_metrics(book, 10)
    sides: dict[str, list[tuple[str | None, str | None, str | None, str | None]]] = {}
    if tick is None:
        ladder = depth_ladder(book, rows)
        for name, levels in (("bids", ladder.bids), ("asks", ladder.asks)):
            sides[name] = [
                (
                    text(level.price),
                    text(level.qty),
                    text(level.cumulative_qty),
                    text(level.cumulative_percent),
                )
                for level in levels
            ]
    else:
        grouped = aggregate(book, tick)
        for name, buckets in (("bids", grouped.bids[:rows]), ("asks", grouped.asks[:rows])):
            total = sum((bucket.qty for bucket in buckets), Decimal(0))
            running = Decimal(0)
            out = []
            for bucket in buckets:
                running += bucket.qty
                with localcontext() as context:
                    context.prec, context.rounding = 28, ROUND_HALF_EVEN
                    percent = running * 100 / total
                out.append((text(bucket.price), text(bucket.qty), text(running), text(percent)))
            sides[name] = out
    chart = depth_ladder(book, book.view_depth)
    return {
        "mid": text(top.mid),
        "spread": text(top.spread),
        "spread_bps": text(top.spread_bps),
        "microprice": text(microprice(book)),
        "imbalance": text(pressure.imbalance),
        "signal": pressure.signal.value,
        "bid_vwap": text(metrics.bid_vwap),
        "ask_vwap": text(metrics.ask_vwap),
        "best_bid": text(top.bids[0].price),
        "best_ask": text(top.asks[0].price),
        **sides,
        "chart_bids": [[text(x.price), text(x.cumulative_qty)] for x in chart.bids],
        "chart_asks": [[text(x.price), text(x.cumulative_qty)] for x in chart.asks],
    }


def pushed_figures(frame: dict[str, Any]) -> dict[str, Any]:
    """The same figures as they were pushed to the page."""
    header = frame["header"]
    return {
        **{
            key: header[key]["value"]
            for key in (
                "mid",
                "spread",
                "spread_bps",
                "microprice",
                "imbalance",
                "bid_vwap",
                "ask_vwap",
                "best_bid",
                "best_ask",
            )
        },
        "signal": header["signal"],
        **{
            side: [
                (row["price"], row["qty"], row["cumulative"], row["percent"]) for row in frame[side]
            ]
            for side in ("bids", "asks")
        },
        "chart_bids": frame["chart"]["bids"],
        "chart_asks": frame["chart"]["asks"],
    }


async def with_page(
    body: Callable[[TestClient[Any, Any], WebHub, dict[int, dict[str, Any]], Any], Awaitable[None]],
    *,
    max_rate: float = 20.0,
) -> None:
    """Run ``body(http, hub, expected, sim)`` against the page over a simulated market."""
    expected: dict[int, dict[str, Any]] = {}
    rows = 8

    def hook(
        symbol: str, tick: Decimal | None, book: OrderBook | None, frame: dict[str, Any]
    ) -> None:
        if frame["live"]:
            assert book is not None
            expected[frame["seq"]] = expected_frame(book, tick, rows)

    async with run_simulator(seed=3, epoch=EPOCH) as sim:
        config = sim.client_config(latency=True)
        async with connect(config, buffer_events=False) as client:
            loop = asyncio.get_running_loop()
            hub = WebHub(
                SYMBOLS,
                book=client.book,
                latency=lambda: client.latency,
                clock=loop.time,
                rows=rows,
                max_rate=max_rate,
                on_view=hook,
            )
            client.on(None, hub.feed)
            await client.subscribe("book", list(SYMBOLS), depth=25)
            await client.subscribe("trade", list(SYMBOLS))
            async with TestClient(TestServer(web_app(hub))) as http:
                await body(http, hub, expected, sim)


async def live_frames(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` live frames of a page socket."""
    frames: list[dict[str, Any]] = []
    while len(frames) < count:
        frame = json.loads(await asyncio.wait_for(ws.receive_str(), WAIT))
        assert frame["type"] == "frame"
        if frame["live"]:
            frames.append(frame)
    return frames


def test_pushed_frames_equal_the_analytics_of_the_same_book_states() -> None:
    async def body(
        http: TestClient[Any, Any], hub: WebHub, expected: dict[int, dict[str, Any]], sim: Any
    ) -> None:
        for query, tick in (("symbol=BTC/USD", None), ("symbol=ETH/USD&tick=0.5", Decimal("0.5"))):
            async with http.ws_connect(f"/ws?{query}") as ws:
                frames = await live_frames(ws, 6)
            seqs = [frame["seq"] for frame in frames]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            checksums = set()
            for frame in frames:
                assert frame["tick"] == (None if tick is None else str(tick))
                assert pushed_figures(frame) == expected[frame["seq"]]
                sizes = {len(frame["bids"]), len(frame["asks"])}
                assert sizes == {8} if tick is None else min(sizes) >= 1 and max(sizes) <= 8
                assert frame["connection"] == "subscribed" and frame["book_state"] == "live"
                checksums.add(json.dumps(frame["bids"]) + json.dumps(frame["asks"]))
            assert len(checksums) > 1, "the book kept changing under the frames"
            last = frames[-1]
            assert last["market"] == "active"
            assert last["counters"]["verified"] > 0
            assert last["header"]["signal"] in {
                "strong_buy",
                "buy",
                "neutral",
                "sell",
                "strong_sell",
            }
        async with http.ws_connect("/ws?symbol=BTC/USD") as ws:
            while True:  # the latency figures appear once the client measured some
                frame = json.loads(await asyncio.wait_for(ws.receive_str(), WAIT))
                if frame["latency"] is not None:
                    break
        assert frame["latency"]["delivery_p50_text"].endswith(("µs", "ms", " s"))
        # Rows carry the trades of their level as the overlay has them (tick 0.5 buckets).
        with_trades = [row for row in last["bids"] + last["asks"] if row["traded"]]
        for row in with_trades:
            traded = row["traded"]
            assert Decimal(traded["buy"]) + Decimal(traded["sell"]) == Decimal(traded["volume"])
        volume = last["volume"]
        assert volume["window"] == hub.trade_window
        if volume["levels"]:
            controls = [level for level in volume["levels"] if level["control"]]
            assert [level["price"] for level in controls] == [volume["point_of_control"]]

    asyncio.run(with_page(body))


def busy_hub(loop: asyncio.AbstractEventLoop, *, rows: int, max_rate: float) -> WebHub:
    """A hub over a live 100-level book, its connection subscribed."""
    book = OrderBook("BTC/USD", 100)
    book.apply_snapshot(
        [BookLevel.of(f"{60000 - i}.5", f"1.{i:08d}") for i in range(100)],
        [BookLevel.of(f"{60001 + i}.5", f"2.{i:08d}") for i in range(100)],
    )
    hub = WebHub(
        ["BTC/USD"],
        book=lambda symbol: book,
        latency=lambda: None,
        clock=loop.time,
        rows=rows,
        max_rate=max_rate,
    )
    hub.feed(StateChanged("subscribing", "subscribed", received_at=loop.time()))
    return hub


@contextlib.asynccontextmanager
async def trading(hub: WebHub) -> AsyncIterator[None]:
    """A trade fed to ``hub`` every millisecond or so: its symbol always changed."""

    async def feed() -> None:
        for ident in itertools.count():
            hub.feed(trade("buy", "60000.5", "0.1", ident % 10))
            await asyncio.sleep(0.001)

    feeder = asyncio.create_task(feed())
    try:
        yield
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


class RecordingSocket:
    """Stands for a browser's socket: notes when each frame is sent (the sender's clock)."""

    def __init__(self, frames: int) -> None:
        self.sent: list[float] = []
        self._frames = frames

    @property
    def closed(self) -> bool:
        return len(self.sent) >= self._frames

    async def send_str(self, text: str) -> None:
        assert json.loads(text)["type"] == "frame"
        self.sent.append(asyncio.get_running_loop().time())


async def sent_gaps(hub: WebHub, frames: int) -> list[float]:
    socket = RecordingSocket(frames)
    sending = server._send_frames(hub, socket, "BTC/USD", None, None)  # type: ignore[arg-type]
    await asyncio.wait_for(sending, WAIT)
    return [b - a for a, b in itertools.pairwise(socket.sent)]


def test_the_push_rate_is_bounded_and_frames_keep_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    # Measured where the bound is kept, on the sender's clock, so no delivery jitter counts.
    monkeypatch.setattr(server, "REFRESH_INTERVAL", 0.2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        hub = busy_hub(loop, rows=4, max_rate=40.0)
        async with trading(hub):  # changed all the time: one frame per 1/40 s, no more
            gaps = await sent_gaps(hub, 8)
        assert min(gaps) >= 1 / 40 - 1e-6, gaps
        # Nothing changes: a frame still comes every REFRESH_INTERVAL (status, latency).
        gaps = await sent_gaps(hub, 3)
        assert min(gaps) >= 0.2 - 1e-6, gaps

    asyncio.run(main())


def test_a_browser_that_stops_reading_is_disconnected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "SEND_TIMEOUT", 0.3)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        hub = busy_hub(loop, rows=100, max_rate=200.0)  # ~50 kB frames, fast
        async with TestServer(web_app(hub)) as http, trading(hub):
            runner = http.runner
            assert runner is not None and runner.server is not None
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.setblocking(False)
            await loop.sock_connect(raw, ("127.0.0.1", http.port))
            _reader, writer = await asyncio.open_connection(sock=raw)
            key = base64.b64encode(bytes(16)).decode()
            writer.write(
                f"GET /ws?symbol=BTC/USD HTTP/1.1\r\nHost: 127.0.0.1:{http.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            try:
                await until(lambda: len(runner.server.connections) == 1, "the browser connected")
                # It reads nothing: its buffers fill, a send waits past SEND_TIMEOUT, and the
                # server drops the connection rather than wait on it for good.
                await until(lambda: not runner.server.connections, "the stuck browser dropped")
            finally:
                writer.close()
        assert not hub._state["BTC/USD"].changed, "its sender is gone"

    asyncio.run(main())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (up to ``WAIT``) until ``condition()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_bad_input_gets_a_clear_message_not_a_stack_trace() -> None:
    async def body(
        http: TestClient[Any, Any], hub: WebHub, expected: dict[int, dict[str, Any]], sim: Any
    ) -> None:
        cases = {
            "symbol=DOGE/EUR": "unknown symbol 'DOGE/EUR': this server shows BTC/USD, ETH/USD",
            "tick=abc": "tick must be a positive decimal number such as 0.5, got 'abc'",
            "tick=-1": "tick must be a positive decimal number such as 0.5, got '-1'",
            "tick=NaN": "tick must be a positive decimal number such as 0.5, got 'NaN'",
            "tick=1E%2B99": "tick: ",
        }
        for query, message in cases.items():
            response = await http.get(f"/api/view?{query}")
            assert response.status == 400
            answer = await response.json()
            assert set(answer) == {"error"} and answer["error"].startswith(message)
            assert "Traceback" not in answer["error"]
            async with http.ws_connect(f"/ws?{query}") as ws:
                frame = json.loads(await asyncio.wait_for(ws.receive_str(), WAIT))
                assert frame == {
                    "type": "error",
                    "message": answer["error"],
                    "symbols": list(SYMBOLS),
                }
        good = await http.get("/api/view?symbol=ETH/USD&tick=0.05")
        assert good.status == 200
        frame = await good.json()
        assert frame["symbol"] == "ETH/USD" and frame["tick"] == "0.05"
        default = await (await http.get("/api/view")).json()
        assert default["symbol"] == "BTC/USD" and default["symbols"] == list(SYMBOLS)
        foreign = await http.get("/ws", headers={"Origin": "http://example.com"})
        assert foreign.status == 403

    asyncio.run(with_page(body))


def test_the_page_is_static_and_self_contained() -> None:
    async def body(
        http: TestClient[Any, Any], hub: WebHub, expected: dict[int, dict[str, Any]], sim: Any
    ) -> None:
        for path, kind, name in (
            ("/", "text/html", "index.html"),
            ("/static/app.css", "text/css", "app.css"),
            ("/static/app.js", "text/javascript", "app.js"),
        ):
            response = await http.get(path)
            assert response.status == 200
            assert response.content_type == kind
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert await response.read() == (STATIC / name).read_bytes()
        assert (await http.get("/static/../server.py")).status == 404
        assert (await http.get("/static/other.js")).status == 404

    asyncio.run(with_page(body))
    for path in STATIC.iterdir():
        content = path.read_text().replace('"http://www.w3.org/2000/svg"', "SVG_NAMESPACE")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", content), path.name
        assert "import " not in content or path.suffix != ".js"


# -- the view without a server --------------------------------------------------------------


def book_of(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    book = OrderBook("BTC/USD", 10)
    book.apply_snapshot(
        [BookLevel.of(p, q) for p, q in bids], [BookLevel.of(p, q) for p, q in asks]
    )
    return book


def trade(side: str, price: str, qty: str, ident: int) -> Trade:
    stamp = f"2026-12-07T06:00:0{ident}.500000Z"
    return Trade("BTC/USD", side, Decimal(price), Decimal(qty), "limit", ident, stamp)


def subscribed_tracker() -> MarketTracker:
    tracker = MarketTracker("BTC/USD")
    tracker.feed(StateChanged("subscribing", "subscribed", received_at=1.0))
    tracker.feed(BookUpdate("BTC/USD", (), (), 0, "2026-12-07T06:00:00.000Z", received_at=1.0))
    for event in (
        trade("buy", "100.5", "2", 1),
        trade("sell", "100.7", "1", 2),
        trade("buy", "101.0", "0.5", 3),
        trade("buy", "100.0", "0.25", 4),
    ):
        tracker.feed(event)
    return tracker


def view_of(
    book: OrderBook | None, tracker: MarketTracker, tick: Decimal | None = None
) -> dict[str, Any]:
    trades = TradesByPriceLevel(60.0, tick_size=tick)
    prices = TradesByPriceLevel(60.0)
    for trade in tracker.trades:
        trades.add_trade(trade, 1.0)
        prices.add_trade(trade, 1.0)
    return build_view(
        symbol="BTC/USD",
        symbols=["BTC/USD"],
        book=book,
        tracker=tracker,
        overlay=trades.overlay("BTC/USD", 2.0),
        prices=prices.overlay("BTC/USD", 2.0),
        large=(),
        flow=(),
        latency=None,
        now=2.0,
        tick=tick,
        rows=3,
        trade_window=60.0,
    )


BIDS = [("100.5", "1.0"), ("100.2", "3.0"), ("99.7", "2.0"), ("99.1", "4.0")]
ASKS = [("100.7", "0.5"), ("101.0", "1.5"), ("101.6", "2.5")]


def test_a_book_that_is_not_live_shows_no_numbers() -> None:
    book = book_of(BIDS, ASKS)
    book.mark_resyncing()
    for absent_or_resyncing in (None, book):
        view = view_of(absent_or_resyncing, subscribed_tracker())
        assert view["live"] is False
        assert view["header"] is None and view["asks"] == [] and view["bids"] == []
        assert view["chart"] == {"bids": [], "asks": []}
    assert view["book_state"] == "resyncing"
    live = book_of(BIDS, ASKS)
    degraded = subscribed_tracker()
    degraded.feed(StateChanged("subscribed", "degraded", "connection lost: reset", received_at=3.0))
    view = view_of(live, degraded)
    assert view["live"] is False and view["connection"] == "degraded" and view["header"] is None


def test_the_view_of_a_small_book_with_and_without_a_tick() -> None:
    book = book_of(BIDS, ASKS)
    view = view_of(book, subscribed_tracker())
    assert view["live"] is True
    assert [row["price"] for row in view["bids"]] == ["100.5", "100.2", "99.7"]
    assert [row["cumulative"] for row in view["bids"]] == ["1.0", "4.0", "6.0"]
    assert [row["percent_text"] for row in view["bids"]] == ["16.7", "66.7", "100.0"]
    assert view["bids"][0]["traded"] == {"count": 1, "buy": "2", "sell": "0", "volume": "2"}
    assert [row["traded"] for row in view["asks"]] == [
        {"count": 1, "buy": "0", "sell": "1", "volume": "1"},
        {"count": 1, "buy": "0.5", "sell": "0", "volume": "0.5"},
        None,
    ]
    header = view["header"]
    assert header["spread"] == {"value": "0.2", "text": "0.2"}
    assert header["mid"]["value"] == "100.60"
    assert header["spread_bps"]["text"] == "19.88"
    assert header["imbalance"]["text"] == "+0.379"  # (10 - 4.5) / (10 + 4.5)
    assert view["tick_choices"] == ["1", "10", "100"]
    assert view["volume"]["point_of_control"] == "100.5" and view["volume"]["trade_count"] == 4
    assert view["trades"][-1] == {
        "time": "06:00:01.500",
        "side": "buy",
        "price": "100.5",
        "qty": "2",
    }

    bucketed = view_of(book, subscribed_tracker(), Decimal(1))
    assert [(row["price"], row["qty"], row["levels"]) for row in bucketed["bids"]] == [
        ("100", "4.0", 2),
        ("99", "6.0", 2),
    ]
    assert [row["cumulative"] for row in bucketed["bids"]] == ["4.0", "10.0"]
    assert [(row["price"], row["qty"]) for row in bucketed["asks"]] == [
        ("101", "2.0"),
        ("102", "2.5"),
    ]
    assert [row["percent"] for row in bucketed["asks"]] == ["44.44444444444444444444444444", "100"]
    # A bid bucket covers [price, price + tick), an ask bucket (price - tick, price].
    assert bucketed["bids"][0]["traded"] == {
        "count": 3,
        "buy": "2.25",
        "sell": "1",
        "volume": "3.25",
    }
    assert bucketed["asks"][0]["traded"] == {"count": 3, "buy": "2.5", "sell": "1", "volume": "3.5"}
    assert bucketed["bids"][1]["traded"] is None
    # The volume panel sums by the tick's own buckets, [k * tick, (k + 1) * tick).
    panel = {level["price"]: level["volume"] for level in bucketed["volume"]["levels"]}
    assert panel == {"100": "3.25", "101": "0.5"}


def test_tick_choices_follow_the_pair_precision() -> None:
    assert tick_choices(None, Decimal("0.1523400")) == ["0.000001", "0.00001", "0.0001"]
    assert tick_choices(OrderBook("X/Y", 10, price_precision=2), None) == ["0.1", "1", "10"]
    assert tick_choices(None, None) == []


@pytest.mark.parametrize("empty", [None, "", " ", "none"])
def test_no_tick(empty: str | None) -> None:
    assert parse_tick(empty) is None


@sized(30, 600)
@given(st.integers(1, 10**20), st.integers(-40, 40))
def test_parse_tick_reads_every_positive_decimal(digits: int, exponent: int) -> None:
    value = Decimal(digits).scaleb(exponent)
    for written in (str(value), plain(value)):
        if len(written) <= 40:
            assert parse_tick(written) == value


@sized(100, 1000)
@given(st.text(max_size=50))
def test_parse_tick_either_reads_a_tick_or_says_what_is_wrong(raw: str) -> None:
    try:
        tick = parse_tick(raw)
    except ViewInputError as exc:
        assert str(exc).startswith("tick")
    else:
        assert tick is None or (tick.is_finite() and tick > 0)


def test_the_command_line_declares_web() -> None:
    args = cli.build_parser().parse_args(["web", "ETH/USD", "--port", "0", "--max-rate", "5"])
    assert (args.symbols, args.port, args.max_rate, args.url, args.live) == (
        ["ETH/USD"],
        0,
        5.0,
        None,
        False,
    )
    assert args.rows == 12 and args.depth == 100
    for bad in (["--max-rate", "0"], ["--rows", "0"], ["--url", "ws://x", "--live"]):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["web", *bad])
    assert cli.main(["web", "NOPE/USD", "--duration", "1"]) == cli.EXIT_USAGE
