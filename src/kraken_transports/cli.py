"""The ``kraken-ws`` command: demo, stream, book, record, replay, serve, web and publish.

::

    kraken-ws demo                                  # live ladder against the embedded simulator
    kraken-ws stream BTC/USD ETH/USD --channel trade,ticker
    kraken-ws stream BTC/USD --channel book --json  # one JSON object per line
    kraken-ws book BTC/USD --depth 25               # the ladder against Kraken
    kraken-ws record BTC/USD --channel book -o capture.jsonl --duration 60
    kraken-ws replay capture.jsonl                  # exit 1 if a checksum or the stream failed
    kraken-ws serve --port 8765                     # the simulator, for your own tests
    kraken-ws web                                   # live order-book page on 127.0.0.1:8766
    kraken-ws publish BTC/USD --to redis://127.0.0.1:6379/0  # fan-out (docs/fanout.md)
    kraken-ws stream --from redis://127.0.0.1:6379/0 BTC/USD --channel book
    kraken-ws demo --metrics-port 9108              # and Prometheus metrics at /metrics

Every live command runs the asyncio driver (:mod:`kraken_transports.aio`) with a small
reconnect budget. Exit codes: 0 success, 1 a runtime failure (cannot connect, subscription
refused, connection lost, replay found a bad checksum or a protocol error), 2 bad
arguments, 130 interrupted (Ctrl-C). ``demo``, ``stream``, ``book`` and ``serve`` take
``--metrics-port PORT``: ``http://127.0.0.1:PORT/metrics`` serves the client's (or the
simulator's) Prometheus metrics while they run (:mod:`kraken_transports.metrics`, the
``metrics`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import msgspec

from kraken_proto import __version__
from kraken_proto.config import ClientConfig, ReconnectConfig
from kraken_proto.errors import (
    ConfigurationError,
    KrakenConnectionError,
    LocalProtocolError,
    ParseError,
    SubscriptionError,
)
from kraken_proto.events import (
    OHLC,
    BookLevel,
    BookResync,
    BookUpdate,
    Dropped,
    Event,
    Instrument,
    Pong,
    ProtocolError,
    StateChanged,
    Subscribed,
    SubscriptionFailed,
    SystemStatus,
    Ticker,
    Trade,
    Unsubscribed,
)
from kraken_proto.replay import ReplayResult, encode_capture_line, read_capture, replay
from kraken_proto.subscriptions import BOOK_DEPTHS, OHLC_INTERVALS, validate_subscription
from kraken_transports.aio import AsyncClient, connect
from kraken_transports.ladder import (
    LatencyFigures,
    MarketTracker,
    clock_text,
    ladder_json,
    level_text,
    number_text,
    render_ladder,
    render_line,
    render_summary,
    take_view,
)

if TYPE_CHECKING:
    from kraken_transports.simserver import SimServer

__all__ = [
    "CliError",
    "build_parser",
    "event_to_json",
    "event_to_text",
    "main",
    "replay_summary",
    "run",
]

DEFAULT_URL = "wss://ws.kraken.com/v2"
"""Kraken's public v2 endpoint, the default of every live command."""

CHANNELS = ("ticker", "trade", "book", "ohlc")
"""The channels ``--channel`` accepts."""

CLI_RECONNECT_ATTEMPTS = 3
"""Reconnect attempts the command line makes before giving up."""

SUBSCRIBE_TIMEOUT = 30.0
"""Seconds to wait for the connection and every subscription acknowledgement."""

EXIT_OK = 0
"""Exit code: success."""
EXIT_FAILURE = 1
"""Exit code: cannot connect, subscription refused, connection lost, replay failed."""
EXIT_USAGE = 2
"""Exit code: bad arguments."""
EXIT_INTERRUPTED = 130
"""Exit code: interrupted by Ctrl-C (SIGINT)."""

_SYMBOL_RE = re.compile(r"[A-Z0-9.\-_]+/[A-Z0-9.\-_]+")
_LADDER_INTERVAL_TTY = 0.25  # seconds between ladder redraws on a terminal
_LINE_INTERVAL = 1.0  # seconds between compact frames when stdout is not a terminal
_TERMINAL_FALLBACK = (80, 24)  # columns and lines when the terminal does not say
_CONNECTED_STATES = frozenset({"subscribing", "subscribed", "resyncing", "authenticating"})
_SHOW_CURSOR = "\x1b[?25h"
_HIDE_CURSOR = "\x1b[?25l"
_CLEAR_SCREEN = "\x1b[2J\x1b[H"
_HOME = "\x1b[H"
_CLEAR_BELOW = "\x1b[J"


class CliError(Exception):
    """A failure reported as ``error: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --------------------------------------------------------------------------- argument types


def _symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not _SYMBOL_RE.fullmatch(symbol):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pair name like BTC/USD (BASE/QUOTE, with a slash)"
        )
    return symbol


def _channels(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no channel given; choose from {', '.join(CHANNELS)}")
    for name in names:
        if name not in CHANNELS:
            raise argparse.ArgumentTypeError(
                f"unknown channel {name!r} (choose from {', '.join(CHANNELS)})"
            )
    return names


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def _choice_int(choices: Sequence[int], what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise argparse.ArgumentTypeError(f"{what} must be one of {allowed}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


_depth = _choice_int(BOOK_DEPTHS, "depth")


def _max_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames per second") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1000 frames per second, got {text!r}")
    return value


def _rows(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {value}")
    return value


_interval = _choice_int(OHLC_INTERVALS, "interval")


# --------------------------------------------------------------------------- the parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-written layout of descriptions and epilogs."""


