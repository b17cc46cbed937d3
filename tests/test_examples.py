"""Every example in ``examples/`` runs as written against the simulator and prints real values.

Each example is a subprocess (``sys.executable``, a short ``--duration``, the embedded
simulator on 127.0.0.1: never ``--live``), and they all run at once, so this file takes
about as long as the slowest one. ``test_*.py`` examples run under pytest. Adding an
example is one line in :data:`EXAMPLES`: its file name, its arguments and what its output
must show (regular expressions that must match, or functions that check the output).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
TIMEOUT = 90.0  # seconds any one example may take on a busy machine before it is killed

ORDER_ID = r"O[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{6}"
PRICE = r"\d+\.\d+"

Check = str | Callable[[str], None]  # a regex to find (re.MULTILINE), or a check that raises


@dataclass(frozen=True)
class Example:
    script: str
    args: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()

    def command(self) -> list[str]:
        path = str(EXAMPLES_DIR / self.script)
        if self.script.startswith("test_"):  # a pytest file: run it the way its docstring says
            return [sys.executable, "-m", "pytest", path, "-p", "no:cacheprovider"]
        return [sys.executable, path, *self.args]


# --------------------------------------------------------------------------- checks


def ticker_prices(output: str) -> None:
    """A ticker line with Decimal prices, the bid below the ask."""
    match = re.search(rf"^BTC/USD +bid ({PRICE}) \({PRICE}\) +ask ({PRICE}) ", output, re.M)
    assert match, "no BTC/USD ticker line"
    assert Decimal(match[1]) < Decimal(match[2])


def in_order(*patterns: str) -> Callable[[str], None]:
    """The patterns match in this order."""

    def check(output: str) -> None:
        position = 0
        for pattern in patterns:
            match = re.compile(pattern, re.M).search(output, position)
            assert match, f"{pattern!r} not found after position {position}"
            position = match.end()

    return check


def accounting(output: str) -> None:
    """Per drop policy: the equation, the consumer's own count, the Dropped notices."""
    rows = re.findall(
        r"^(oldest|latest|coalesce) +received (\d+) = delivered (\d+) \+ dropped (\d+) "
        r"\+ coalesced (\d+) \+ queued (\d+)\n +the consumer read (\d+) events \(= delivered\) "
        r"and (\d+) Dropped notices reporting (\d+) dropped, (\d+) coalesced$",
        output,
        re.M,
    )
    assert {row[0] for row in rows} == {"oldest", "latest", "coalesce"}, output
    for policy, *numbers in rows:
        received, delivered, dropped, coalesced, queued, read, notices, told, merged = map(
            int, numbers
        )
        assert received == delivered + dropped + coalesced + queued, policy
        assert read == delivered, policy  # the consumer's own count agrees
        assert delivered > 0 and dropped + coalesced > 0 and notices > 0, policy  # it was slow
        assert told <= dropped and merged <= coalesced, policy
        assert (coalesced > 0) == (policy == "coalesce"), policy


def gap_policies(output: str) -> None:
    """Each policy reports the gap and ends as it should; buffer waits before resyncing."""
    blocks = dict(re.findall(r"^== gap_policy=(\w+) ==\n(.*?)(?=^==|\Z)", output, re.M | re.S))
    assert set(blocks) == {"resync", "ignore", "buffer"}, output
    outcomes = {"resync": "rebuilt from a fresh snapshot", "ignore": "delivered past the gap"}
    for policy, block in blocks.items():
        gap = rf"\[\+(\d+\.\d+)s\] GAP on executions: expected #2, got #3 -> policy {policy}"
        assert re.search(gap, block), block
        wanted = outcomes.get(policy, outcomes["resync"])
        assert re.search(rf"outcome: {ORDER_ID} {wanted}", block), block
    assert re.search(rf"executions #3 update: pending_new {ORDER_ID}", blocks["ignore"])
    held = re.search(
        r"\[\+(\d+\.\d+)s\] GAP.*\n(?:.*\n)*?.*\[\+(\d+\.\d+)s\] executions #1 snapshot",
        blocks["buffer"],
    )
    assert held and float(held[2]) - float(held[1]) >= 0.4, blocks["buffer"]  # 0.5 s buffer


