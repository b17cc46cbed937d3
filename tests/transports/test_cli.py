"""Tests of the ``kraken-ws`` command (kraken_transports.cli, .ladder, __main__).

``main([...])`` runs in-process against the simulator served from a background thread
(``SimThread``); the entry point runs once as a subprocess (``--version``) and once to be
interrupted with SIGINT. Loopback only; every live command runs with ``--duration``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from cliproc import cli_process
from simthread import SimThread, closed_port_url

from kraken_proto import ClientConfig
from kraken_proto.events import BookLevel, BookUpdate, StateChanged, Ticker, Trade
from kraken_transports import cli
from kraken_transports.aio import connect
from kraken_transports.ladder import (
    LadderView,
    MarketTracker,
    depth_bar,
    render_ladder,
    render_line,
)

REPO = Path(__file__).resolve().parents[2]
TIMESTAMP = "2026-08-01T02:53:53.398143Z"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(seed=3) as server:
        yield server


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def more_trades(
    capsys: pytest.CaptureFixture[str],
    sim: SimThread,
    lines: list[str],
    is_trade: Callable[[str], bool],
    *flags: str,
) -> list[str]:
    """Lines of further one-second ``stream --channel trade`` runs until one shows a trade.

    The simulated market trades in bursts, so any one window may be quiet: a test that needs
    a trade waits for one (at most ten more seconds) instead of trusting a single window.
    Returns ``[]`` when ``lines`` already hold a trade.
    """
    more: list[str] = []
    for _ in range(10):
        if any(is_trade(line) for line in lines + more):
            break
        argv = ("stream", "BTC/USD", "--channel", "trade", *flags, "--url", sim.url)
        code, out, err = run_cli(capsys, *argv, "--duration", "1")
        assert code == 0, err
        more += out.splitlines()
    return more


def book_entries(path: Path) -> Counter[str]:
    """Book messages per symbol among the received frames of a capture."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] != "in":
            continue
        frame = json.loads(entry["text"])
        if frame.get("channel") == "book" and frame.get("type") in ("snapshot", "update"):
            for data in frame["data"]:
                counts[data["symbol"]] += 1
    return counts


# --------------------------------------------------------------------------- help and version


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.startswith("kraken-ws 0.1.0")
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("demo", "stream", "book", "record", "replay", "serve"):
        assert command in out
    for command in ("demo", "stream", "book", "record", "replay", "serve"):
        code, out, _ = run_cli(capsys, command, "--help")
        assert code == 0
        assert f"usage: kraken-ws {command}" in out


def test_python_m_entry_point_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kraken_transports", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kraken-ws 0.1.0 (kraken-ws-sdk, Python")


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stream", "BTC/USD", "--channel", "trade,foo"], "argument --channel: unknown channel"),
        (["stream", "BTCUSD"], "argument SYMBOL: 'BTCUSD' is not a pair name"),
        (["book", "BTC/USD", "--depth", "7"], "argument --depth: depth must be one of 10, 25"),
        (["stream", "BTC/USD", "--duration", "-1"], "argument --duration: must be a number"),
        (["stream", "BTC/USD", "--interval", "2"], "argument --interval: interval must be"),
        (["record", "BTC/USD", "--channel", "book"], "-o/--output"),
        (["stream"], "the following arguments are required: SYMBOL"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["demo", "--symbol", "FOO/BAR"], "argument --symbol: the simulator has no 'FOO/BAR'"),
        (
            ["stream", "BTC/USD", "--url", "ws://example.com/v2"],
            "argument --url: endpoint: ws:// to a non-loopback host needs allow_insecure=True",
        ),
        (["stream", "BTC/USD", "--url", "http://127.0.0.1/v2"], "argument --url: endpoint"),
        (["replay", "/nonexistent/capture.jsonl"], "argument CAPTURE: cannot read"),
        (["serve", "--host", "8.8.8.8"], "argument --host: refusing to serve"),
        (["serve", "--port", "70000"], "argument --port: must be between 0 and 65535"),
    ],
)
def test_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "usage: kraken-ws" in err
    assert "Traceback" not in err
    assert out == ""


def test_record_to_an_unwritable_path_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing-dir" / "capture.jsonl"
    code, _, err = run_cli(
        capsys,
        "record",
        "BTC/USD",
        "--channel",
        "book",
        "-o",
        str(target),
        "--url",
        "ws://127.0.0.1:1/v2",
    )
    assert code == 2
    assert "argument -o/--output: cannot write" in err


# --------------------------------------------------------------------------- connection failures


