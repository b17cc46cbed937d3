"""``kraken-ws web`` in a real browser: headless Chromium driven over the DevTools protocol.

The simulator runs in the test's event loop (so the test can inject faults); ``kraken-ws web
--url <simulator>`` runs as a child process on a free loopback port, as a user runs it; and
Chromium (Debian's ``chromium``) loads the page, driven with aiohttp's WebSocket client over
``--remote-debugging-port`` (no new dependency). The test checks the rendered DOM against
the frame the page was pushed (prices, sizes, cumulative sizes, the header figures), that
it keeps updating, that a resync injected by the simulator shows the resyncing state, that
bad input shows a message, and that at 1280 x 800 and at 400 pixels wide no text overlaps
and nothing overflows sideways. Screenshots of both go to the test's tmp path (and, with
``KRAKEN_WS_WEB_SCREENSHOT=PATH``, the wide one also to PATH, for ``docs/web.png``).

Skipped only when no Chromium binary exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kraken_proto.simulator import CorruptChecksum, SlowSender
from kraken_transports.simserver import SimServer, run_simulator

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
WAIT = 15.0  # ceiling for every condition waited on
POLL = 0.05

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium; .ci/run does)"
)


class Page:
    """One browser tab, driven over the Chrome DevTools Protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events in between are skipped)."""
        self._next += 1
        ident = self._next
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), WAIT)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        """Poll until ``expression`` is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            try:
                value = await self.evaluate(expression)
            except AssertionError:  # e.g. the page is still loading
                value = None
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(POLL)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    async def resize(self, width: int, height: int) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )


