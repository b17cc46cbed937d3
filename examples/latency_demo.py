"""Latency percentiles per channel, and the ping round trip with the clock offset.

With ``ClientConfig(latency=True)`` every driver measures two latencies per channel, read
any time as ``client.latency`` (a frozen ``LatencyReport``):

- exchange -> receive: Kraken's timestamp on a message to the moment the driver read it.
  The two clocks differ, so the driver estimates the exchange clock's offset from ping
  round trips (Kraken stamps its pong): the estimate is off by at most about half the
  round trip, which is printed beside it. Until the first pong it uses this machine's
  UTC clock. Snapshots and candles carry no send time, so they count as unmeasured.
- receive -> delivery: from that moment to when your code got the event (here: when the
  ``async for`` loop below received it).

This example pings every second (``ping_interval=1.0``; the default is 20 s) to get a few
round trips quickly. By default it talks to the embedded simulator (in this process, on
127.0.0.1), so exchange -> receive is tiny; ``--live`` measures Kraken itself.

    python examples/latency_demo.py
    python examples/latency_demo.py --live --duration 30 --symbol ETH/USD
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

from kraken_proto import ClientConfig, Pong
from kraken_proto.analytics import LatencyPercentiles, LatencyReport
from kraken_transports import AsyncClient, connect, run_simulator

DIRECTIONS = (("exchange", "exchange→receive"), ("delivery", "receive→delivery"))
COLUMNS = ("p50", "p90", "p99", "max")


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds with microsecond digits, ``-`` when not measured."""
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def print_report(report: LatencyReport) -> None:
    print("latency per channel, milliseconds (count: events measured, weighted under load)")
    print(f"{'channel':<10} {'direction':<17} {'count':>7}", *(f"{q:>9}" for q in COLUMNS))
    for name, channel in report.channels.items():
        for attribute, label in DIRECTIONS:
            figures: LatencyPercentiles = getattr(channel, attribute)
            if figures.count == 0:
                continue
            print(
                f"{name:<10} {label:<17} {figures.count:>7} {ms(figures.p50):>9} "
                f"{ms(figures.p90):>9} {ms(figures.p99):>9} {ms(figures.max):>9}"
            )
        if channel.unmeasured:  # snapshots, candles: no send time to measure from
            print(f"{name:<10} {'(no send time)':<17} {channel.unmeasured:>7}")


async def consume(client: AsyncClient, round_trips: list[float]) -> None:
    """Read every event (this is the 'delivery' the latency is measured to); note pongs."""
    async for event in client:
        if isinstance(event, Pong) and event.rtt is not None:
            round_trips.append(event.rtt)
            print(f"pong: round trip {ms(event.rtt)} ms", flush=True)


async def run(config: ClientConfig, symbols: list[str], duration: float) -> None:
    round_trips: list[float] = []
    async with connect(config) as client:
        for channel in ("book", "trade", "ticker"):
            await client.subscribe(channel, symbols, timeout=15)
        print(f"subscribed: book, trade, ticker {', '.join(symbols)}; measuring {duration:g} s")
        with contextlib.suppress(asyncio.TimeoutError):  # --duration is up
            await asyncio.wait_for(consume(client, round_trips), timeout=duration)
        report = client.latency  # a snapshot: the client keeps measuring meanwhile

    print_report(report)
    if round_trips:
        print(
            f"ping round trip: {len(round_trips)} pongs, min {ms(min(round_trips))} ms, "
            f"median {ms(statistics.median(round_trips))} ms, max {ms(max(round_trips))} ms"
        )
    clock = report.clock
    if clock is None:
        print("clock offset: unknown (no pong and no wall clock yet)")
    elif clock.source == "pong":
        # ``offset`` is Kraken's clock minus the driver's (monotonic) clock; minus what
        # this machine's UTC clock is ahead of that one, it is how far Kraken's clock is
        # ahead of this machine's.
        ahead = clock.offset - (time.time() - time.monotonic())
        print(
            f"clock offset: Kraken's clock - this machine's = {ms(ahead)} ms "
            f"± {ms(clock.bound)} ms (best of {clock.samples} pongs, round trip "
            f"{ms(clock.rtt)} ms)"
        )
    else:  # no pong yet: this machine's UTC clock stands in, as good as its NTP
        print("clock offset: taken from this machine's clock (no pong yet)")


async def main(args: argparse.Namespace) -> None:
    if args.live:  # Kraken's public host
        config = ClientConfig(latency=True, ping_interval=1.0)
        await run(config, args.symbol, args.duration)
        return
    async with run_simulator() as sim:  # 127.0.0.1, port 0: the OS picks a free one
        print(f"simulator listening at {sim.url}")
        config = ClientConfig(endpoint=sim.url, latency=True, ping_interval=1.0)
        await run(config, args.symbol, args.duration)


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