def test_unreachable_port_exits_1_with_cannot_connect(capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    start = time.monotonic()
    code, _, err = run_cli(capsys, "stream", "BTC/USD", "--url", url, "--duration", "5")
    assert code == 1
    assert f"error: cannot connect to {url}: " in err
    assert "gave up after 3 reconnect attempts" in err
    assert "Traceback" not in err
    assert time.monotonic() - start < 5


def test_refused_symbol_exits_1_with_krakens_text(
    capsys: pytest.CaptureFixture[str], sim: SimThread
) -> None:
    code, _, err = run_cli(
        capsys, "stream", "BTC/USD", "FOO/BAR", "--channel", "trade", "--url", sim.url
    )
    assert code == 1
    assert "error: Kraken refused the subscription: Currency pair not supported FOO/BAR" in err


def test_book_with_refused_symbol_exits_1(
    capsys: pytest.CaptureFixture[str], sim: SimThread
) -> None:
    code, _, err = run_cli(capsys, "book", "NOPE/USD", "--url", sim.url, "--duration", "1")
    assert code == 1
    assert "Currency pair not supported NOPE/USD" in err


def test_keyboard_interrupt_exits_130_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(coroutine: object) -> int:
        coroutine.close()  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_asyncio_run", interrupted)
    code, _, err = run_cli(capsys, "demo")
    assert code == 130
    assert "Traceback" not in err


def test_sigint_stops_the_demo_with_130() -> None:
    with cli_process("demo", limit=20) as process:
        assert process.stdout is not None
        first = process.stdout.readline()  # the first compact frame: the demo is live
        assert "BTC/USD" in first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "summary: BTC/USD" in out


# --------------------------------------------------------------------------- demo and book


def test_demo_prints_frames_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "demo", "--duration", "2")
    assert code == 0, err
    lines = out.splitlines()
    frames = [line for line in lines if line.startswith("[")]
    assert 1 <= len(frames) <= 3
    assert "\x1b[" not in out  # not a terminal: no ANSI codes
    assert all("BTC/USD subscribed (book live)" in frame for frame in frames)
    assert re.search(r"spread \d+\.\d+", frames[-1])
    verified = [int(n) for n in re.findall(r"verified (\d+)", out)]
    assert verified and min(verified) > 0
    summary = lines[-1]
    match = re.fullmatch(
        r"summary: BTC/USD (\d+) book updates verified, 0 resyncs, (\d+) trades, "
        r"\d+ events in 2\.\d s \(state subscribed\)",
        summary,
    )
    assert match, summary
    assert int(match[1]) >= verified[-1] > 0


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_on_a_terminal_redraws_the_ladder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.delenv("NO_COLOR", raising=False)
    code = cli.main(["demo", "--symbol", "eth/usd", "--depth", "25", "--duration", "0.8"])
    assert code == 0, capsys.readouterr().err
    out = terminal.getvalue()
    assert out.startswith("\x1b[?25l\x1b[2J\x1b[H")  # hide cursor, clear screen, home
    assert out.count("\x1b[H") >= 3  # redrawn a few times
    assert "\x1b[?25h" in out  # cursor shown again
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.split("\x1b[H")[-1])
    assert "ETH/USD   state subscribed   book live" in last
    assert len(re.findall(r"^  ask  ", last, re.M)) >= 3
    assert len(re.findall(r"^  bid  ", last, re.M)) >= 3
    assert "█" in last
    assert re.search(r"spread 0\.\d\d .* mid \d+\.\d+", last)
    assert "summary: ETH/USD" in last


def test_book_command_against_the_simulator(
    capsys: pytest.CaptureFixture[str], sim: SimThread
) -> None:
    code, out, err = run_cli(
        capsys, "book", "XRP/USD", "--url", sim.url, "--depth", "25", "--duration", "1.1"
    )
    assert code == 0, err
    assert "XRP/USD subscribed (book live)" in out
    assert re.search(r"bid 1\.\d{5} x [\d.]+ \| ask 1\.\d{5}", out)
    verified = int(re.findall(r"verified (\d+)", out)[-1])
    assert verified > 0
    assert out.splitlines()[-1].startswith(f"summary: XRP/USD {verified} book updates verified")


# --------------------------------------------------------------------------- stream


