"""Place, amend and cancel an order; a refusal; and what an unknown outcome looks like.

Against the simulator (the default) the orders meet its matching engine. The last part
loses the answer to an order (``LoseResponse`` fault) and then cuts the connection
(``Drop``): the order did reach the exchange, but the client cannot know it, so the call
raises ``UnknownOutcomeError`` and is never retried. The script then reconciles, as you
must: after the reconnect the executions snapshot lists the open order by its
``cl_ord_id``.

``--live`` trades on Kraken (credentials from KRAKEN_API_KEY and KRAKEN_API_SECRET; the
key needs trading permission and "WebSocket interface - On"): one post-only limit buy of
the minimum quantity at 80% of the best bid, amended, then cancelled, with the dead man's
switch armed meanwhile. The unknown-outcome part runs on the simulator only.

    python examples/trading_demo.py
    KRAKEN_API_KEY=... KRAKEN_API_SECRET=... python examples/trading_demo.py --live
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kraken_proto import (
    ClientConfig,
    Execution,
    OrderError,
    Ticker,
    UnknownOutcomeError,
    new_cl_ord_id,
)
from kraken_proto.simulator import Drop, LoseResponse
from kraken_transports import AsyncClient, SimServer, connect, run_simulator

SYMBOL, QTY, TICK = "BTC/USD", Decimal("0.0001"), Decimal("0.1")


def limit_buy(price: Decimal, **fields: Any) -> dict[str, Any]:
    """The fields of a limit buy of BTC/USD (add_order takes AddOrder's fields)."""
    return {"order_type": "limit", "side": "buy", "symbol": SYMBOL, "limit_price": price, **fields}


async def until(condition: Callable[[], bool], wait: float) -> None:
    """Wait until ``condition()`` holds, ``wait`` seconds at most."""
    for _ in range(int(wait / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)


async def best_bid(config: ClientConfig, wait: float) -> Decimal:
    """The best bid now, from one ticker on the public host."""
    async with connect(config) as public:
        await public.subscribe("ticker", SYMBOL, timeout=wait)
        async for event in public:  # the ticker snapshot follows the ack at once
            if isinstance(event, Ticker):
                return event.bid
    raise RuntimeError("the public connection closed before a ticker came")


async def place_amend_cancel(client: AsyncClient, bid: Decimal, wait: float) -> None:
    price = (bid * Decimal("0.8")).quantize(TICK)  # far below the market: it rests
    order = limit_buy(price, order_qty=QTY, post_only=True, cl_ord_id=new_cl_ord_id())
    placed = await client.add_order(**order, timeout=wait)
    print(f"placed:    {placed.order_id} (cl_ord_id {placed.cl_ord_id}) buy {QTY} @ {price}")
    amended = await client.amend_order(
        order_id=placed.order_id, order_qty=QTY * 2, limit_price=price - 100, timeout=wait
    )
    print(f"amended:   {placed.order_id} to {QTY * 2} @ {price - 100} ({amended.amend_id})")
    cancelled = await client.cancel_order(order_id=placed.order_id, timeout=wait)
    print(f"cancelled: {', '.join(str(c.order_id) for c in cancelled)}")
    try:  # Kraken refuses it: OrderError carries Kraken's own text
        await client.add_order(**limit_buy(price, order_qty=Decimal("1e-8")), timeout=wait)
    except OrderError as refused:
        print(f"refused:   {refused.method}: {refused.error}")


async def unknown_outcome(client: AsyncClient, sim: SimServer, bid: Decimal, wait: float) -> None:
    print("-- the answer to the next order is lost, then the connection drops --")
    await sim.inject(LoseResponse("add_order"))  # the order still takes effect
    cl_ord_id = new_cl_ord_id()  # how we will find the order again
    reports: list[Execution] = []  # every report about that order, snapshots included

    def collect(e: Execution) -> None:
        if e.cl_ord_id == cl_ord_id:
            reports.append(e)

    client.on(Execution, collect)
    price = (bid * Decimal("0.7")).quantize(TICK)
    order = limit_buy(price, order_qty=QTY, cl_ord_id=cl_ord_id)
    sent = asyncio.create_task(client.add_order(**order, timeout=wait))
    await until(lambda: bool(reports) or sent.done(), wait)  # executions: it reached Kraken
    await sim.inject(Drop())  # no answer yet, and now there never will be
    try:
        await sent
    except UnknownOutcomeError as unknown:
        print(f"unknown:   {unknown.method} (req_id {unknown.req_id}): {unknown.reason}")
    # Never retry blindly: reconcile. The resubscribed executions snapshot lists open orders.
    await client.wait_until("subscribed", timeout=wait)
    await until(lambda: any(e.snapshot for e in reports), wait)
    found = next((e for e in reports if e.snapshot), None)
    if found is None:
        print(f"reconciled: no open order has cl_ord_id {cl_ord_id}: safe to place it again")
        return
    print(f"reconciled: {cl_ord_id} is open as {found.order_id} ({found.order_status})")
    await client.cancel_order(cl_ord_id=cl_ord_id, timeout=wait)
    print(f"cancelled: {found.order_id}")


async def trade(config: ClientConfig, sim: SimServer | None, wait: float) -> None:
    bid = await best_bid(config, wait)
    print(f"best bid {SYMBOL}: {bid}")
    async with connect(config, private=True) as client:

        def report(e: Execution) -> None:  # every execution report, as it comes
            if not e.snapshot:
                print(f"  report:  {e.exec_type:<11} {e.order_id}  status {e.order_status}")

        client.on(Execution, report)
        await client.subscribe("executions", timeout=wait)  # fills and reconciliation
        client.arm_dead_man_switch(60)  # Kraken cancels everything if we go quiet
        await place_amend_cancel(client, bid, wait)
        if sim is not None:
            await unknown_outcome(client, sim, bid, wait)


async def main(args: argparse.Namespace) -> None:
    if args.live:
        key, secret = os.environ.get("KRAKEN_API_KEY"), os.environ.get("KRAKEN_API_SECRET")
        if not key or not secret:
            sys.exit("--live needs KRAKEN_API_KEY and KRAKEN_API_SECRET in the environment")
        await trade(ClientConfig(api_key=key, api_secret=secret), None, args.duration)
        return
    async with run_simulator() as sim:  # 127.0.0.1, a port the OS picks
        print(f"simulator listening at {sim.url} (private host {sim.auth_url})")
        # Every host (auth_url: executions and trading; rest_url: where the WebSocket
        # token comes from) and the simulator's test credentials:
        await trade(sim.client_config(), sim, args.duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="trade on Kraken, not the simulator")
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="the longest any step waits for an answer, in seconds (default 5)",
    )
    arguments = parser.parse_args()
    logging.basicConfig(format="log: %(name)s: %(message)s")  # the reconnect is logged
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(arguments))