def build_parser() -> argparse.ArgumentParser:
    """The ``kraken-ws`` argument parser (one sub-parser per command)."""
    from kraken_proto.simulator import DEFAULT_SYMBOLS  # noqa: PLC0415 - as _cmd_demo does

    parser = argparse.ArgumentParser(
        prog="kraken-ws",
        formatter_class=_Formatter,
        description=(
            "Kraken Spot WebSocket API v2 from the command line: live order books with "
            "verified checksums,\nevent streams, capture and replay, and a local simulator."
        ),
        epilog=(
            "examples:\n"
            "  kraken-ws demo                             live ladder, embedded simulator\n"
            "  kraken-ws stream BTC/USD --channel trade   trades from Kraken, one per line\n"
            "  kraken-ws book ETH/USD --depth 25          live ladder from Kraken\n"
            "  kraken-ws record BTC/USD --channel book -o cap.jsonl --duration 60\n"
            "  kraken-ws replay cap.jsonl                 verify a capture offline\n"
            "  kraken-ws serve --port 8765                the simulator, for your own clients\n"
            "  kraken-ws web                              live order-book page in a browser\n"
            "  kraken-ws publish BTC/USD --to redis://127.0.0.1:6379/0   fan-out to Redis/NATS\n"
            "\n"
            "exit codes: 0 ok, 1 failure (connection, refused subscription, bad checksum),\n"
            "2 bad arguments, 130 interrupted (Ctrl-C, which is also how serve stops).\n"
            "Run 'kraken-ws COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"kraken-ws {__version__} (kraken-ws-sdk, Python {sys.version.split()[0]})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    live = argparse.ArgumentParser(add_help=False)
    live.add_argument(
        "--duration",
        type=_duration,
        metavar="SECONDS",
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )
    live.add_argument(
        "-v", "--verbose", action="store_true", help="log the driver's activity to stderr"
    )

    metrics = argparse.ArgumentParser(add_help=False)
    metrics.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics while running; "
        '0 picks a free port (printed); needs pip install "kraken-ws-sdk[metrics]"',
    )

    depth = argparse.ArgumentParser(add_help=False)
    depth.add_argument(
        "--depth", type=_depth, default=10, help="book depth (10, 25, 100, 500, 1000; default 10)"
    )
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--url", default=DEFAULT_URL, help=f"public WebSocket endpoint (default: {DEFAULT_URL})"
    )
    remote.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain ws:// URL to a host other than loopback",
    )

    demo = commands.add_parser(
        "demo",
        parents=[live, depth, metrics],
        formatter_class=_Formatter,
        help="live order book ladder against the embedded simulator (no network needed)",
        description=(
            "Start the simulator on a free loopback port, connect to it, subscribe book, trade\n"
            "and ticker, and draw the live ladder: asks above bids with depth bars, spread,\n"
            "mid, the last trades, the connection state, events per second and the count of\n"
            "checksum-verified book updates. On a terminal the ladder is redrawn a few times a\n"
            "second, fitted to the terminal's size (80 x 24 when it cannot be told); otherwise\n"
            "one compact line is printed per second. A summary line ends the run."
        ),
    )
    demo.add_argument(
        "--symbol",
        type=_symbol,
        default="BTC/USD",
        help=f"pair to show: {', '.join(DEFAULT_SYMBOLS)} (default: BTC/USD)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="simulator seed: same seed, same market (default 0)"
    )
    demo.set_defaults(handler=_cmd_demo, parser=demo)

    stream = commands.add_parser(
        "stream",
        parents=[live, remote, depth, metrics],
        formatter_class=_Formatter,
        help="print events, one line each (or JSON lines with --json)",
        description=(
            "Subscribe channels for the given pairs and print every event as it arrives:\n"
            "  12:00:01.234 trade BTC/USD buy 0.0120 @ 63005.1\n"
            'With --json each line is a JSON object with a "type" key (trade, ticker, book,\n'
            "ohlc, state, subscribed, ...) and prices and quantities as exact decimal strings."
        ),
    )
    stream.add_argument("symbols", nargs="+", type=_symbol, metavar="SYMBOL", help="e.g. BTC/USD")
    stream.add_argument(
        "--channel",
        type=_channels,
        action="append",
        metavar="LIST",
        help="comma-separated channels: ticker, trade, book, ohlc; may be repeated "
        "(default: ticker,trade)",
    )
    stream.add_argument(
        "--interval", type=_interval, default=1, help="ohlc interval in minutes (default 1)"
    )
    stream.add_argument("--json", action="store_true", help="print one JSON object per line")
    stream.set_defaults(handler=_cmd_stream, parser=stream)
    from kraken_transports.fanout import cli as fanout_cli  # noqa: PLC0415 - it imports this

    fanout_cli.add_stream_options(stream)
    publish = fanout_cli.add_publish_parser(commands, [live, depth], _Formatter)
    publish.set_defaults(handler=_cmd_publish, parser=publish)

    book = commands.add_parser(
        "book",
        parents=[live, remote, depth, metrics],
        formatter_class=_Formatter,
        help="live order book ladder of one pair",
        description=(
            "The live, checksum-verified order book ladder of one pair (with its trades and\n"
            "ticker) against any public endpoint; Kraken's by default. The header shows the\n"
            "microprice, the imbalance of the top 10 levels with its buy/sell pressure, the\n"
            "market status and the book channel's latency p50/p99. On a terminal it is\n"
            "redrawn a few times a second, fitted to the terminal's size; otherwise one\n"
            "compact line is printed per second. A summary line ends the run.\n"
            "With --json: one JSON object per book update, the ladder (price, qty, cumulative)\n"
            "and those figures, numbers exact (the summary goes to stderr)."
        ),
    )
    book.add_argument("symbol", type=_symbol, metavar="SYMBOL", help="e.g. BTC/USD")
    book.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per book update: the ladder and its analytics",
    )
    book.set_defaults(handler=_cmd_book, parser=book)

    record = commands.add_parser(
        "record",
        parents=[live, remote, depth],
        formatter_class=_Formatter,
        help="record every WebSocket message to a capture file (JSON Lines)",
        description=(
            'Write one line per WebSocket message, sent and received:\n  {"t": <seconds since '
            'the first message>, "dir": "in" | "out", "text": "<exact frame>"}\n'
            "Check it later, offline, with 'kraken-ws replay FILE'."
        ),
    )
    record.add_argument("symbols", nargs="+", type=_symbol, metavar="SYMBOL", help="e.g. BTC/USD")
    record.add_argument(
        "--channel",
        type=_channels,
        action="append",
        metavar="LIST",
        required=True,
        help="comma-separated channels: ticker, trade, book, ohlc; may be repeated",
    )
    record.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="capture file to write"
    )
    record.add_argument(
        "--interval", type=_interval, default=1, help="ohlc interval in minutes (default 1)"
    )
    record.set_defaults(handler=_cmd_record, parser=record)

    replay_ = commands.add_parser(
        "replay",
        formatter_class=_Formatter,
        help="replay a capture through the protocol core and verify it",
        description=(
            "Feed a capture's incoming frames through the protocol core, exactly as they were\n"
            "received, and summarise: frames, events per type, verified book messages per\n"
            "pair, resyncs, protocol errors, failed subscriptions and each book's final state.\n"
            "Exit code 1 if a checksum failed (a resync happened), a frame was not understood\n"
            "or the file is not a capture."
        ),
    )
    replay_.add_argument("capture", type=Path, metavar="CAPTURE", help="a .jsonl capture file")
    replay_.set_defaults(handler=_cmd_replay, parser=replay_)

    serve = commands.add_parser(
        "serve",
        parents=[metrics],
        formatter_class=_Formatter,
        help="run the Kraken simulator on a local port until Ctrl-C",
        description=(
            "Serve the fake Kraken exchange (Kraken's acks and errors, padded numbers,\n"
            "checksums, a small matching engine) for your own clients and tests: Kraken's\n"
            "three WebSocket hosts and its token endpoint, all on one port.\n"
            "\n"
            "  ClientConfig     URL\n"
            "  endpoint         ws://HOST:PORT/v2       public host (ws.kraken.com)\n"
            "  auth_endpoint    ws://HOST:PORT/auth/v2  private host (ws-auth.kraken.com)\n"
            "  level3_endpoint  ws://HOST:PORT/l3/v2    level3 host (ws-l3.kraken.com)\n"
            "  rest_url         http://HOST:PORT        REST base URL (no path)\n"
            "\n"
            "The public host serves book, ticker, trade, ohlc and instrument; the private host\n"
            "executions, balances and trading; the level3 host level3. The last two want a\n"
            "WebSocket token, which the driver fetches from rest_url (POST\n"
            "/0/private/GetWebSocketsToken) signed with the simulator's test API key and\n"
            "secret, the only ones it accepts. Once listening, serve prints each of these\n"
            "values as it is to be pasted: as ClientConfig fields, as shell export lines\n"
            "(KRAKEN_WS_ENDPOINT, ...) for ClientConfig.from_env(), and as a ClientConfig(...)\n"
            "to paste into Python. Ctrl-C stops it (exit code 130)."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; loopback only unless --allow-remote (default 127.0.0.1)",
    )
    serve.add_argument(
        "--port", type=_port, default=8765, help="port; 0 picks a free one (default 8765)"
    )
    serve.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the simulator has no real security)",
    )
    serve.set_defaults(handler=_cmd_serve, parser=serve)

    web = commands.add_parser(
        "web",
        parents=[live, metrics],
        formatter_class=_Formatter,
        help="live order book page in a browser (embedded simulator unless --url/--live)",
        description=(
            "Serve a live order-book page on http://127.0.0.1:PORT/ (printed; nothing is opened):\n"
            "the depth ladder with cumulative sizes, a tick-size aggregation and the trades by\n"
            "price level, a depth chart, mid, spread, microprice, imbalance and pressure, the\n"
            "market status, latency p50/p99, large-order events and the connection state. Every\n"
            "figure is computed by kraken_proto.analytics; frames are pushed over a WebSocket,\n"
            "at most --max-rate a second per browser. Without --url or --live it runs against\n"
            "the embedded simulator, like demo."
        ),
    )
    web.add_argument(
        "symbols",
        nargs="*",
        type=_symbol,
        metavar="SYMBOL",
        help="pairs to serve (the first is shown)",
    )
    web_source = web.add_mutually_exclusive_group()
    web_source.add_argument("--url", help="public WebSocket endpoint (default: the simulator)")
    web_source.add_argument("--live", action="store_true", help=f"use Kraken ({DEFAULT_URL})")
    web.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain ws:// URL to a host other than loopback",
    )
    web.add_argument(
        "--port",
        type=_port,
        default=8766,
        help="page port on 127.0.0.1; 0 picks a free one (default 8766)",
    )
    web.add_argument(
        "--depth", type=_depth, default=100, help="book depth subscribed (default 100)"
    )
    web.add_argument("--rows", type=_rows, default=12, help="ladder rows per side (default 12)")
    web.add_argument(
        "--max-rate",
        type=_max_rate,
        default=10.0,
        metavar="FPS",
        help="frames per second pushed to each browser at most (default 10)",
    )
    web.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    web.set_defaults(handler=_cmd_web, parser=web)
    return parser


