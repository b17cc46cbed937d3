"""Every line ``kraken-ws demo`` draws on a terminal fits its width: 80 columns by default.

The ladder is rendered with the widest values there are (long symbols, large prices and
quantities, big counters, every connection and book state), and the demo itself is run
on a fake 80 x 24 terminal; widths are measured with ANSI codes removed.
"""

from __future__ import annotations

import io
import re
import sys
from decimal import Decimal

import pytest

from kraken_proto.book import BookState
from kraken_proto.events import BookLevel, StateChanged, Ticker, Trade
from kraken_proto.state import ConnectionState
from kraken_transports import cli
from kraken_transports.ladder import (
    TRADES_SHOWN,
    LadderView,
    MarketTracker,
    clip,
    render_ladder,
    render_summary,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMESTAMP = "2026-08-01T02:53:53.398143Z"
STATES = [state.value for state in ConnectionState]
BOOK_STATES = [state.value for state in BookState] + ["absent"]
LONGEST_STATE = max(STATES, key=len)
BIG_PRICE = "123456789012.12345678"
BIG_QTY = "98765432109.87654321"


def widths(text: str) -> list[int]:
    """The visible width of each line of ``text``."""
    return [len(ANSI.sub("", line)) for line in text.splitlines()]


def big_view(symbol: str, state: str, book_state: str) -> LadderView:
    """A frame with the widest values: large numbers everywhere, a full trade list."""
    tracker = MarketTracker(symbol)
    for n in range(TRADES_SHOWN):
        side = "sell" if n % 2 else "buy"
        tracker.feed(
            Trade(symbol, side, Decimal(BIG_PRICE), Decimal(BIG_QTY), "limit", n, TIMESTAMP)
        )
    tracker.feed(
        Ticker.of(
            symbol,
            *(
                Decimal(x)
                for x in (  # bid, bid_qty, ask, ask_qty, last, volume, vwap, low, high,
                    BIG_PRICE,  # change, change_pct
                    BIG_QTY,
                    BIG_PRICE,
                    BIG_QTY,
                    BIG_PRICE,
                    "123456789012345.12345678",
                    BIG_PRICE,
                    BIG_PRICE,
                    BIG_PRICE,
                    "-99999.123456789",
                    "-99.99",
                )
            ),
        )
    )
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
    )


@pytest.mark.parametrize("symbol", ["BTC/USD", "WBTC.M/USDT.M", "LONGCOINNAME.XYZ/USDCOIN.QQQ"])
@pytest.mark.parametrize("color", [False, True])
def test_every_ladder_line_fits_80_columns_in_every_state(symbol: str, color: bool) -> None:
    title = "kraken-ws demo · simulator at ws://127.0.0.1:65535/v2 (seed 12345678901234567890)"
    for state in STATES:
        for book_state in BOOK_STATES:
            view = big_view(symbol, state, book_state)
            frame = render_ladder(view, title=title, color=color)  # 80 columns by default
            assert max(widths(frame)) <= 80, (state, book_state, frame)
            assert max(widths(render_ladder(view, title=title, width=80, color=color))) <= 80
            plain = ANSI.sub("", frame)
            # Nothing that fits was cut: the state, the counters, every level's numbers.
            assert f"state {state}" in plain
            assert f"book {book_state}" in plain
            assert "verified 123,456,789,012" in plain and "trades 123,456,789,012" in plain
            assert plain.count(f"{BIG_PRICE[:-1]}1  {BIG_QTY[:-1]}1") == 2  # an ask and a bid
            assert "last 123456789012.12345678" in plain
            assert "vol 123456789012345.12345678" in plain and "change -99.99%" in plain
            if len(symbol) < 70:
                assert f" {symbol}   state" in plain or f" {symbol}\n" in plain
            # At the terminal's height too, the longest state the same.
            framed = render_ladder(view, title=title, width=80, height=24, color=color)
            assert max(widths(framed)) <= 80
            assert len(framed.splitlines()) <= 23  # the cursor's line stays free