def order_life(output: str) -> None:
    """Placed, amended and cancelled (the same order); refused; unknown, then reconciled."""
    placed = re.search(
        rf"^placed: +({ORDER_ID}) \(cl_ord_id \S+\) buy 0.0001 @ {PRICE}$", output, re.M
    )
    assert placed, output
    order = placed[1]
    in_order(
        rf"^  report:  new +{order}  status new$",
        rf"^amended: +{order} to 0.0002 @ {PRICE} \(\S+\)$",
        rf"^  report:  canceled +{order}  status canceled$",
        rf"^cancelled: {order}$",
        r"^refused: +add_order: EOrder:Order minimum not met$",
        r"^unknown: +add_order \(req_id \d+\): connection lost",
        rf"^reconciled: \S+ is open as ({ORDER_ID}) \(new\)$",
        rf"^cancelled: {ORDER_ID}$",
    )(output)


def analytics_frames(output: str) -> None:
    """Per frame: the microprice within the best bid and ask, the imbalance in [-1, 1] with
    the signal its thresholds give, running totals; the market active, large orders, trades."""
    top = rf"^    bid ({PRICE})  microprice ({PRICE})  ask ({PRICE})   spread "
    tops = re.findall(top, output, re.M)
    assert len(tops) >= 2, output
    for bid, micro, ask in tops:
        assert Decimal(bid) <= Decimal(micro) <= Decimal(ask) and Decimal(bid) < Decimal(ask)
    signals = re.findall(r"^  imbalance\(10\) ([+-]\d\.\d{4}) (\w+)  \(bid ", output, re.M)
    assert len(signals) == len(tops), output
    for text, signal in signals:
        size = abs(Decimal(text))  # rounded to 4 places: skip values next to a threshold
        if min(abs(size - Decimal("0.2")), abs(size - Decimal("0.5"))) > Decimal("0.0001"):
            strength = "strong_" if size >= Decimal("0.5") else ""
            way = "buy" if text.startswith("+") else "sell"
            assert signal == (f"{strength}{way}" if size >= Decimal("0.2") else "neutral"), text
    level = rf"^  (?:bid|ask) +{PRICE} +({PRICE})  cum +({PRICE})$"
    for qty, cumulative in re.findall(level, output, re.M):
        assert Decimal(cumulative) >= Decimal(qty) > 0
    assert re.search(r"^\[ *\d+\.\d s\] BTC/USD  market active \(market data ", output, re.M)
    assert re.search(
        rf"^  large orders \(>= 5 x median level\): (bid|ask) {PRICE} x ", output, re.M
    )
    assert re.search(rf"^    flow: LARGE_ORDER_APPEARED (bid|ask) {PRICE} ", output, re.M)
    trades = re.findall(
        rf"^  trades \(last 60 s\): (\d+), .* point of control {PRICE} ", output, re.M
    )
    assert trades and all(int(count) > 0 for count in trades), output


def latency_table(output: str) -> None:
    """The book channel's two latencies with ordered percentiles; pongs; a clock offset."""
    ms = r"(-?\d+\.\d{3})"
    row = rf"^(\w+) +(exchange→receive|receive→delivery) +(\d+) +{ms} +{ms} +{ms} +{ms}$"
    rows = re.findall(row, output, re.M)
    assert {("book", "exchange→receive"), ("book", "receive→delivery")} <= {r[:2] for r in rows}
    for channel, direction, count, *figures in rows:
        p50, p90, p99, most = map(Decimal, figures)
        assert int(count) > 0 and p50 <= p90 <= p99 <= most, (channel, direction, figures)
        assert direction == "exchange→receive" or p50 >= 0  # one clock: never negative
    pong = rf"^ping round trip: \d+ pongs, min {ms} ms, median {ms} ms, max {ms} ms$"
    pongs = re.search(pong, output, re.M)
    assert pongs and 0 < Decimal(pongs[1]) <= Decimal(pongs[2]) <= Decimal(pongs[3]), output
    offset = rf"^clock offset: Kraken's clock - this machine's = {ms} ms ± {ms} ms \(best of "
    clock = re.search(offset, output, re.M)
    assert clock and abs(Decimal(clock[1])) < 100, output  # the simulator runs on this machine


