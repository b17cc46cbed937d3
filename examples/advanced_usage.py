"""Several callbacks per event type, error handling and connection state monitoring.

- every state change is printed (``StateChanged``: one per transition, with the reason);
- two callbacks share the ``Ticker`` type (called in the order registered) and one
  catch-all callback counts every event by type;
- a subscription Kraken refuses (an unknown pair) raises ``SubscriptionError`` with
  Kraken's own text, and the connection carries on;
- against the simulator (the default) the connection is cut halfway through, to show the
  client healing itself: degraded, connecting, subscribing, subscribed, resubscribed.
  ``--live`` uses Kraken's public host (no credentials) and cuts nothing.

    python examples/advanced_usage.py
    python examples/advanced_usage.py --live --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import Counter
from decimal import Decimal

from kraken_proto import (
    ClientConfig,
    Event,
    StateChanged,
    SubscriptionError,
    Ticker,
    WaitTimeoutError,
)
from kraken_proto.simulator import Drop
from kraken_transports import SimServer, connect, run_simulator


async def run(config: ClientConfig, sim: SimServer | None, duration: float) -> None:
    counts: Counter[str] = Counter()
    ranges: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> lowest and highest bid

    def on_state(change: StateChanged) -> None:
        retry = f" (retry {change.retry} in {change.delay:.2f} s)" if change.delay else ""
        print(f"state: {change.old} -> {change.new}{retry}  {change.reason}".rstrip())

    def print_ticker(ticker: Ticker) -> None:  # first Ticker callback
        print(f"ticker: {ticker.symbol} bid {ticker.bid} ask {ticker.ask}")

    def track_range(ticker: Ticker) -> None:  # second one: called after print_ticker
        low, high = ranges.get(ticker.symbol, (ticker.bid, ticker.bid))
        ranges[ticker.symbol] = (min(low, ticker.bid), max(high, ticker.bid))

    def count(event: Event) -> None:  # None registers for every event type
        counts[type(event).__name__] += 1

    # Register before starting, so even the first transition is seen. Callbacks only:
    # buffer_events=False, so no unread queue fills up behind us.
    client = connect(config, buffer_events=False)
    client.on(StateChanged, on_state)
    client.on(Ticker, print_ticker)
    client.on(Ticker, track_range)
    client.on(None, count)
    async with client:  # starts connecting; leaving it closes
        await client.subscribe("ticker", ["BTC/USD", "ETH/USD"], timeout=15)
        try:
            await client.subscribe("ticker", "NOPE/USD", timeout=15)
        except SubscriptionError as refused:  # Kraken's text; nothing else is affected
            print(f"refused: {refused.channel} {refused.symbol}: {refused.error}")

        await asyncio.sleep(duration / 2)
        if sim is not None:  # cut every connection without a close frame
            print("-- the simulator drops the connection --")
            await sim.inject(Drop())
        await asyncio.sleep(duration / 2)

    # After the block: the client is closed and every count is final.
    print(f"reconnects: {client.stats.reconnects}")
    for symbol, (low, high) in sorted(ranges.items()):
        print(f"bid range: {symbol} {low} .. {high}")
    print("events: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))


async def main(args: argparse.Namespace) -> None:
    if args.live:
        await run(ClientConfig(), None, args.duration)  # Kraken's production host
        return
    async with run_simulator() as sim:  # 127.0.0.1, a port the OS picks
        print(f"simulator listening at {sim.url}")
        await run(ClientConfig(endpoint=sim.url), sim, args.duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds to run (default 6)")
    arguments = parser.parse_args()
    # Connection failures are logged (WARNING, logger kraken_transports.connection).
    logging.basicConfig(format="log: %(name)s: %(message)s")
    try:
        asyncio.run(main(arguments))
    except WaitTimeoutError as exc:  # no connection: the text names the last failure
        sys.exit(f"gave up: {exc}")
    except KeyboardInterrupt:
        pass
