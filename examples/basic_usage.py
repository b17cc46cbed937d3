"""Connect, subscribe to a ticker and print it: the smallest complete program.

By default it starts the embedded simulator (a fake Kraken, in this process, on 127.0.0.1
with a port the OS picks); ``--live`` connects to Kraken itself (wss://ws.kraken.com/v2,
public data: no credentials needed).

    python examples/basic_usage.py                      # simulator, 5 seconds
    python examples/basic_usage.py --live --duration 30 --symbol BTC/USD --symbol ETH/USD
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from kraken_proto import ClientConfig, Ticker
from kraken_transports import AsyncClient, connect, run_simulator


async def print_tickers(client: AsyncClient) -> None:
    """Print every ticker as it arrives, until cancelled."""
    async for event in client:  # every event, in order, through a bounded buffer
        if isinstance(event, Ticker):
            # Prices and quantities are exact Decimals, parsed from Kraken's own digits.
            print(
                f"{event.symbol:<8}  bid {event.bid} ({event.bid_qty})  "
                f"ask {event.ask} ({event.ask_qty})  last {event.last}  "
                f"24h {event.change_pct:+}%",
                flush=True,
            )


async def run(config: ClientConfig, symbols: list[str], duration: float) -> None:
    # Leaving the block closes the connection cleanly; it reconnects by itself meanwhile.
    async with connect(config) as client:
        # Waits for Kraken's acknowledgements (SubscriptionError if refused).
        acks = await client.subscribe("ticker", symbols, timeout=15)
        print(f"subscribed: ticker {', '.join(str(ack.symbol) for ack in acks)}")
        with contextlib.suppress(asyncio.TimeoutError):  # --duration is up
            await asyncio.wait_for(print_tickers(client), timeout=duration)
        print(f"done after {duration:g} s: {client.stats.delivered} events delivered")


async def main(args: argparse.Namespace) -> None:
    if args.live:
        await run(ClientConfig(), args.symbol, args.duration)  # Kraken's production host
        return
    async with run_simulator() as sim:  # 127.0.0.1, port 0: the OS picks a free one
        print(f"simulator listening at {sim.url}")
        await run(ClientConfig(endpoint=sim.url), args.symbol, args.duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run (default 5)")
    parser.add_argument(
        "--symbol", action="append", help="pair to watch, repeatable (default BTC/USD)"
    )
    arguments = parser.parse_args()
    arguments.symbol = arguments.symbol or ["BTC/USD"]
    asyncio.run(main(arguments))