# --------------------------------------------------------------------------- entry points


def main(argv: list[str] | None = None) -> int:
    """Run ``kraken-ws`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return run(args)
    except SystemExit as exc:  # a usage error found after parsing (sub-parser .error())
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        _flush_quietly()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into `head`
        _silence_stdout()
        return EXIT_OK
    except CliError as exc:
        _flush_quietly()
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code


def run(args: argparse.Namespace) -> int:
    """Run the command parsed into ``args``; failures raise :class:`CliError`."""
    if getattr(args, "verbose", False):
        logging.basicConfig(
            level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _flush_quietly() -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the exit flush stays quiet."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    parser: argparse.ArgumentParser = args.parser
    parser.error(message)


def _write(text: str) -> None:
    out = sys.stdout
    out.write(text)
    out.flush()


# --------------------------------------------------------------------------- live sessions


def _client_config(args: argparse.Namespace, url: str) -> ClientConfig:
    try:
        return ClientConfig(
            endpoint=url,
            allow_insecure=bool(getattr(args, "allow_insecure", False)),
            reconnect=ReconnectConfig(max_attempts=CLI_RECONNECT_ATTEMPTS),
        )
    except ConfigurationError as exc:
        hint = ""
        if "allow_insecure" in str(exc):
            hint = "; pass --allow-insecure to connect anyway"
        _usage_error(args, f"argument --url: {exc}{hint}")


_Request = tuple[str, list[str], dict[str, Any]]  # one subscription: channel, symbols, params


def _requests(args: argparse.Namespace, channels: Sequence[str]) -> list[_Request]:
    requests: list[_Request] = []
    for channel in channels:
        params: dict[str, Any] = {}
        if channel == "book":
            params["depth"] = args.depth
        elif channel == "ohlc":
            params["interval"] = args.interval
        requests.append((channel, list(args.symbols), params))
    for channel, symbols, params in requests:
        try:
            validate_subscription(channel, symbols, params, 0)
        except LocalProtocolError as exc:
            _usage_error(args, f"argument SYMBOL: {exc}")
    return requests


def _channel_list(args: argparse.Namespace, default: Sequence[str]) -> list[str]:
    given: list[list[str]] | None = args.channel
    names = [name for group in given for name in group] if given else list(default)
    return list(dict.fromkeys(names))


class _Watch:
    """Follows the connection state: was it ever up, has it closed, and why."""

    def __init__(self) -> None:
        self.connected = False
        self.closed = False
        self.reason = ""
        self.done = asyncio.Event()
        """Set when the client closed or the command asked to stop."""

    def feed(self, event: StateChanged) -> None:
        if event.new in _CONNECTED_STATES:
            self.connected = True
        if event.new in ("degraded", "closed"):
            self.reason = event.reason.removeprefix("connection lost: ")
        if event.new == "closed":
            self.closed = True
            self.done.set()


async def _subscribe_all(
    client: AsyncClient, url: str, requests: Sequence[_Request], watch: _Watch
) -> None:
    """Subscribe everything and wait for the acks; failures become :class:`CliError`."""
    calls = [client.subscribe(channel, symbols, **params) for channel, symbols, params in requests]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), SUBSCRIBE_TIMEOUT
        )
    except asyncio.TimeoutError:
        if not watch.connected:
            raise CliError(
                f"cannot connect to {url}: no connection within {SUBSCRIBE_TIMEOUT:g} s"
            ) from None
        raise CliError(
            f"{url} did not acknowledge the subscriptions within {SUBSCRIBE_TIMEOUT:g} s"
        ) from None
    for result in results:
        if isinstance(result, SubscriptionError):
            if result.error.startswith("no acknowledgement"):
                raise CliError(f"{url} did not acknowledge the subscription: {result.error}")
            raise CliError(f"Kraken refused the subscription: {result.error}")
    for result in results:
        if isinstance(result, KrakenConnectionError):
            _raise_connection_failure(url, watch, str(result))
        if isinstance(result, BaseException):
            raise result


def _raise_connection_failure(url: str, watch: _Watch, fallback: str = "") -> NoReturn:
    reason = watch.reason or fallback or "closed"
    if watch.connected:
        raise CliError(f"connection to {url} lost: {reason}")
    raise CliError(f"cannot connect to {url}: {reason}")


async def _wait(
    watch: _Watch,
    duration: float | None,
    interval: float,
    tick: Callable[[], None] | None = None,
) -> bool:
    """Run until ``duration`` elapses (or forever), calling ``tick`` every ``interval``.

    Returns whether the client closed by itself (connection lost for good) meanwhile.
    """
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    while True:
        timeout = interval
        if deadline is not None:
            timeout = min(interval, deadline - loop.time())
        if timeout > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(watch.done.wait(), timeout)
        if tick is not None:
            tick()
        if watch.done.is_set():
            return watch.closed
        if deadline is not None and loop.time() >= deadline:
            return False


def _asyncio_run(coroutine: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------- metrics


class _Exporter:
    """The ``--metrics-port`` endpoint of one command: what it exports goes to ``registry``."""

    def __init__(self, metrics: Any, registry: Any) -> None:
        self._metrics = metrics  # the kraken_transports.metrics module
        self.registry = registry

    def track_client(self, client: AsyncClient) -> None:
        """Export ``client``'s metrics (counting from now: call it before starting)."""
        client.metrics(self.registry)

    def track_simulator(self, server: SimServer) -> None:
        """Export the simulator's own metrics."""
        self._metrics.register_simulator(server, self.registry)


