"""The ladder's analytics header and ``kraken-ws book --json`` (kraken_transports.ladder, .cli).

The header shows the microprice, the imbalance of the top 10 levels with its pressure
signal, the market status and the book channel's latency p50/p99; a book that is not live
shows its status and no book analytics. Every line keeps to the terminal's width (80
columns when unknown) whatever the values; the analytics are computed per frame, not per
event. ``book --json`` prints one exact JSON object per update. (The ladder's older tests
are in ``test_cli.py`` and ``test_cli_width.py``.)
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from cliproc import cli_process
from simthread import SimThread

from kraken_proto import BookLevel, BookNotLiveError, OrderBook
from kraken_proto.analytics import (
    ChannelLatency,
    LatencyHistogram,
    LatencyReport,
    MarketStatus,
    PressureSignal,
)
from kraken_proto.book import BookState
from kraken_proto.events import BookUpdate, StateChanged, SystemStatus, Ticker, Trade
from kraken_proto.state import ConnectionState
from kraken_transports import cli, ladder
from kraken_transports.ladder import (
    TRADES_SHOWN,
    BookFigures,
    LadderView,
    LatencyFigures,
    MarketTracker,
    duration_text,
    ladder_json,
    microprice_text,
    render_ladder,
    render_line,
    take_view,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMESTAMP = "2026-08-01T02:53:53.398143Z"
STATES = [state.value for state in ConnectionState]
BOOK_STATES = [state.value for state in BookState] + ["absent"]
BIG_PRICE = "123456789012.12345678"
BIG_QTY = "98765432109.87654321"
SIGNALS = {signal.value for signal in PressureSignal}


def widths(text: str) -> list[int]:
    """The visible width of each line of ``text``."""
    return [len(ANSI.sub("", line)) for line in text.splitlines()]


def live_book(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], symbol: str = "BTC/USD"
) -> OrderBook:
    book = OrderBook(symbol, 10)
    book.apply_snapshot(
        [BookLevel.of(price, qty) for price, qty in bids],
        [BookLevel.of(price, qty) for price, qty in asks],
    )
    return book


BIDS = [("63000.1", "1.5"), ("62999.0", "0.25")]
ASKS = [("63000.2", "0.5"), ("63001.0", "3")]


def fed_tracker(symbol: str = "BTC/USD", at: float = 100.0) -> MarketTracker:
    """A tracker that saw the connection subscribe and one book update at ``at``."""
    tracker = MarketTracker(symbol)
    tracker.feed(StateChanged("subscribing", "subscribed", received_at=at))
    tracker.feed(BookUpdate(symbol, (), (), 0, TIMESTAMP, received_at=at))
    return tracker


def report(delivery: list[float], exchange: list[float]) -> LatencyReport:
    """A latency report whose book channel recorded these values."""
    histograms = []
    for values in (exchange, delivery):
        histogram = LatencyHistogram()
        for value in values:
            histogram.record(value)
        histograms.append(histogram.summary())
    book = ChannelLatency(exchange=histograms[0], delivery=histograms[1], unmeasured=1)
    return LatencyReport(channels={"book": book}, clock=None, wall_samples=0)


# --------------------------------------------------------------------------- the figures


def test_take_view_computes_the_analytics_of_a_live_book() -> None:
    book = live_book(BIDS, ASKS)
    tracker = fed_tracker()
    latency = report(delivery=[0.00004, 0.00005, 0.0002], exchange=[0.001, 0.002, 0.004])
    view = take_view(tracker, book, now=101.0, elapsed=1.0, latency=latency)
    # (63000.1 * 0.5 + 63000.2 * 1.5) / 2 and (1.75 - 3.5) / 5.25, exactly.
    assert view.figures == BookFigures(
        Decimal("63000.175"), Decimal("-0.3333333333333333333333333333"), PressureSignal.SELL
    )
    assert view.market is MarketStatus.ACTIVE
    figures = view.latency
    assert figures is not None
    assert figures.delivery_p50 == pytest.approx(0.00005, rel=0.01)
    assert figures.delivery_p99 == pytest.approx(0.0002, rel=0.01)
    assert figures.exchange_p50 == pytest.approx(0.002, rel=0.01)
    assert figures.exchange_p99 == pytest.approx(0.004, rel=0.01)

    # Within the histogram's 1%; exact figures for the texts below.
    view = dataclasses.replace(view, latency=LatencyFigures(5e-5, 2e-4, 2e-3, 4e-3))
    frame = ANSI.sub("", render_ladder(view, title="t", width=80))
    lines = frame.splitlines()
    assert lines[1] == " BTC/USD   state subscribed   book live   market active"
    assert " microprice 63000.175   imbalance(10) -0.333 sell" in lines
    assert re.search(
        r"^ latency recv→deliver p50 50 µs p99 200 µs   exch→recv p50 2\.0 ms p99 4\.0 ms$",
        frame,
        re.M,
    )
    line = render_line(view)
    assert line.endswith(
        " | market active | microprice 63000.175 | imbalance(10) -0.333 sell"
        " | latency recv→deliver p50 50 µs p99 200 µs | exch→recv p50 2.0 ms p99 4.0 ms"
    )


def test_the_market_status_follows_the_health_tracker() -> None:
    book = live_book(BIDS, ASKS)
    assert take_view(MarketTracker("BTC/USD"), book, now=1.0, elapsed=0).market is (
        MarketStatus.UNKNOWN  # no market data yet
    )
    tracker = fed_tracker(at=100.0)
    assert take_view(tracker, book, now=104.0, elapsed=0).market is MarketStatus.ACTIVE
    assert take_view(tracker, book, now=106.0, elapsed=0).market is MarketStatus.STALE
    tracker.feed(SystemStatus("maintenance", received_at=107.0))
    view = take_view(tracker, book, now=107.0, elapsed=0)
    assert view.market is MarketStatus.HALTED
    assert "market halted" in render_ladder(view, title="t", color=False)
    painted = render_ladder(view, title="t", color=True)
    assert "market \x1b[31mhalted\x1b[0m" in painted  # red; active is green, stale yellow


def test_a_book_that_is_not_live_shows_its_status_and_no_analytics() -> None:
    book = live_book(BIDS, ASKS)
    book.mark_resyncing()
    tracker = fed_tracker()
    latency = report(delivery=[0.0001], exchange=[])
    view = take_view(tracker, book, now=101.0, elapsed=1.0, latency=latency)
    assert view.figures is None and view.asks == [] and view.market is MarketStatus.ACTIVE
    frame = render_ladder(view, title="t", color=False)
    assert "book resyncing   market active" in frame
    assert "microprice" not in frame and "imbalance" not in frame
    assert "(book resyncing: waiting for a verified snapshot)" in frame
    # The channel's latency is still measured and shown; no exchange figure yet: not shown.
    assert re.search(r"^ latency recv→deliver p50 (99|100) µs p99 (99|100) µs$", frame, re.M)
    assert ladder.book_figures(book) is None and ladder.book_figures(None) is None
    with pytest.raises(BookNotLiveError):
        ladder_json(book, depth=10)


def test_one_sided_and_empty_books() -> None:
    one_sided = take_view(fed_tracker(), live_book(BIDS, []), now=100.5, elapsed=0)
    assert one_sided.figures == BookFigures(None, Decimal(1), PressureSignal.STRONG_BUY)
    assert " microprice -   imbalance(10) +1.000 strong_buy" in render_ladder(
        one_sided, title="t", color=False
    )
    empty = take_view(fed_tracker(), live_book([], []), now=100.5, elapsed=0)
    assert empty.figures == BookFigures(None, Decimal(0), PressureSignal.NEUTRAL)
    data = json.loads(ladder_json(live_book(BIDS, []), depth=10))
    assert data["microprice"] is None and data["spread"] is None and data["asks"] == []


def test_duration_and_microprice_texts() -> None:
    assert [duration_text(x) for x in (4.5e-5, -2e-6, 0.0012, -0.25, 2.345, None)] == [
        "45 µs",
        "-2 µs",
        "1.2 ms",
        "-250.0 ms",
        "2.35 s",
        "-",
    ]
    exact = Decimal("63000.17512345678901234567891")
    assert microprice_text(exact, Decimal("63000.1")) == "63000.175"  # 2 more decimals
    assert microprice_text(Decimal("0.000051234"), Decimal("0.00005100")) == "0.0000512340"
    assert microprice_text(exact, None) == "63000.17512345678901234567891"
    assert microprice_text(None, Decimal(1)) == "-"


# --------------------------------------------------------------------------- widths


def analytics_view(symbol: str, state: str, book_state: str, market: MarketStatus) -> LadderView:
    """The widest frame there is: 12-digit numbers, a 28-digit microprice, latencies of
    every magnitude and sign, a full trade list and ticker."""
    tracker = MarketTracker(symbol)
    for n in range(TRADES_SHOWN):
        trade = Trade(symbol, "sell", Decimal(BIG_PRICE), Decimal(BIG_QTY), "limit", n, TIMESTAMP)
        tracker.feed(trade)
    big, qty = BIG_PRICE, BIG_QTY  # bid, bid_qty, ask, ask_qty, last, volume, vwap, low, high
    volume, change, change_pct = "123456789012345.12345678", "-99999.123456789", "-99.99"
    ticker = Ticker.of(symbol, big, qty, big, qty, big, volume, big, big, big, change, change_pct)
    tracker.feed(ticker)
    levels = [BookLevel.of(f"{BIG_PRICE[:-1]}{n}", f"{BIG_QTY[:-1]}{n}") for n in range(10)]
    return LadderView(
        symbol=symbol,
        state=state,
        book_state=book_state,
        asks=levels,
        bids=list(reversed(levels)),
        spread=Decimal("12345678.12345678"),
        mid=Decimal("123456789012.123456785"),
        trades=list(reversed(tracker.trades)),
        ticker=tracker.ticker,
        verified=123_456_789_012,
        resyncs=98_765,
        trade_count=123_456_789_012,
        events_per_second=1_234_567.0,
        elapsed=987_654_321.5,
        market=market,
        figures=BookFigures(
            Decimal("123456789012.1234567890123456"),
            Decimal("-0.9999999999999999999999999999"),
            PressureSignal.STRONG_SELL,
        ),
        latency=LatencyFigures(-0.0009994, 987.654, -123.456, 99_999.9),
    )


@pytest.mark.parametrize("symbol", ["BTC/USD", "LONGCOINNAME.XYZ/USDCOIN.QQQ"])
@pytest.mark.parametrize("color", [False, True])
def test_the_analytics_header_fits_80_columns_in_every_state(symbol: str, color: bool) -> None:
    title = "kraken-ws demo · simulator at ws://127.0.0.1:65535/v2 (seed 12345678901234567890)"
    for state in STATES:
        for book_state in BOOK_STATES:
            for market in MarketStatus:
                view = analytics_view(symbol, state, book_state, market)
                frame = render_ladder(view, title=title, color=color)  # 80 columns by default
                assert max(widths(frame)) <= 80, (state, book_state, market, frame)
                plain = ANSI.sub("", frame)
                # Nothing that fits was cut.
                assert f"book {book_state}" in plain and f"market {market.value}" in plain
                assert "microprice 123456789012.1234567890" in plain  # 12.8 digits, rounded
                assert "imbalance(10) -1.000 strong_sell" in plain
                assert "latency recv→deliver p50 -999 µs p99 987.65 s" in plain
                assert "exch→recv p50 -123.46 s p99 99999.90 s" in plain
                assert plain.count(f"{BIG_PRICE[:-1]}1  {BIG_QTY[:-1]}1") == 2
                framed = render_ladder(view, title=title, width=80, height=24, color=color)
                assert max(widths(framed)) <= 80
                assert len(framed.splitlines()) <= 23


@pytest.mark.parametrize("width", [120, 60, 40, 20, 5, 1])
def test_the_analytics_header_is_never_wider_than_the_terminal(width: int) -> None:
    for market in MarketStatus:
        view = analytics_view("LONGCOINNAME.XYZ/USDCOIN.QQQ", "authenticating", "live", market)
        for color in (False, True):
            frame = render_ladder(view, title="kraken-ws demo", width=width, color=color)
            assert max(widths(frame)) <= width, frame


def test_a_usual_frame_keeps_its_levels_and_hint_on_80_by_24() -> None:
    book = live_book([(f"6299{n}.1", "0.12345678") for n in range(9, -1, -1)], ASKS)
    tracker = fed_tracker()
    numbers = ("63000.1", "1", "63000.2", "1", "63000.1", "1234.5", "63000.0", "62000.0")
    tracker.feed(Ticker.of("BTC/USD", *numbers, "64000.0", "-12.3", "-0.02"))
    for n in range(TRADES_SHOWN):
        trade = Trade("BTC/USD", "buy", Decimal("63000.1"), Decimal("0.5"), "limit", n, TIMESTAMP)
        tracker.feed(trade)
    latency = report(delivery=[0.00004], exchange=[0.0015])
    view = take_view(tracker, book, now=100.5, elapsed=0.5, latency=latency)
    frame = ANSI.sub("", render_ladder(view, title="kraken-ws book", width=80, height=24))
    lines = frame.splitlines()
    assert len(lines) <= 23 and max(widths(frame)) <= 80
    assert lines[-1] == " Ctrl-C to quit"
    assert sum(line.startswith("  ask  ") for line in lines) >= 2  # all the asks there are
    assert sum(line.startswith("  bid  ") for line in lines) >= 3
    assert any(line.startswith(" microprice ") for line in lines)
    assert any(line.startswith(" latency recv→deliver ") for line in lines)


# --------------------------------------------------------------------------- the JSON object


def test_ladder_json_writes_exact_numbers() -> None:
    book = live_book([("0.00005100", "0.00000005"), ("0.00005000", "12.5")], [("0.00005200", "3")])
    latency = LatencyFigures(4.5e-5, 1.25e-4, None, None)
    text = ladder_json(
        book, depth=25, market=MarketStatus.ACTIVE, latency=latency, timestamp=TIMESTAMP
    )
    assert "\n" not in text and "E" not in text.replace("BTC", "")
    # Kraken's own digits, as JSON numbers: trailing zeros kept, never an exponent.
    assert '"bids":[{"price":0.00005100,"qty":0.00000005,"cumulative":0.00000005},' in text
    assert '{"price":0.00005000,"qty":12.5,"cumulative":12.50000005}]' in text
    assert '"asks":[{"price":0.00005200,"qty":3,"cumulative":3}]' in text
    data = json.loads(text, parse_float=Decimal)
    assert data["type"] == "ladder" and data["symbol"] == "BTC/USD"
    assert data["timestamp"] == TIMESTAMP and data["status"] == "active"
    assert data["spread"] == Decimal("0.00000100") and data["mid"] == Decimal("0.00005150")
    assert data["spread_bps"] == Decimal("194.1747572815533980582524272")
    # (0.000051 * 3 + 0.000052 * 0.00000005) / 3.00000005
    assert data["microprice"] == Decimal("0.00005100000001666666638888889352")
    assert data["imbalance"] == Decimal("0.6129032270551508804672552243")  # 9.5 / 15.5
    assert data["signal"] == "strong_buy"
    assert data["latency"] == {
        "delivery": {"p50": Decimal("0.000045"), "p99": Decimal("0.000125")},
        "exchange": {"p50": None, "p99": None},
    }
    bare = json.loads(ladder_json(book, depth=1))
    assert bare["status"] is None and bare["latency"] is None and bare["timestamp"] is None
    assert len(bare["bids"]) == len(bare["asks"]) == 1


# --------------------------------------------------------------------------- the commands


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_demo_computes_the_analytics_per_frame_not_per_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = {"book_pressure": 0, "microprice": 0}

    def counted(name: str) -> Any:
        function = getattr(ladder, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(ladder, name, counted(name))
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code = cli.main(["demo", "--depth", "25", "--duration", "1.5"])
    assert code == 0, capsys.readouterr().err
    out = terminal.getvalue()
    frames = out.split("\x1b[H")[1:]
    assert max(widths(out)) <= 80
    verified = int(re.findall(r"summary: BTC/USD (\d+) book updates verified", out)[-1])
    assert 1 <= calls["book_pressure"] <= len(frames)  # once per frame drawn on a live book
    assert calls["microprice"] == calls["book_pressure"]
    assert verified > 2 * len(frames)  # many more updates than frames
    last = ANSI.sub("", frames[-1])
    assert "BTC/USD   state subscribed   book live   market active" in last
    micro = re.search(
        r"^ microprice (\d+\.\d+)   imbalance\(10\) [+-][01]\.\d{3} (\w+)", last, re.M
    )
    assert micro and micro[2] in SIGNALS, last
    asks = [Decimal(p) for p in re.findall(r"^  ask  +(\d+\.\d+) ", last, re.M)]
    bids = [Decimal(p) for p in re.findall(r"^  bid  +(\d+\.\d+) ", last, re.M)]
    assert bids[0] <= Decimal(micro[1]) <= asks[-1]  # between the best bid and the best ask
    # The CLI's client tracks latency (ClientConfig(latency=True)).
    assert re.search(r"^ latency recv→deliver p50 -?\d+(\.\d)? [µm]?s p99 ", last, re.M), last


def test_book_lines_show_the_analytics(capsys: pytest.CaptureFixture[str], sim: SimThread) -> None:
    code = cli.main(["book", "ETH/USD", "--url", sim.url, "--duration", "1.2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(
        r"ETH/USD subscribed \(book live\) \|.* \| market active \| microprice \d+\.\d+ \| "
        r"imbalance\(10\) [+-][01]\.\d{3} \w+ \| latency recv→deliver p50 ",
        out,
    ), out


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(seed=5) as server:
        yield server


def test_book_json_prints_one_exact_object_per_update(sim: SimThread) -> None:
    args = ("book", "BTC/USD", "--json", "--depth", "25", "--url", sim.url, "--duration", "2")
    with cli_process(*args) as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # flushed as it is written: read while it runs
        assert process.poll() is None, first
        rest, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "summary: BTC/USD " in err  # stdout is JSON only
    lines = [first, *rest.splitlines()]
    assert len(lines) > 5, lines
    objects = [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in lines]
    assert objects[0]["timestamp"] is not None
    exchange = []
    for data in objects:
        assert data["type"] == "ladder" and data["symbol"] == "BTC/USD"
        assert data["status"] == "active" and data["signal"] in SIGNALS
        bids, asks = data["bids"], data["asks"]
        assert 0 < len(bids) <= 25 and 0 < len(asks) <= 25
        best_bid, best_ask = bids[0]["price"], asks[0]["price"]
        assert best_bid <= data["microprice"] <= best_ask
        assert -1 <= data["imbalance"] <= 1
        assert data["spread"] == best_ask - best_bid and data["mid"] == (best_bid + best_ask) / 2
        assert data["spread_bps"] == pytest.approx(data["spread"] / data["mid"] * 10_000)
        for side in (bids, asks):
            running = Decimal(0)
            for level in side:
                running += level["qty"]
                assert level["cumulative"] == running  # exact running sums
                assert level["price"].as_tuple().exponent == -1  # BTC/USD's digits, kept
                assert level["qty"].as_tuple().exponent == -8
            assert side[-1]["cumulative"] == sum(level["qty"] for level in side)
        prices = [level["price"] for level in bids]
        assert prices == sorted(prices, reverse=True)
        latency = data["latency"]
        delivery = latency["delivery"]
        assert delivery["p50"] is not None and 0 <= delivery["p50"] <= delivery["p99"]
        if latency["exchange"]["p50"] is not None:
            exchange.append(latency["exchange"])
    assert exchange and all(figures["p50"] <= figures["p99"] for figures in exchange)
    assert re.search(r'"microprice":\d+\.\d+,', lines[-1])  # a number, not a string