@contextlib.asynccontextmanager
async def child(*argv: str, **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process in its own process group, killed (the group) on leaving."""
    process = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **options)
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@contextlib.asynccontextmanager
async def web_command(
    sim: SimServer,
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``kraken-ws web`` against ``sim`` on a free port: the printed page URL, the process."""
    argv = [sys.executable, "-m", "kraken_transports", "web", "BTC/USD", "ETH/USD"]
    argv += ["--url", sim.url, "--port", "0", "--duration", "60"]
    async with child(
        *argv,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, f"kraken-ws web printed {line!r}"
        yield found.group(), process


@contextlib.asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[Page]:
    """Headless Chromium with a blank tab, driven over DevTools."""
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        "about:blank",
    ]
    async with child(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL):
        port_file = profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not port_file.exists() or not port_file.read_text().strip():
            assert loop.time() < deadline, "Chromium did not open its DevTools port"
            await asyncio.sleep(POLL)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            target = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                await page.resize(1280, 800)
                yield page


# What the page rendered and the frame it rendered, read at one instant.
READ_PAGE = """(() => {
  const t = (id) => document.getElementById(id).textContent;
  const rows = (id) => Array.from(document.querySelectorAll('#' + id + ' tr')).map(
    (tr) => Array.from(tr.children).slice(0, 4).map((td) => td.textContent));
  return {
    frame: window.kwPage.frame,
    live: document.body.dataset.live,
    seq: document.body.dataset.seq,
    dom: {
      mid: t('mid'), spread: t('spread'), spread_bps: t('spread-bps'),
      microprice: t('microprice'), imbalance: t('imbalance'), signal: t('signal'),
      best_bid: t('best-bid'), best_ask: t('best-ask'), market: t('market'),
      lat_p50: t('lat-p50'), lat_p99: t('lat-p99'), conn: t('conn'),
      asks: rows('asks'), bids: rows('bids'),
      verified: t('verified'),
    },
  };
})()"""

# Leaf elements with text must not overlap, and nothing may overflow sideways.
LAYOUT_PROBLEMS = """(() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1)
    problems.push('page scrolls sideways: ' + root.scrollWidth + ' > ' + root.clientWidth);
  const scope = '.topbar, .figures, #ladder, #volume, #volume-summary, #flow, #trades, '
    + '.axis, .footer';
  const leaves = [];
  for (const area of document.querySelectorAll(scope)) {
    for (const node of area.querySelectorAll('*')) {
      if (node.children.length || !node.textContent.trim()) continue;
      const box = node.getBoundingClientRect();
      if (box.width && box.height) leaves.push([node, box]);
      if (node.scrollWidth > node.clientWidth + 1 && getComputedStyle(node).display !== 'inline')
        problems.push('overflows: ' + node.id + ' ' + node.className + ' ' + node.textContent);
    }
  }
  for (let i = 0; i < leaves.length; i++) {
    for (let j = i + 1; j < leaves.length; j++) {
      const [a, ra] = leaves[i];
      const [b, rb] = leaves[j];
      if (a.contains(b) || b.contains(a)) continue;
      const dx = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const dy = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (dx > 1 && dy > 1)
        problems.push('overlap: "' + a.textContent + '" and "' + b.textContent + '"');
    }
  }
  return problems;
})()"""


# Notes, as each frame is rendered, the page's state the first time it shows a resync.
NOTE_RESYNC = """(() => {
  window.kwResync = null;
  new MutationObserver(() => {
    if (window.kwResync || document.body.dataset.bookState !== 'resyncing') return;
    window.kwResync = {
      live: document.body.dataset.live,
      conn: document.getElementById('conn').textContent,
      notice: !document.getElementById('notice').hidden,
      veil: getComputedStyle(document.getElementById('ladder-veil')).display,
      struck: getComputedStyle(document.getElementById('mid')).textDecorationLine,
    };
  }).observe(document.body, { attributes: true, childList: true, subtree: true });
  return true;
})()"""


def check_dom_against_frame(read: dict[str, Any]) -> None:
    frame, dom = read["frame"], read["dom"]
    header = frame["header"]
    for key in ("mid", "spread", "spread_bps", "microprice", "imbalance", "best_bid", "best_ask"):
        assert dom[key] == header[key]["text"], key
        assert header[key]["value"] is not None
    assert dom["signal"] == header["signal"].replace("_", " ")
    assert dom["market"] == f"market {frame['market']}"
    assert dom["conn"] == frame["connection"] == "subscribed"
    assert dom["verified"] == str(frame["counters"]["verified"])
    if frame["latency"] is not None:
        assert dom["lat_p50"] == frame["latency"]["delivery_p50_text"]
        assert dom["lat_p99"] == frame["latency"]["delivery_p99_text"]
    want_asks = [
        [r["price"], r["qty"], r["cumulative"], r["percent_text"]] for r in reversed(frame["asks"])
    ]
    want_bids = [[r["price"], r["qty"], r["cumulative"], r["percent_text"]] for r in frame["bids"]]
    assert dom["asks"] == want_asks and dom["bids"] == want_bids
    if frame["tick"] is None:
        assert len(want_bids) == 12 and len(want_asks) == 12
        assert dom["bids"][0][0] == header["best_bid"]["text"]
        assert dom["asks"][-1][0] == header["best_ask"]["text"]
    else:
        assert want_bids and want_asks


def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            run_simulator(seed=5) as sim,
            web_command(sim) as (url, process),
            browser(tmp_path / "profile") as page,
        ):
            await page.call("Page.navigate", url=url)
            await page.wait_for(
                "window.kwPage && window.kwPage.frame && window.kwPage.frame.live"
                " && window.kwPage.frame.latency !== null",
                "a live frame with latencies",
            )
            first = await page.evaluate(READ_PAGE)
            check_dom_against_frame(first)
            assert first["live"] == "true"

            # It keeps updating: later frames, each rendered as pushed, the ladder moving.
            ladders = {json.dumps(first["dom"]["asks"] + first["dom"]["bids"])}
            for _ in range(4):
                seq = int(first["seq"])
                await page.wait_for(f"Number(document.body.dataset.seq) > {seq}", "a new frame")
                first = await page.evaluate(READ_PAGE)
                check_dom_against_frame(first)
                ladders.add(json.dumps(first["dom"]["asks"] + first["dom"]["bids"]))
            assert len(ladders) > 1, "the ladder on the page changed"

            assert await page.evaluate(LAYOUT_PROBLEMS) == []
            await page.screenshot(tmp_path / "web-1280x800.png")
            if target := os.environ.get("KRAKEN_WS_WEB_SCREENSHOT"):
                await page.screenshot(Path(target))

            # A resync injected by the simulator (frames held back meanwhile, so it lasts).
            # Every frame the page renders is noted as it is rendered, so however briefly the
            # resyncing state shows, the test sees it (no polling race).
            await page.evaluate(NOTE_RESYNC)
            await sim.inject(SlowSender(0.8, 3.0))
            await sim.inject(CorruptChecksum("BTC/USD"))
            seen = await page.wait_for("window.kwResync", "the resyncing state")
            assert seen == {
                "live": "false",
                "conn": "resyncing",
                "notice": True,
                "veil": "flex",
                "struck": "line-through",
            }
            await page.screenshot(tmp_path / "web-resyncing.png")
            await page.wait_for("document.body.dataset.live === 'true'", "live again")
            assert await page.evaluate("document.getElementById('notice').hidden") is True
            resyncs = await page.evaluate("document.getElementById('resyncs').textContent")
            assert int(resyncs) >= 1

            # Narrow: 400 pixels wide, nothing overlaps or overflows.
            await page.resize(400, 800)
            seq = await page.evaluate("Number(document.body.dataset.seq)")
            await page.wait_for(f"Number(document.body.dataset.seq) > {seq}", "a narrow frame")
            assert await page.evaluate(LAYOUT_PROBLEMS) == []
            await page.screenshot(tmp_path / "web-400.png")

            # Switching pair and tick in the page's select boxes.
            await page.resize(1280, 800)
            await page.evaluate(
                "(() => { const s = document.getElementById('symbol'); s.value = 'ETH/USD';"
                " s.dispatchEvent(new Event('change')); })()"
            )
            await page.wait_for(
                "kwPage.frame && kwPage.frame.symbol === 'ETH/USD' && kwPage.frame.live",
                "the ETH/USD frame",
            )
            await page.evaluate(
                "(() => { const s = document.getElementById('tick'); s.value = s.options[1].value;"
                " s.dispatchEvent(new Event('change')); })()"
            )
            await page.wait_for(
                "kwPage.frame && kwPage.frame.tick === '0.1' && kwPage.frame.live", "ticked"
            )
            read = await page.evaluate(READ_PAGE)
            check_dom_against_frame(read)
            assert await page.evaluate("location.search") == "?symbol=ETH%2FUSD&tick=0.1"
            assert await page.evaluate(LAYOUT_PROBLEMS) == []
            await page.screenshot(tmp_path / "web-eth-tick.png")

            # Bad input: a clear message, not a stack trace.
            await page.call("Page.navigate", url=url + "?symbol=NOPE/USD")
            message = await page.wait_for(
                "!document.getElementById('error').hidden"
                " && document.getElementById('error').textContent",
                "the error message",
            )
            shows = "unknown symbol 'NOPE/USD': this server shows BTC/USD, ETH/USD"
            assert message.startswith(shows)
            await page.call("Page.navigate", url=url + "?symbol=ETH/USD&tick=zero")
            message = await page.wait_for(
                "!document.getElementById('error').hidden"
                " && document.getElementById('error').textContent",
                "the tick message",
            )
            assert message.startswith("tick must be a positive decimal number such as 0.5")

            # The server hangs: no frame for three refresh intervals, and the figures are no
            # longer shown as live; it comes back, and so do they.
            await page.call("Page.navigate", url=url)
            await page.wait_for("kwPage.frame && kwPage.frame.live", "a live page")
            process.send_signal(signal.SIGSTOP)
            try:
                await page.wait_for(
                    "document.getElementById('conn').textContent === 'no data'"
                    " && document.body.dataset.live === 'false'"
                    " && !document.getElementById('notice').hidden",
                    "the silent state",
                )
            finally:
                process.send_signal(signal.SIGCONT)
            await page.wait_for(
                "document.body.dataset.live === 'true' && document.getElementById('notice').hidden",
                "live again after the silence",
            )

            # The server goes away: the page says so and shows nothing as live.
            process.kill()
            await page.wait_for(
                "document.getElementById('conn').textContent === 'server offline'"
                " && document.body.dataset.live === 'false'"
                " && !document.getElementById('notice').hidden",
                "the offline state",
            )

    asyncio.run(main())