@contextlib.contextmanager
def _metrics_endpoint(args: argparse.Namespace) -> Iterator[_Exporter | None]:
    """With ``--metrics-port``: serve ``/metrics`` on loopback for the block (the port on
    stderr); without it, ``None``. A missing extra is a usage error naming it."""
    port: int | None = getattr(args, "metrics_port", None)
    if port is None:
        yield None
        return
    try:
        from kraken_transports import metrics  # noqa: PLC0415 - the optional extra
    except ImportError as exc:
        _usage_error(args, f"argument --metrics-port: {exc}")
    registry = metrics.new_registry()
    try:
        server = metrics.serve_metrics(registry, port, "127.0.0.1")
    except OSError as exc:
        raise CliError(f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    print(f"metrics at {server.url}", file=sys.stderr, flush=True)
    try:
        yield _Exporter(metrics, registry)
    finally:
        server.close()


# --------------------------------------------------------------------------- ladder commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from kraken_proto.simulator import DEFAULT_SYMBOLS  # noqa: PLC0415 - only the demo needs it

    if args.symbol not in DEFAULT_SYMBOLS:
        _usage_error(
            args,
            f"argument --symbol: the simulator has no {args.symbol!r}; "
            f"choose from {', '.join(DEFAULT_SYMBOLS)}",
        )
    with _metrics_endpoint(args) as exporter:
        return _asyncio_run(_demo(args, exporter))


async def _demo(args: argparse.Namespace, exporter: _Exporter | None = None) -> int:
    from kraken_transports.simserver import run_simulator  # noqa: PLC0415 - starts aiohttp.web

    async with run_simulator(seed=args.seed) as sim:
        if exporter is not None:
            exporter.track_simulator(sim)
        config = _client_config(args, sim.url)
        title = f"kraken-ws demo · simulator at {sim.url} (seed {args.seed})"
        return await _ladder(args, config, args.symbol, title, exporter)


def _cmd_book(args: argparse.Namespace) -> int:
    config = _client_config(args, args.url)
    with _metrics_endpoint(args) as exporter:
        if args.json:
            return _asyncio_run(_book_json(args, config, args.symbol, exporter))
        title = f"kraken-ws book · {args.url}"
        return _asyncio_run(_ladder(args, config, args.symbol, title, exporter))


async def _ladder(
    args: argparse.Namespace,
    config: ClientConfig,
    symbol: str,
    title: str,
    exporter: _Exporter | None = None,
) -> int:
    """Subscribe book, trade and ticker for ``symbol`` and draw the ladder until done.

    The client tracks latency, for the header's p50/p99; the header's analytics are
    computed by ``take_view`` once per frame drawn, never per event.
    """
    config = dataclasses.replace(config, latency=True)
    url = config.endpoint
    depth: int = args.depth
    requests: list[_Request] = [
        ("book", [symbol], {"depth": depth}),
        ("trade", [symbol], {}),
        ("ticker", [symbol], {}),
    ]
    out = sys.stdout
    tty = _isatty(out)
    color = tty and not os.environ.get("NO_COLOR")
    loop = asyncio.get_running_loop()
    started = loop.time()
    tracker = MarketTracker(symbol)
    tracker.events_per_second(started)  # the rate's first sample
    watch = _Watch()
    client = connect(config, buffer_events=False)
    client.on(None, tracker.feed)
    client.on(StateChanged, watch.feed)
    if exporter is not None:
        exporter.track_client(client)

    def draw() -> None:
        now = loop.time()
        view = take_view(
            tracker, client.book(symbol), now=now, elapsed=now - started, latency=client.latency
        )
        if tty:
            columns, lines = _terminal_size()
            frame = render_ladder(view, title=title, width=columns, height=lines, color=color)
            _write(f"{_HOME}{frame}{_CLEAR_BELOW}")
        else:
            _write(render_line(view) + "\n")

    async with client:
        await _subscribe_all(client, url, requests, watch)
        if tty:
            _write(_HIDE_CURSOR + _CLEAR_SCREEN)
        try:
            interval = _LADDER_INTERVAL_TTY if tty else _LINE_INTERVAL
            lost = await _wait(watch, args.duration, interval, draw)
        except asyncio.CancelledError:  # Ctrl-C: still say what was seen
            _finish_ladder(tty, tracker, loop.time() - started)
            raise
        _finish_ladder(tty, tracker, loop.time() - started)
    if lost:
        _raise_connection_failure(url, watch)
    return EXIT_OK


_JSON_LATENCY_INTERVAL = 1.0  # seconds between refreshes of the latency figures --json prints


async def _book_json(
    args: argparse.Namespace,
    config: ClientConfig,
    symbol: str,
    exporter: _Exporter | None = None,
) -> int:
    """``book --json``: subscribe the book of ``symbol`` and print one :func:`ladder_json`
    line per update (flushed), until done; the summary goes to stderr.

    The latency figures are refreshed once a second, not per update: each refresh copies
    every histogram of the client's tracker.
    """
    config = dataclasses.replace(config, latency=True)
    url = config.endpoint
    depth: int = args.depth
    loop = asyncio.get_running_loop()
    started = loop.time()
    tracker = MarketTracker(symbol)
    watch = _Watch()
    client = connect(config, buffer_events=False)
    broken: list[BrokenPipeError] = []
    latency: LatencyFigures | None = None
    refreshed: float | None = None

    def show(event: Event) -> None:
        nonlocal latency, refreshed
        tracker.feed(event)  # first: the market status counts this update
        if broken or type(event) is not BookUpdate:
            return
        assert isinstance(event, BookUpdate)
        book = client.book(symbol)
        if event.symbol != symbol or book is None or not book.is_live:
            return
        now = event.received_at
        if refreshed is None or now - refreshed >= _JSON_LATENCY_INTERVAL:
            latency, refreshed = LatencyFigures.of(client.latency), now
        status = tracker.health.check_status(symbol, now)
        line = ladder_json(
            book, depth=depth, market=status, latency=latency, timestamp=event.timestamp
        )
        try:
            _write(line + "\n")
        except BrokenPipeError as exc:
            broken.append(exc)
            watch.done.set()

    client.on(None, show)
    client.on(StateChanged, watch.feed)
    if exporter is not None:
        exporter.track_client(client)
    async with client:
        await _subscribe_all(client, url, [("book", [symbol], {"depth": depth})], watch)
        lost = await _wait(watch, args.duration, 1.0)
    print(render_summary(tracker, loop.time() - started), file=sys.stderr)
    if broken:
        raise broken[0]
    if lost:
        _raise_connection_failure(url, watch)
    return EXIT_OK


def _finish_ladder(tty: bool, tracker: MarketTracker, elapsed: float) -> None:
    if tty:
        _write(_SHOW_CURSOR)
    width = _terminal_size()[0] if tty else None  # a log line stays one line
    _write(render_summary(tracker, elapsed, width) + "\n")


def _terminal_size() -> tuple[int, int]:
    """The terminal's columns and lines (``COLUMNS``/``LINES`` first), 80 x 24 if unknown."""
    size = shutil.get_terminal_size(_TERMINAL_FALLBACK)
    columns = size.columns if size.columns > 0 else _TERMINAL_FALLBACK[0]
    lines = size.lines if size.lines > 0 else _TERMINAL_FALLBACK[1]
    return columns, lines


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- stream


_TYPE_NAMES: dict[type, str] = {
    Ticker: "ticker",
    Trade: "trade",
    BookUpdate: "book",
    OHLC: "ohlc",
    Instrument: "instrument",
    SystemStatus: "status",
    StateChanged: "state",
    Subscribed: "subscribed",
    SubscriptionFailed: "subscription_failed",
    Unsubscribed: "unsubscribed",
    BookResync: "book_resync",
    Pong: "pong",
    Dropped: "dropped",
    ProtocolError: "protocol_error",
}

_json_encoder = msgspec.json.Encoder()
_decode_number = msgspec.json.Decoder(Decimal).decode


def _raw_number(value: Any) -> Any:
    """``to_builtins`` hook: a raw wire number token (book levels) becomes its Decimal."""
    if isinstance(value, msgspec.Raw):
        return _decode_number(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _plain_decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, dict):
        return {key: _plain_decimals(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_decimals(item) for item in value]
    return value


def event_to_json(event: Event) -> str:
    """One JSON object for ``event``: ``"type"`` first, exact decimals as positional strings.

    ``"type"`` is ``trade``, ``ticker``, ``book``, ``ohlc``, ``state``, ``subscribed``, ...;
    the driver-local ``received_at`` (a monotonic clock reading) is left out.
    """
    data: dict[str, Any] = {"type": _TYPE_NAMES.get(type(event), type(event).__name__.lower())}
    fields = msgspec.to_builtins(event, builtin_types=(Decimal,), enc_hook=_raw_number)
    assert isinstance(fields, dict)
    fields.pop("received_at", None)
    data.update(_plain_decimals(fields))
    return _json_encoder.encode(data).decode()


def _levels(kind: str, levels: Sequence[BookLevel]) -> str:
    return ", ".join(f"{kind} {level_text(level)}" for level in levels)


def event_to_text(event: Event, client: AsyncClient | None = None) -> str | None:
    """A human-readable line for ``event`` (``None`` for events not worth a line: pongs).

    A book line shows the best bid and ask of the book right after the update when
    ``client`` is given (call this from a callback so the book matches the event).
    """
    if isinstance(event, Trade):
        return (
            f"{clock_text(event.timestamp)} trade {event.symbol} {event.side} "
            f"{number_text(event.qty)} @ {number_text(event.price)}"
        )
    if isinstance(event, Ticker):
        return (
            f"{clock_text(event.timestamp)} ticker {event.symbol} "
            f"bid {number_text(event.bid)} x {number_text(event.bid_qty)} "
            f"ask {number_text(event.ask)} x {number_text(event.ask_qty)} "
            f"last {number_text(event.last)} vol {number_text(event.volume)} "
            f"chg {event.change_pct:+.2f}%"
        )
    if isinstance(event, BookUpdate):
        return _book_text(event, client)
    if isinstance(event, OHLC):
        return (
            f"{clock_text(event.timestamp or event.interval_begin)} ohlc {event.symbol} "
            f"{event.interval}m open {number_text(event.open)} high {number_text(event.high)} "
            f"low {number_text(event.low)} close {number_text(event.close)} "
            f"vol {number_text(event.volume)} trades {event.trades}"
        )
    text = _control_text(event)
    return None if text is None else f"{clock_text(None)} {text}"


def _book_text(event: BookUpdate, client: AsyncClient | None) -> str:
    head = f"{clock_text(event.timestamp)} book {event.symbol}"
    if event.snapshot:
        body = f"snapshot {len(event.bids)} bids {len(event.asks)} asks"
    else:
        changes = [
            part for part in (_levels("bid", event.bids), _levels("ask", event.asks)) if part
        ]
        body = "update " + "; ".join(changes)
    book = client.book(event.symbol) if client is not None else None
    best = ""
    if book is not None and book.is_live:
        bid, ask = book.best_bid(), book.best_ask()
        best = (
            f" | best {number_text(bid.price) if bid else '-'} / "
            f"{number_text(ask.price) if ask else '-'} spread {number_text(book.spread())}"
        )
    return f"{head} {body}{best} | checksum {event.checksum} ok"


def _control_text(event: Event) -> str | None:
    if isinstance(event, StateChanged):
        reason = f" ({event.reason})" if event.reason else ""
        return f"state {event.old} -> {event.new}{reason}"
    if isinstance(event, Subscribed):
        return f"subscribed {event.channel} {event.symbol or ''}".rstrip()
    if isinstance(event, SubscriptionFailed):
        return f"subscription failed {event.channel} {event.symbol or ''}: {event.error}"
    if isinstance(event, Unsubscribed):
        return f"unsubscribed {event.channel} {event.symbol or ''}".rstrip()
    if isinstance(event, BookResync):
        return f"book resync {event.symbol} (attempt {event.attempt}): {event.reason}"
    if isinstance(event, SystemStatus):
        return f"status {event.system} (api {event.api_version}, version {event.version})"
    if isinstance(event, Dropped):
        return (
            f"dropped {event.dropped} events, coalesced {event.coalesced} (policy {event.policy})"
        )
    if isinstance(event, ProtocolError):
        return f"protocol error: {event.error}: {event.payload[:120]}"
    if isinstance(event, Instrument):
        return f"instrument {len(event.pairs)} pairs, {len(event.assets)} assets"
    return None  # Pong


def _cmd_publish(args: argparse.Namespace) -> int:
    from kraken_transports.fanout import cli as fanout_cli  # noqa: PLC0415

    return fanout_cli.run_publish(args)


def _cmd_stream(args: argparse.Namespace) -> int:
    if args.source is not None:  # --from URL: what `kraken-ws publish` wrote
        from kraken_transports.fanout import cli as fanout_cli  # noqa: PLC0415

        def line(event: Event) -> str | None:
            return event_to_json(event) if args.json else event_to_text(event)

        channels = _channel_list(args, ("ticker", "trade"))
        return fanout_cli.run_stream_from(args, channels, line)
    config = _client_config(args, args.url)
    requests = _requests(args, _channel_list(args, ("ticker", "trade")))
    with _metrics_endpoint(args) as exporter:
        return _asyncio_run(_stream(args, config, requests, exporter))


async def _stream(
    args: argparse.Namespace,
    config: ClientConfig,
    requests: list[_Request],
    exporter: _Exporter | None = None,
) -> int:
    watch = _Watch()
    client = connect(config, buffer_events=False)
    if exporter is not None:
        exporter.track_client(client)
    broken: list[BrokenPipeError] = []
    as_json: bool = args.json

    def show(event: Event) -> None:
        if broken or type(event) is Pong:
            return
        line = event_to_json(event) if as_json else event_to_text(event, client)
        if line is None:
            return
        try:
            _write(line + "\n")
        except BrokenPipeError as exc:
            broken.append(exc)
            watch.done.set()

    client.on(None, show)
    client.on(StateChanged, watch.feed)
    async with client:
        await _subscribe_all(client, config.endpoint, requests, watch)
        lost = await _wait(watch, args.duration, 1.0)
    if broken:
        raise broken[0]
    if lost:
        _raise_connection_failure(config.endpoint, watch)
    return EXIT_OK


# --------------------------------------------------------------------------- record


class _Recorder:
    """Writes every WebSocket message to a capture file, times relative to the first one."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._start: float | None = None
        self.counts: Counter[str] = Counter()

    def __call__(self, direction: str, text: str | bytes, now: float) -> None:
        if self._start is None:
            self._start = now
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        line = encode_capture_line(round(now - self._start, 6), direction, text)
        self._handle.write(line + "\n")
        self.counts[direction] += 1

    @property
    def seconds(self) -> float:
        """How long the recording has run, from the first message."""
        return 0.0 if self._start is None else asyncio.get_running_loop().time() - self._start


def _cmd_record(args: argparse.Namespace) -> int:
    config = _client_config(args, args.url)
    requests = _requests(args, _channel_list(args, ()))
    path: Path = args.output
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        _usage_error(args, f"argument -o/--output: cannot write {str(path)!r}: {exc.strerror}")
    with handle:
        return _asyncio_run(_record(args, config, requests, handle))


async def _record(
    args: argparse.Namespace, config: ClientConfig, requests: list[_Request], handle: IO[str]
) -> int:
    recorder = _Recorder(handle)
    watch = _Watch()
    client = connect(config, buffer_events=False, frame_hook=recorder)
    client.on(StateChanged, watch.feed)
    what = ", ".join(f"{channel} {' '.join(symbols)}" for channel, symbols, _ in requests)
    print(f"recording {what} from {config.endpoint} to {args.output}", file=sys.stderr)

    def report() -> None:
        handle.flush()

    lost = False
    try:
        async with client:
            await _subscribe_all(client, config.endpoint, requests, watch)
            lost = await _wait(watch, args.duration, 1.0, report)
    finally:
        handle.flush()
        counts = recorder.counts
        _write(
            f"recorded {counts['in'] + counts['out']} messages ({counts['in']} in, "
            f"{counts['out']} out) over {recorder.seconds:.1f} s to {args.output}\n"
        )
    if lost:
        _raise_connection_failure(config.endpoint, watch)
    return EXIT_OK


# --------------------------------------------------------------------------- replay


def _cmd_replay(args: argparse.Namespace) -> int:
    path: Path = args.capture
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _usage_error(args, f"argument CAPTURE: cannot read {str(path)!r}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    try:
        entries = list(read_capture(lines))
        result = replay(lines)
    except ParseError as exc:
        raise CliError(f"{path}: {exc}") from None
    frames_in = sum(1 for entry in entries if entry.dir == "in")
    ok, text = replay_summary(result, frames_in=frames_in)
    duration = entries[-1].t - entries[0].t if entries else 0.0
    _write(
        f"replay of {path}: {len(entries)} messages ({frames_in} in, "
        f"{len(entries) - frames_in} out) over {duration:.1f} s\n{text}"
    )
    return EXIT_OK if ok else EXIT_FAILURE


def replay_summary(result: ReplayResult, *, frames_in: int) -> tuple[bool, str]:
    """Summarise a replay; returns ``(ok, text)``.

    ``ok`` is false when any checksum failed (a :class:`BookResync`) or any
    :class:`ProtocolError` was emitted.
    """
    counts = Counter(type(event).__name__ for event in result.events)
    verified: Counter[str] = Counter()
    resyncs: Counter[str] = Counter()
    symbols: dict[str, None] = {}
    for event in result.events:
        if isinstance(event, BookUpdate):
            verified[event.symbol] += 1
            symbols.setdefault(event.symbol)
        elif isinstance(event, BookResync):
            resyncs[event.symbol] += 1
            symbols.setdefault(event.symbol)
    subscriptions = result.protocol.subscriptions
    for info in (*subscriptions.active, *subscriptions.pending, *subscriptions.failed):
        if info.channel == "book" and info.symbol is not None:
            symbols.setdefault(info.symbol)
    errors = result.of_type(ProtocolError)
    failed = result.of_type(SubscriptionFailed)
    lines = [f"frames in: {frames_in}"]
    listing = ", ".join(f"{name} {count}" for name, count in counts.most_common())
    lines.append(f"events: {listing or 'none'}")
    if symbols:
        lines.append("books:")
    width = max((len(symbol) for symbol in symbols), default=0)
    for symbol in symbols:
        book = result.protocol.book(symbol)
        if book is None:
            final = "no book"
        elif book.is_live:
            bid, ask = book.best_bid(), book.best_ask()
            final = (
                f"live, best bid {number_text(bid.price) if bid else '-'}, "
                f"best ask {number_text(ask.price) if ask else '-'}"
            )
        else:
            final = book.state.value
        lines.append(
            f"  {symbol:<{width}}  {verified[symbol]} verified, "
            f"{resyncs[symbol]} resyncs, final: {final}"
        )
    lines.append(
        f"resyncs: {sum(resyncs.values())}, protocol errors: {len(errors)}, "
        f"subscriptions failed: {len(failed)}"
    )
    for resync in result.of_type(BookResync)[:5]:
        lines.append(f"  resync {resync.symbol}: {resync.reason}")
    for error in errors[:5]:
        lines.append(f"  protocol error: {error.error}")
    for failure in failed[:5]:
        lines.append(f"  subscription failed {failure.channel} {failure.symbol}: {failure.error}")
    ok = not resyncs and not errors
    if ok:
        lines.append(f"OK: {sum(verified.values())} book messages verified, no checksum failure")
    else:
        lines.append("FAILED: a checksum failed or a frame was not understood")
    return ok, "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------- web


def _cmd_web(args: argparse.Namespace) -> int:
    from kraken_transports.web.command import run_web  # noqa: PLC0415 - starts aiohttp.web

    with _metrics_endpoint(args) as exporter:
        return _asyncio_run(run_web(args, exporter))


# --------------------------------------------------------------------------- serve


def _cmd_serve(args: argparse.Namespace) -> int:
    from kraken_transports.simserver import serve  # noqa: PLC0415 - starts aiohttp.web

    try:
        with _metrics_endpoint(args) as exporter:
            on_start = None if exporter is None else exporter.track_simulator
            serve(
                args.host, args.port, args.seed, allow_remote=args.allow_remote, on_start=on_start
            )
    except ValueError as exc:  # a non-loopback host without --allow-remote
        _usage_error(args, f"argument --host: {exc} (pass --allow-remote)")
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    # serve() returns only once Ctrl-C stopped it.
    print("simulator stopped", file=sys.stderr)
    return EXIT_INTERRUPTED