def test_stream_json_book_and_trade_for_two_symbols(
    capsys: pytest.CaptureFixture[str], sim: SimThread
) -> None:
    code, out, err = run_cli(
        capsys,
        "stream",
        "BTC/USD",
        "ETH/USD",
        "--channel",
        "book",
        "--channel",
        "trade",
        "--json",
        "--url",
        sim.url,
        "--duration",
        "1.5",
    )
    assert code == 0, err
    lines = out.splitlines()
    lines += more_trades(capsys, sim, lines, lambda line: '"type":"trade"' in line, "--json")
    objects = [json.loads(line) for line in lines]
    types = Counter(obj["type"] for obj in objects)
    assert sum(json.loads(line)["type"] == "subscribed" for line in out.splitlines()) == 4
    assert types["book"] > 4
    assert types["trade"] > 0
    assert {"state", "status"} <= set(types)
    books = [obj for obj in objects if obj["type"] == "book"]
    trades = [obj for obj in objects if obj["type"] == "trade"]
    assert {obj["symbol"] for obj in books} == {"BTC/USD", "ETH/USD"}
    assert {obj["symbol"] for obj in trades} <= {"BTC/USD", "ETH/USD"}
    for symbol, decimals in (("BTC/USD", 1), ("ETH/USD", 2)):
        first = next(obj for obj in books if obj["symbol"] == symbol)
        assert first["snapshot"] is True
        assert len(first["bids"]) == len(first["asks"]) == 10
        bids = [Decimal(level["price"]) for level in first["bids"]]
        asks = [Decimal(level["price"]) for level in first["asks"]]
        assert bids == sorted(bids, reverse=True)
        assert asks == sorted(asks)
        assert bids[0] < asks[0]
        assert all(
            -Decimal(level["price"]).as_tuple().exponent == decimals for level in first["bids"]
        )
    for obj in books:
        assert isinstance(obj["checksum"], int)
        assert "received_at" not in obj
        for level in obj["bids"] + obj["asks"]:
            for key in ("price", "qty"):
                assert isinstance(level[key], str)
                assert "E" not in level[key]
                assert Decimal(level[key]) >= 0
    for obj in trades:
        assert obj["side"] in ("buy", "sell")
        assert isinstance(obj["price"], str) and Decimal(obj["price"]) > 0
        assert isinstance(obj["qty"], str) and Decimal(obj["qty"]) > 0


def test_stream_human_readable_lines(capsys: pytest.CaptureFixture[str], sim: SimThread) -> None:
    code, out, err = run_cli(
        capsys,
        "stream",
        "BTC/USD",
        "--channel",
        "trade,ticker,book,ohlc",
        "--url",
        sim.url,
        "--duration",
        "1.2",
    )
    assert code == 0, err
    lines = out.splitlines()
    clock = r"\d\d:\d\d:\d\d\.\d{3}"
    trade = re.compile(rf"{clock} trade BTC/USD (buy|sell) \d+\.\d{{8}} @ \d+\.\d$")
    lines += more_trades(capsys, sim, lines, lambda line: trade.match(line) is not None)
    assert any(trade.match(line) for line in lines), out
    assert any(re.match(rf"{clock} ticker BTC/USD bid \d+\.\d x ", line) for line in lines)
    assert any(re.match(rf"{clock} ohlc BTC/USD 1m open ", line) for line in lines)
    snapshot = re.compile(
        rf"{clock} book BTC/USD snapshot 10 bids 10 asks \| best \d+\.\d / \d+\.\d "
        r"spread \d+\.\d \| checksum \d+ ok$"
    )
    assert any(snapshot.match(line) for line in lines), out
    assert any(" book BTC/USD update " in line for line in lines)
    assert any("state subscribing -> subscribed" in line for line in lines)


# --------------------------------------------------------------------------- record and replay


