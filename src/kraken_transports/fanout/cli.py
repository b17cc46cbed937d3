"""``kraken-ws publish`` and ``kraken-ws stream --from``: the fan-out from the command line.

::

    kraken-ws publish BTC/USD ETH/USD --channel book,trade,ticker --to redis://127.0.0.1:6379/0
    kraken-ws publish BTC/USD ETH/USD SOL/USD --to nats://127.0.0.1:4222 --shard 0/2 --live
    kraken-ws stream --from redis://127.0.0.1:6379/0 BTC/USD --channel book,trade

``publish`` streams from the embedded simulator unless ``--url`` or ``--live`` names a
Kraken endpoint; with ``--shard I/N`` it publishes only the symbols of shard ``I`` of ``N``
(:func:`~kraken_transports.fanout.encoding.shard_of`), so ``N`` publishers, on one machine
or many, share the symbols without overlap. It prints one status line a second to stderr.
:mod:`kraken_transports.cli` registers the command and dispatches to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from kraken_proto.config import ClientConfig, DropPolicy, ReconnectConfig
from kraken_proto.errors import ConfigurationError
from kraken_proto.events import Event, StateChanged
from kraken_transports.aio import connect
from kraken_transports.cli import (
    DEFAULT_URL,
    EXIT_OK,
    CliError,
    _channels,
    _raise_connection_failure,
    _subscribe_all,
    _symbol,
    _wait,
    _Watch,
    _write,
)
from kraken_transports.fanout.encoding import StreamGap, shard_of
from kraken_transports.fanout.engine import DEFAULT_MAXLEN, DEFAULT_PREFIX, EngineSettings
from kraken_transports.fanout.engine import open_sink as _open_sink
from kraken_transports.fanout.engine import open_source as _open_source
from kraken_transports.fanout.publisher import Publisher
from kraken_transports.fanout.reader import Reader

__all__ = ["add_publish_parser", "add_stream_options", "run_publish", "run_stream_from"]

_OPEN_TIMEOUT = 10.0  # seconds to reach the engine


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        shard, shards = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (e.g. 0/2)") from None
    if shards < 1 or not 0 <= shard < shards:
        raise argparse.ArgumentTypeError(f"need 0 <= I < N and N >= 1, got {text!r}")
    return shard, shards


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"prefix of the stream names (default {DEFAULT_PREFIX})",
    )
    parser.add_argument(
        "--maxlen",
        type=_positive,
        default=DEFAULT_MAXLEN,
        help=f"records kept per stream (default {DEFAULT_MAXLEN})",
    )


def add_publish_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser], formatter_class: Any
) -> argparse.ArgumentParser:
    """Register ``publish`` on the ``kraken-ws`` sub-parsers ``commands``."""
    publish: argparse.ArgumentParser = commands.add_parser(
        "publish",
        parents=list(parents),
        formatter_class=formatter_class,
        help="publish verified market data to Redis Streams or NATS JetStream",
        description=(
            "Subscribe the channels of the pairs and publish every verified event to an\n"
            "engine: one numbered, bounded stream per channel and pair, book streams with a\n"
            "verified snapshot at the start, after each resync and every --snapshot-every\n"
            "updates. Read them back with 'kraken-ws stream --from URL'. Streams from the\n"
            "embedded simulator unless --url or --live; --shard I/N publishes only the\n"
            "pairs of shard I of N (a stable hash), so N publishers share the pairs."
        ),
    )
    publish.add_argument("symbols", nargs="+", type=_symbol, metavar="SYMBOL", help="e.g. BTC/USD")
    publish.add_argument(
        "--channel",
        type=_channels,
        action="append",
        metavar="LIST",
        help="comma-separated channels: book, trade, ticker, ohlc (default book,trade,ticker)",
    )
    publish.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="engine: redis://HOST:PORT/DB (the redis extra) or nats://HOST:PORT (nats extra)",
    )
    publish.add_argument("--shard", type=_shard, metavar="I/N", help="publish shard I of N only")
    publish.add_argument(
        "--url",
        help="Kraken-compatible WebSocket endpoint (default: the embedded simulator)",
    )
    publish.add_argument("--live", action="store_true", help=f"publish from {DEFAULT_URL}")
    publish.add_argument(
        "--seed", type=int, default=0, help="simulator seed when streaming from it (default 0)"
    )
    publish.add_argument(
        "--snapshot-every",
        type=_positive,
        default=1000,
        help="book updates between snapshots (default 1000)",
    )
    publish.add_argument(
        "--max-queue",
        type=_positive,
        default=10_000,
        help="records held while the engine is slow before the oldest are dropped (default 10000)",
    )
    _engine_options(publish)
    return publish


def add_stream_options(stream: argparse.ArgumentParser) -> None:
    """Add ``--from URL`` (and the stream naming options) to ``stream``."""
    stream.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="read what 'kraken-ws publish' wrote to this engine instead of Kraken "
        "(redis://HOST:PORT/DB or nats://HOST:PORT)",
    )
    _engine_options(stream)


def _settings(args: argparse.Namespace) -> EngineSettings:
    try:
        return EngineSettings(prefix=args.prefix, maxlen=args.maxlen).checked()
    except ValueError as exc:
        args.parser.error(f"argument --prefix: {exc}")
        raise  # parser.error exits; this only tells the type checker


def run_publish(args: argparse.Namespace) -> int:
    """``kraken-ws publish``: see the module docstring."""
    channels = list(dict.fromkeys(c for group in args.channel or [] for c in group)) or [
        "book",
        "trade",
        "ticker",
    ]
    symbols: list[str] = list(dict.fromkeys(args.symbols))
    if args.shard is not None:
        shard, shards = args.shard
        symbols = [symbol for symbol in symbols if shard_of(symbol, shards) == shard]
    if args.url is not None and args.live:
        args.parser.error("argument --live: not allowed with --url")
    settings = _settings(args)
    try:
        sink = _open_sink(args.to, settings)
    except (ValueError, ImportError) as exc:
        args.parser.error(f"argument --to: {exc}")
    if not symbols:
        print(f"shard {args.shard[0]}/{args.shard[1]} has none of these pairs", file=sys.stderr)
        return EXIT_OK
    publisher = Publisher(
        sink,
        snapshot_every=args.snapshot_every,
        max_queue=args.max_queue,
        drop_policy=DropPolicy.OLDEST,
        depth=args.depth,
    )
    return asyncio.run(_publish(args, publisher, symbols, channels))


@contextlib.asynccontextmanager
async def _endpoint(args: argparse.Namespace) -> AsyncIterator[ClientConfig]:
    """The client configuration: the simulator's (started here) unless --url or --live."""
    reconnect = ReconnectConfig(max_attempts=3)
    if args.url is None and not args.live:
        from kraken_transports.simserver import run_simulator  # noqa: PLC0415 - aiohttp.web

        async with run_simulator(seed=args.seed) as sim:
            yield ClientConfig(endpoint=sim.url, reconnect=reconnect)
        return
    try:
        config = ClientConfig(endpoint=args.url or DEFAULT_URL, reconnect=reconnect)
    except ConfigurationError as exc:
        args.parser.error(f"argument --url: {exc}")
    yield config