def test_the_status_line_of_the_longest_state_fits_and_says_everything() -> None:
    view = big_view("BTC/USD", LONGEST_STATE, "awaiting_snapshot")
    plain = render_ladder(view, title="t", width=80, color=False).splitlines()
    assert plain[1:4] == [
        " BTC/USD   state authenticating   book awaiting_snapshot",
        " 1,234,567 ev/s   verified 123,456,789,012   resyncs 98,765",
        " trades 123,456,789,012   987654321.5 s",
    ]


@pytest.mark.parametrize("width", [120, 60, 40, 20, 5, 1])
def test_never_wider_than_the_terminal(width: int) -> None:
    for state in (LONGEST_STATE, "subscribed"):
        view = big_view("LONGCOINNAME.XYZ/USDCOIN.QQQ", state, "awaiting_snapshot")
        for color in (False, True):
            frame = render_ladder(view, title="kraken-ws demo", width=width, color=color)
            assert max(widths(frame)) <= width, frame


def test_clip_counts_visible_columns_and_resets_a_cut_colour() -> None:
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdef", 4) == "abc…"
    painted = "\x1b[31mask\x1b[0m  63000.1"
    assert clip(painted, 12) == painted  # the codes take no column
    assert clip(painted, 5) == "\x1b[31mask\x1b[0m …\x1b[0m"
    assert clip(painted, 4) == "\x1b[31mask…\x1b[0m"  # cut inside the colour: reset
    assert clip("\x1b[1mbold title\x1b[0m", 3) == "\x1b[1mbo…\x1b[0m"


def test_summary_wraps_to_the_terminal_and_stays_one_line_for_logs() -> None:
    tracker = MarketTracker("LONGCOINNAME.XYZ/USDCOIN.QQQ")
    tracker.feed(StateChanged("subscribing", LONGEST_STATE))
    tracker.verified = tracker.trade_count = tracker.events = 123_456_789_012
    one_line = render_summary(tracker, 987_654.3)
    assert "\n" not in one_line and len(one_line) > 80
    wrapped = render_summary(tracker, 987_654.3, 80)
    assert max(widths(wrapped)) <= 80
    assert " ".join(wrapped.split()) == " ".join(one_line.split())  # the same words
    assert max(widths(render_summary(tracker, 987_654.3, 30))) <= 30


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("columns", "lines"), [(80, 24), (120, 40)])
def test_demo_on_a_terminal_keeps_to_its_size(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    columns: int,
    lines: int,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    monkeypatch.setenv("LINES", str(lines))
    monkeypatch.delenv("NO_COLOR", raising=False)
    code = cli.main(["demo", "--symbol", "DOGE/USD", "--depth", "100", "--duration", "1.2"])
    assert code == 0, capsys.readouterr().err
    out = terminal.getvalue()
    frames = out.split("\x1b[H")[1:]  # each redraw starts at the home position
    assert len(frames) >= 3
    assert max(widths(out)) <= columns
    last = ANSI.sub("", frames[-1])
    assert "DOGE/USD   state subscribed   book live" in last
    assert re.search(r"^ \d[\d,]* ev/s   verified [\d,]+   resyncs 0   trades [\d,]+ ", last, re.M)
    ladder, summary = last.split(" Ctrl-C to quit\n")
    assert len(ladder.splitlines()) + 1 <= lines - 1  # the frame fits the screen
    assert len(re.findall(r"^  ask  ", ladder, re.M)) >= 3  # depth 100: as many as fit
    assert summary.startswith("summary: DOGE/USD ")


def test_unknown_terminal_size_means_80_by_24(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setattr(sys, "__stdout__", None)  # what shutil asks when no variable is set
    assert cli._terminal_size() == (80, 24)
    monkeypatch.setenv("COLUMNS", "132")
    monkeypatch.setenv("LINES", "50")
    assert cli._terminal_size() == (132, 50)
