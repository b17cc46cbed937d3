"""``kraken-ws web``: the live order-book page, served on loopback.

:func:`run_web` is the command (its parser is in :mod:`kraken_transports.cli`): without
``--url`` or ``--live`` it starts the embedded simulator, as ``kraken-ws demo`` does;
then it connects the asyncio client (latency tracking on), subscribes ``book`` and
``trade`` for every symbol, and serves :func:`~kraken_transports.web.server.web_app` on
``127.0.0.1`` in the same event loop, printing the page's URL. It opens no browser. It
runs until ``--duration`` elapses or Ctrl-C, or fails (exit 1) when the connection is lost
for good, like the other live commands.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from aiohttp import web

from kraken_proto.config import ClientConfig
from kraken_proto.events import StateChanged
from kraken_transports.aio import connect
from kraken_transports.cli import (
    DEFAULT_URL,
    EXIT_OK,
    CliError,
    _client_config,
    _Exporter,
    _raise_connection_failure,
    _subscribe_all,
    _usage_error,
    _wait,
    _Watch,
)
from kraken_transports.web.server import WebHub, web_app

__all__ = ["DEFAULT_PORT", "LIVE_SYMBOLS", "SIMULATOR_SYMBOLS", "run_web", "web_url"]

DEFAULT_PORT = 8766
"""The page's port by default (``kraken-ws serve`` takes 8765)."""

SIMULATOR_SYMBOLS = ("BTC/USD", "ETH/USD", "XRP/USD")
"""The pairs served against the simulator when none are given."""

LIVE_SYMBOLS = ("BTC/USD", "ETH/USD")
"""The pairs served against Kraken (or ``--url``) when none are given."""

HOST = "127.0.0.1"
"""The page is served on loopback only."""


def web_url(port: int) -> str:
    """The page's URL on loopback ``port``."""
    return f"http://{HOST}:{port}/"


def _symbols(args: argparse.Namespace, simulated: bool) -> list[str]:
    given: Sequence[str] = args.symbols or (SIMULATOR_SYMBOLS if simulated else LIVE_SYMBOLS)
    symbols = list(dict.fromkeys(given))
    if simulated:
        from kraken_proto.simulator import DEFAULT_SYMBOLS  # noqa: PLC0415 - simulator only

        unknown = [symbol for symbol in symbols if symbol not in DEFAULT_SYMBOLS]
        if unknown:
            _usage_error(
                args,
                f"argument SYMBOL: the simulator has no {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(DEFAULT_SYMBOLS)} (or pass --url/--live)",
            )
    return symbols


async def run_web(args: argparse.Namespace, exporter: _Exporter | None = None) -> int:
    """Run ``kraken-ws web`` as parsed into ``args``; failures raise ``CliError``."""
    simulated = args.url is None and not args.live
    symbols = _symbols(args, simulated)
    if not simulated:
        config = _client_config(args, DEFAULT_URL if args.live else args.url)
        return await _serve(args, config, symbols, exporter, "")
    from kraken_transports.simserver import run_simulator  # noqa: PLC0415 - as demo does

    async with run_simulator(seed=args.seed) as sim:
        if exporter is not None:
            exporter.track_simulator(sim)
        config = _client_config(args, sim.url)
        note = f" (simulator at {sim.url}, seed {args.seed})"
        return await _serve(args, config, symbols, exporter, note)


async def _serve(
    args: argparse.Namespace,
    config: ClientConfig,
    symbols: list[str],
    exporter: _Exporter | None,
    note: str,
) -> int:
    config = dataclasses.replace(config, latency=True)
    url = config.endpoint
    loop = asyncio.get_running_loop()
    watch = _Watch()
    client = connect(config, buffer_events=False)
    hub = WebHub(
        symbols,
        book=client.book,
        latency=lambda: client.latency,
        clock=loop.time,
        rows=args.rows,
        max_rate=args.max_rate,
    )
    client.on(None, hub.feed)
    client.on(StateChanged, watch.feed)
    if exporter is not None:
        exporter.track_client(client)
    async with client:
        requests = [("book", symbols, {"depth": args.depth}), ("trade", symbols, {})]
        await _subscribe_all(client, url, requests, watch)
        runner = web.AppRunner(web_app(hub), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, args.port)
            try:
                await site.start()
            except OSError as exc:
                raise CliError(
                    f"cannot serve the page on {HOST}:{args.port}: {exc.strerror or exc}"
                ) from None
            port = runner.addresses[0][1]
            print(
                f"kraken-ws web: {', '.join(symbols)} at {web_url(port)}{note}; Ctrl-C to stop",
                flush=True,
            )
            lost = await _wait(watch, args.duration, 1.0)
        finally:
            await runner.cleanup()
    if lost:
        _raise_connection_failure(url, watch)
    print("kraken-ws web: stopped", file=sys.stderr)
    return EXIT_OK
