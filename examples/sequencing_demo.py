"""A private stream with a sequence gap, under each gap policy.

Kraken numbers every ``executions`` and ``balances`` message (``sequence``). The client
checks the numbers; a hole emits ``GapDetected`` once, then ``ClientConfig.gap_policy``
decides: ``resync`` (resubscribe for a fresh snapshot), ``ignore`` (deliver and carry on)
or ``buffer`` (hold messages a while for the missing one, then resync).

Against the simulator (the default) each policy gets its own private connection; the
simulator skips one executions sequence number on demand (``SequenceGap`` fault) and a
limit order far below the market makes the next executions message. ``--live`` cannot
force a gap on Kraken: it just prints your executions and balances stream, with its
sequence numbers, for ``--duration`` seconds. It needs KRAKEN_API_KEY and
KRAKEN_API_SECRET (a key with "WebSocket interface - On") in the environment.

    python examples/sequencing_demo.py
    KRAKEN_API_KEY=... KRAKEN_API_SECRET=... python examples/sequencing_demo.py --live
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from decimal import Decimal

from kraken_proto import Balance, ClientConfig, Execution, GapDetected, GapPolicy
from kraken_proto.simulator import SequenceGap
from kraken_transports import AsyncClient, SimServer, connect, run_simulator


def show(client: AsyncClient) -> list[Execution]:
    """Print the private stream as it arrives; returns the list the executions go to.

    Callbacks run as each event is produced; several may be registered per event type.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    executions: list[Execution] = []

    def stamp() -> str:
        return f"[+{loop.time() - started:4.2f}s]"

    def execution(e: Execution) -> None:
        # Reports are sparse: only exec_type is always there, the rest depends on it.
        what = f" ({e.side} {e.order_qty} {e.symbol} @ {e.limit_price})" if e.side else ""
        kind = "snapshot" if e.snapshot else "update"
        print(f"  {stamp()} executions #{e.sequence} {kind}: {e.exec_type} {e.order_id}{what}")
        executions.append(e)

    def balance(b: Balance) -> None:
        kind = "snapshot" if b.snapshot else f"update {b.type} {b.amount}"
        print(f"  {stamp()} balances #{b.sequence} {kind}: {b.asset} {b.balance}")

    def gap(g: GapDetected) -> None:
        print(
            f"  {stamp()} GAP on {g.channel}: expected #{g.expected}, got #{g.received}"
            f" -> policy {g.policy}"
        )

    client.on(Execution, execution)
    client.on(Balance, balance)
    client.on(GapDetected, gap)
    return executions


async def one_policy(sim: SimServer, policy: GapPolicy, duration: float) -> None:
    print(f"\n== gap_policy={policy.value} ==")
    # Every host of the simulator (auth_url: executions, balances and trading; rest_url:
    # where the WebSocket token comes from) and its test credentials, and our settings:
    config = sim.client_config(
        gap_policy=policy,
        gap_buffer_timeout=0.5,  # buffer: how long to wait for the missing message
    )
    async with connect(config, private=True) as client:
        executions = show(client)
        await client.subscribe("executions", timeout=10)  # a snapshot of open orders: none
        await sim.inject(SequenceGap("executions"))  # the next executions message skips one
        print("  placing an order far below the market: its first report comes after the gap")
        order = await client.add_order(
            order_type="limit",
            side="buy",
            symbol="BTC/USD",
            order_qty=Decimal("0.01"),
            limit_price=Decimal("1000"),
            timeout=10,
        )

        # Under ignore the order's own report is delivered; under resync (and buffer, once
        # the missing message never comes) a fresh snapshot lists the order instead.
        def settled() -> bool:
            return any(
                e.order_id == order.order_id and (e.snapshot or policy is GapPolicy.IGNORE)
                for e in executions
            )

        deadline = asyncio.get_running_loop().time() + duration
        while not settled() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        if not settled():
            print(f"  outcome: nothing within {duration} s")
        elif policy is GapPolicy.IGNORE:
            print(f"  outcome: {order.order_id} delivered past the gap")
        else:
            print(f"  outcome: {order.order_id} rebuilt from a fresh snapshot (sequence restarts)")
        await client.cancel_order(order_id=[order.order_id], timeout=10)  # tidy up


async def live(duration: float) -> None:
    key, secret = os.environ.get("KRAKEN_API_KEY"), os.environ.get("KRAKEN_API_SECRET")
    if not key or not secret:
        sys.exit("--live needs KRAKEN_API_KEY and KRAKEN_API_SECRET in the environment")
    async with connect(ClientConfig(api_key=key, api_secret=secret), private=True) as client:
        show(client)
        await client.subscribe("executions", timeout=15)
        await client.subscribe("balances", timeout=15)
        await asyncio.sleep(duration)


async def main(args: argparse.Namespace) -> None:
    if args.live:
        await live(args.duration)
        return
    async with run_simulator() as sim:
        print(f"simulator listening at {sim.url} (private host {sim.auth_url})")
        for policy in GapPolicy:
            await one_policy(sim, policy, args.duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument(
        "--duration",
        type=float,
        default=3.0,
        help="seconds to wait for each policy's outcome (--live: to watch the stream); default 3",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