async def _publish(
    args: argparse.Namespace, publisher: Publisher, symbols: list[str], channels: list[str]
) -> int:

    def status() -> None:
        stats = publisher.stats
        print(
            f"published {stats.written} records of {len(symbols)} pairs to {args.to} "
            f"(queued {stats.queued}, dropped {stats.dropped}, "
            f"engine errors {stats.engine_errors})",
            file=sys.stderr,
            flush=True,
        )

    try:
        await publisher.start(_OPEN_TIMEOUT)
    except Exception as exc:  # any failure to reach the engine
        raise CliError(f"cannot reach {args.to}: {exc or type(exc).__name__}") from None
    try:
        async with _endpoint(args) as config:
            watch = _Watch()
            client = connect(config, buffer_events=False)
            publisher.attach(client)
            client.on(StateChanged, watch.feed)
            requests = [
                (channel, symbols, {"depth": args.depth} if channel == "book" else {})
                for channel in channels
            ]

            async with client:
                await _subscribe_all(client, config.endpoint, requests, watch)
                lost = await _wait(watch, args.duration, 1.0, status)
            if lost:
                _raise_connection_failure(config.endpoint, watch)
    finally:
        await publisher.close()
    status()
    return EXIT_OK


def run_stream_from(
    args: argparse.Namespace, channels: list[str], line: Callable[[Event], str | None]
) -> int:
    """``kraken-ws stream --from URL``: print what the reader yields, one line per event
    (``line`` formats an event as the plain ``stream`` command does)."""
    settings = _settings(args)
    streams = [(channel, symbol) for channel in channels for symbol in dict.fromkeys(args.symbols)]
    try:
        source = _open_source(args.source, settings)
        reader = Reader(source, streams)
    except (ValueError, ImportError) as exc:
        args.parser.error(f"argument --from: {exc}")
    return asyncio.run(_stream_from(args, reader, line))


def _gap_text(gap: StreamGap) -> str:
    return f"gap {gap.channel} {gap.symbol}: {gap.reason}"


async def _stream_from(
    args: argparse.Namespace, reader: Reader, line: Callable[[Event], str | None]
) -> int:
    try:
        await reader.open(_OPEN_TIMEOUT)
    except Exception as exc:  # any failure to reach the engine
        raise CliError(f"cannot reach {args.source}: {exc or type(exc).__name__}") from None

    async def show() -> None:
        async for event in reader:
            text = _gap_text(event) if type(event) is StreamGap and not args.json else line(event)
            if text is not None:
                _write(text + "\n")

    task = asyncio.get_running_loop().create_task(show())
    try:
        await asyncio.wait({task}, timeout=args.duration)
    finally:
        await reader.close()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return EXIT_OK