EXAMPLES = [
    Example("basic_usage.py", ("--duration", "2"), (ticker_prices, r"^done after 2 s: \d+ events")),
    Example(
        "advanced_usage.py",
        ("--duration", "2"),
        (
            r"^refused: ticker NOPE/USD: Currency pair not supported NOPE/USD$",
            rf"^ticker: ETH/USD bid {PRICE} ask {PRICE}$",
            in_order(
                "state: disconnected -> connecting",
                "state: subscribing -> subscribed",
                r"state: subscribed -> degraded \(retry 1 in \d\.\d\d s\)",
                "state: degraded -> connecting",
                "state: subscribing -> subscribed",
                "state: subscribed -> closed",
            ),
            r"^reconnects: 1$",
            rf"^bid range: BTC/USD {PRICE} \.\. {PRICE}$",
            r"^events: .*SubscriptionFailed 1, .*Ticker \d+",
        ),
    ),
    Example("analytics_demo.py", ("--duration", "3"), (analytics_frames,)),  # 3 frames
    Example("latency_demo.py", ("--duration", "2.5"), (latency_table,)),
    Example("backpressure_demo.py", ("--duration", "2", "--delay", "0.05"), (accounting,)),
    Example("sequencing_demo.py", ("--duration", "5"), (gap_policies,)),
    Example("trading_demo.py", ("--duration", "10"), (order_life,)),
    Example(
        "own_loop.py",
        ("--duration", "2"),
        (
            rf"^ticker: BTC/USD bid {PRICE} ask {PRICE}$",
            in_order(
                r"^registered socket 1 \(fd \d+\)$",
                r"state: connecting -> subscribing  \(socket fd \d+\)",
                r"state: subscribed -> degraded  \(socket fd -1\)",
                r"^registered socket 2 \(fd \d+(, the previous socket's number)?\)$",
                r"state: connecting -> subscribing  \(socket fd \d+\)",
            ),
            r"^woke \d+ times for IO, \d+ for a deadline; 1 reconnect\(s\), \d+ frames in$",
        ),
    ),
    Example("test_with_replay.py", (), (r"^\d+ passed",)),
    Example("test_market_maker.py", (), (r"^\d+ passed",)),
]


# --------------------------------------------------------------------------- the test


def help_text(script: Path) -> str:
    """What ``python script --help`` prints, and its exit code (run in this process)."""
    out = io.StringIO()
    argv, sys.argv = sys.argv, [str(script), "--help"]
    code: object = "no exit"
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exited:
        code = exited.code
    finally:
        sys.argv = argv
    return f"{out.getvalue()}(exit code {code})"


def test_every_example_runs_and_shows_real_values() -> None:
    scripts = {path.name for path in EXAMPLES_DIR.glob("*.py")}
    assert scripts == {example.script for example in EXAMPLES}, "list each example here"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_")}
    env["PYTHONUNBUFFERED"] = "1"  # whatever was printed before a hang is shown
    runs = [  # all at once: the file takes as long as the slowest
        subprocess.Popen(
            example.command(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for example in EXAMPLES
    ]
    failures: list[str] = []
    try:
        for example in EXAMPLES:  # --help, in this process while the examples run
            if not example.script.startswith("test_"):
                text = help_text(EXAMPLES_DIR / example.script)
                options = set(text.split())
                if not text.endswith("(exit code 0)") or not {"--live", "--duration"} <= options:
                    failures.append(f"{example.script} --help:\n{text}")
        end = time.monotonic() + TIMEOUT
        for example, process in zip(EXAMPLES, runs, strict=True):
            try:
                output, errors = process.communicate(timeout=max(1.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                output, errors = process.communicate()
                failures.append(
                    f"{example.script}: still running after {TIMEOUT} s\n{output}{errors}"
                )
                continue
            problems = [] if process.returncode == 0 else [f"exit code {process.returncode}"]
            if "Traceback" in errors:
                problems.append("a traceback on stderr")
            for check in example.checks:
                try:
                    if isinstance(check, str):
                        assert re.search(check, output, re.M), f"{check!r} not in the output"
                    else:
                        check(output)
                except AssertionError as exc:
                    problems.append(f"{getattr(check, '__name__', 'check')}: {exc}")
            if problems:
                shown = f"--- stdout\n{output}--- stderr\n{errors}"
                failures.append(f"{example.script}: {'; '.join(problems)}\n{shown}")
    finally:
        for process in runs:  # none is left behind, whatever happened
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert not failures, "\n\n".join(failures)
