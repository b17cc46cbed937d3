"""A slow consumer under each drop policy, with the client's exact accounting.

Events wait for you in a bounded buffer (``BackpressureConfig.max_queue_depth``). When you
read slower than they come, ``DropPolicy`` decides what is lost: ``oldest`` (drop the
oldest queued event), ``latest`` (drop the incoming one) or ``coalesce`` (a newer ticker or
book update replaces the queued one of its symbol; trades are never merged). Only market
data is ever dropped; a ``Dropped`` event tells the consumer, in order, what it missed, and
``client.stats`` accounts for every event exactly:

    received == delivered + dropped + coalesced + queued

Three clients, one per policy, read the same busy streams (book, ticker and trade for three
pairs) at the same time, each sleeping ``--delay`` seconds per event. ``--live`` uses
Kraken's public host (no credentials).

    python examples/backpressure_demo.py
    python examples/backpressure_demo.py --live --duration 20 --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

from kraken_proto import BackpressureConfig, ClientConfig, Dropped, DropPolicy
from kraken_transports import AsyncClient, ClientStats, connect, run_simulator

SYMBOLS = ["BTC/USD", "ETH/USD", "XRP/USD"]


async def slow_consumer(client: AsyncClient, delay: float, seen: Counter[str]) -> None:
    """Read every event, taking ``delay`` seconds over each: the buffer fills meanwhile."""
    async for event in client:
        if isinstance(event, Dropped):  # what was lost since the previous event we read
            seen["notices"] += 1
            seen["reported dropped"] += event.dropped
            seen["reported coalesced"] += event.coalesced
        else:
            seen["read"] += 1
        await asyncio.sleep(delay)


async def one_policy(
    endpoint: str, policy: DropPolicy, args: argparse.Namespace
) -> tuple[ClientStats, Counter[str]]:
    backpressure = BackpressureConfig(max_queue_depth=args.queue, drop_policy=policy)
    seen: Counter[str] = Counter()
    async with connect(ClientConfig(endpoint=endpoint, backpressure=backpressure)) as client:
        await client.subscribe("book", SYMBOLS, depth=10, timeout=15)
        await client.subscribe("ticker", SYMBOLS, timeout=15)
        await client.subscribe("trade", SYMBOLS, timeout=15)
        with contextlib.suppress(asyncio.TimeoutError):  # --duration is up
            await asyncio.wait_for(slow_consumer(client, args.delay, seen), args.duration)
    return client.stats, seen  # closed: the counts are final (unread events stay queued)


async def main(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        endpoint = ClientConfig().endpoint  # Kraken's public host
        if not args.live:
            sim = await stack.enter_async_context(run_simulator())  # 127.0.0.1, any port
            endpoint = sim.url
        print(
            f"{endpoint}: {len(SYMBOLS)} pairs, queue of {args.queue} events, "
            f"consumer taking {args.delay} s per event, for {args.duration} s"
        )
        results = await asyncio.gather(*(one_policy(endpoint, p, args) for p in DropPolicy))

    for policy, (stats, seen) in zip(DropPolicy, results, strict=True):
        print(
            f"\n{policy.value:<8}  received {stats.received} = delivered {stats.delivered} "
            f"+ dropped {stats.dropped} + coalesced {stats.coalesced} + queued {stats.queued}"
        )
        # The consumer's own count agrees with the client's, and the Dropped notices told
        # it of every loss but those after its last read (reported with the next event).
        agrees = "= delivered" if seen["read"] == stats.delivered else "!= delivered"
        print(
            f"          the consumer read {seen['read']} events ({agrees}) and "
            f"{seen['notices']} Dropped notices reporting {seen['reported dropped']} dropped, "
            f"{seen['reported coalesced']} coalesced"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run (default 5)")
    parser.add_argument("--delay", type=float, default=0.02, help="consumer's seconds per event")
    parser.add_argument("--queue", type=int, default=20, help="max_queue_depth (default 20)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