def test_record_then_replay(
    capsys: pytest.CaptureFixture[str], sim: SimThread, tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl"
    code, out, err = run_cli(
        capsys,
        "record",
        "BTC/USD",
        "ETH/USD",
        "--channel",
        "book,trade",
        "-o",
        str(capture),
        "--url",
        sim.url,
        "--duration",
        "1.5",
    )
    assert code == 0, err
    entries = [json.loads(line) for line in capture.read_text().splitlines()]
    assert all(set(entry) == {"t", "dir", "text"} for entry in entries)
    times = [entry["t"] for entry in entries]
    assert times[0] == 0.0
    assert times == sorted(times)
    assert 1.0 < times[-1] < 3.0
    sent = [json.loads(entry["text"]) for entry in entries if entry["dir"] == "out"]
    assert [(m["method"], m["params"]["channel"]) for m in sent[:2]] == [
        ("subscribe", "book"),
        ("subscribe", "trade"),
    ]
    received = sum(1 for entry in entries if entry["dir"] == "in")
    assert f"recorded {len(entries)} messages ({received} in, {len(sent)} out)" in out

    recorded = book_entries(capture)
    assert set(recorded) == {"BTC/USD", "ETH/USD"}
    code, out, err = run_cli(capsys, "replay", str(capture))
    assert code == 0, out + err
    assert f"frames in: {received}" in out
    for symbol, count in recorded.items():
        assert re.search(
            rf"^  {re.escape(symbol)}  {count} verified, 0 resyncs, final: live", out, re.M
        )
    assert "resyncs: 0, protocol errors: 0, subscriptions failed: 0" in out
    assert f"OK: {sum(recorded.values())} book messages verified" in out


def test_replay_of_a_real_kraken_capture(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    path = data_dir / "kraken-v2-real" / "btcusd_l2.jsonl"
    code, out, err = run_cli(capsys, "replay", str(path))
    assert code == 0, err
    assert re.search(
        r"^  BTC/USD  301 verified, 0 resyncs, final: live, best bid \d+\.\d, best ask \d+\.\d$",
        out,
        re.M,
    ), out
    assert "events: BookUpdate 301," in out
    assert "OK: 301 book messages verified" in out


def test_replay_with_a_corrupted_checksum_exits_1(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path: Path
) -> None:
    lines = (data_dir / "kraken-v2-real" / "btcusd_l2.jsonl").read_text().splitlines()
    updates = [i for i, line in enumerate(lines) if '\\"type\\":\\"update\\"' in line]
    target = updates[20]
    entry = json.loads(lines[target])
    frame = json.loads(entry["text"])
    frame["data"][0]["checksum"] = (frame["data"][0]["checksum"] + 1) % 2**32
    entry["text"] = json.dumps(frame, separators=(",", ":"))
    lines[target] = json.dumps(entry)
    corrupted = tmp_path / "corrupted.jsonl"
    corrupted.write_text("\n".join(lines) + "\n")

    code, out, _ = run_cli(capsys, "replay", str(corrupted))
    assert code == 1
    assert re.search(r"^  BTC/USD  \d+ verified, 1 resyncs", out, re.M), out
    assert "resyncs: 1, protocol errors: 0" in out
    assert "  resync BTC/USD: " in out
    assert "FAILED" in out


def test_replay_of_a_malformed_capture_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0.0, "dir": "in", "text": "{}"}\nnot json\n')
    code, _, err = run_cli(capsys, "replay", str(bad))
    assert code == 1
    assert "capture line 2" in err


# --------------------------------------------------------------------------- serve


def test_serve_on_a_busy_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", "--port", str(port))
    assert code == 1
    assert f"error: cannot serve on 127.0.0.1:{port}" in err


# --------------------------------------------------------------------------- the frame hook


def test_frame_hook_sees_every_message_in_order(sim: SimThread) -> None:
    seen: list[tuple[str, str | bytes, float]] = []
    calls = 0

    def failing_hook(direction: str, text: str | bytes, now: float) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a broken hook must not break the client")

    async def session(hook: object) -> list[BookUpdate]:
        updates: list[BookUpdate] = []
        client = connect(ClientConfig(endpoint=sim.url), frame_hook=hook)  # type: ignore[arg-type]
        client.on(BookUpdate, updates.append)
        async with client:
            await asyncio.wait_for(client.subscribe("book", "BTC/USD"), 5)
            while len(updates) < 3:
                await asyncio.sleep(0.05)
            stats = client.stats
        assert stats.frames_in > 0
        return updates

    updates = asyncio.run(asyncio.wait_for(session(lambda d, t, n: seen.append((d, t, n))), 10))
    directions = [direction for direction, _, _ in seen]
    assert directions[0] in ("in", "out")
    out = [json.loads(text) for direction, text, _ in seen if direction == "out"]
    assert out[0]["method"] == "subscribe"
    assert out[0]["params"]["symbol"] == ["BTC/USD"]
    received = [json.loads(text) for direction, text, _ in seen if direction == "in"]
    assert received[0]["channel"] == "status"
    assert sum(1 for frame in received if frame.get("channel") == "book") >= len(updates)
    times = [now for _, _, now in seen]
    assert times == sorted(times)

    assert len(asyncio.run(asyncio.wait_for(session(failing_hook), 10))) >= 3
    assert calls > 0


# --------------------------------------------------------------------------- rendering units


def level(price: str, qty: str) -> BookLevel:
    return BookLevel.of(price, qty)


def test_event_to_json_writes_exact_positional_decimals() -> None:
    update = BookUpdate(
        "BTC/USD", (level("63000.0", "0.00000000"),), (level("63000.1", "5E-8"),), 123, TIMESTAMP
    )
    data = msgspec.json.decode(cli.event_to_json(update))
    assert data == {
        "type": "book",
        "symbol": "BTC/USD",
        "bids": [{"price": "63000.0", "qty": "0.00000000"}],
        "asks": [{"price": "63000.1", "qty": "0.00000005"}],
        "checksum": 123,
        "timestamp": TIMESTAMP,
        "snapshot": False,
    }
    trade = Trade("BTC/USD", "buy", Decimal("63005.1"), Decimal("0.0120"), "market", 7, TIMESTAMP)
    assert cli.event_to_text(trade) == "02:53:53.398 trade BTC/USD buy 0.0120 @ 63005.1"
    assert cli.event_to_json(trade).startswith('{"type":"trade","symbol":"BTC/USD","side":"buy"')
    state = StateChanged("connecting", "subscribing", "connected")
    assert cli.event_to_text(state) is not None
    assert cli.event_to_text(state).endswith(" state connecting -> subscribing (connected)")  # type: ignore[union-attr]


def test_depth_bar_uses_eighths_and_never_hides_a_level() -> None:
    assert depth_bar(Decimal(10), Decimal(10), 4) == "████"
    assert depth_bar(Decimal(5), Decimal(10), 4) == "██"
    assert depth_bar(Decimal("1.5625"), Decimal(10), 4) == "▋"  # 5/8 of a cell
    assert depth_bar(Decimal("0.00001"), Decimal(10), 4) == "▏"
    assert depth_bar(Decimal(0), Decimal(10), 4) == ""


def test_render_ladder_puts_asks_above_bids() -> None:
    tracker = MarketTracker("BTC/USD")
    tracker.feed(StateChanged("subscribing", "subscribed"))
    tracker.feed(Trade("BTC/USD", "sell", Decimal("99.5"), Decimal("2"), "limit", 1, TIMESTAMP))
    tracker.feed(Trade("ETH/USD", "buy", Decimal("1"), Decimal("1"), "limit", 2, TIMESTAMP))
    tracker.feed(
        Ticker.of(
            "BTC/USD",
            *(
                Decimal(x)
                for x in ("99", "1", "101", "1", "100", "5", "100", "90", "110", "1", "1.5")
            ),
        )
    )
    view = LadderView(
        symbol="BTC/USD",
        state=tracker.state,
        book_state="live",
        asks=[level("101.0", "1.00000000"), level("102.0", "4.00000000")],
        bids=[level("99.0", "2.00000000"), level("98.0", "0.00000005")],
        spread=Decimal("2.0"),
        mid=Decimal("100.0"),
        trades=list(reversed(tracker.trades)),
        ticker=tracker.ticker,
        verified=5,
        resyncs=0,
        trade_count=tracker.trade_count,
        events_per_second=12.0,
        elapsed=1.5,
    )
    frame = render_ladder(view, title="test", width=60, color=False)
    rows = frame.splitlines()
    ask_rows = [i for i, row in enumerate(rows) if row.startswith("  ask")]
    bid_rows = [i for i, row in enumerate(rows) if row.startswith("  bid")]
    spread_row = next(i for i, row in enumerate(rows) if "spread 2.0" in row)
    assert max(ask_rows) < spread_row < min(bid_rows)
    assert "102.0" in rows[ask_rows[0]]  # the highest ask on top, the best ask last
    assert "101.0" in rows[ask_rows[-1]]
    assert "0.00000005" in rows[bid_rows[-1]]  # positional, never 5E-8
    assert "mid 100.0" in rows[spread_row]
    assert rows[ask_rows[0]].endswith("█" * (60 - 5 - 10 - 15))  # the largest qty: a full bar
    assert "state subscribed" in frame and "verified 5" in frame and "trades 1" in frame
    assert "02:53:53.398  sell   99.5  2" in frame
    assert "change +1.50%" in frame
    assert "\x1b[" not in frame
    assert "\x1b[31m" in render_ladder(view, title="test", color=True)

    line = render_line(view)
    assert "\n" not in line
    assert "bid 99.0 x 2.00000000 | ask 101.0 x 1.00000000 | spread 2.0 | mid 100.0" in line
    assert "verified 5 | resyncs 0 | trades 1 | last trade sell 2 @ 99.5" in line
