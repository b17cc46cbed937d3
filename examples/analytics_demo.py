"""A live order book with its analytics: imbalance, microprice, large orders, trades by price
and market health (``kraken_proto.analytics``).

Every ``--interval`` seconds it prints the best levels of the book with their running
totals (``depth_ladder``), the top of the book with the microprice (the size-weighted mid),
the imbalance of the best 10 levels per side with its buy/sell pressure signal, the large
resting orders near the top (``OrderFlowTracker``: a level 5 times the median level size),
the last minute's trades summed by price (``TradesByPriceLevel``) and the market's status
(``MarketHealthTracker``: active, stale, halted, unknown).

The analytics are pure functions of the book and small trackers fed events with ``now``:
nothing reads a clock, every price and quantity is an exact ``Decimal``. A book that is
resyncing raises ``BookNotLiveError``, as the book's own queries do. By default it talks to
the embedded simulator (in this process, on 127.0.0.1); ``--live`` to Kraken's public host.

    python examples/analytics_demo.py
    python examples/analytics_demo.py --live --symbol ETH/USD --duration 60 --interval 2
"""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal

from kraken_proto import BookNotLiveError, BookUpdate, ClientConfig, Event, Trade
from kraken_proto.analytics import (
    FlowEvent,
    LargeOrderThreshold,
    MarketHealthTracker,
    OrderFlowTracker,
    TradesByPriceLevel,
    book_pressure,
    depth_ladder,
    imbalance_metrics,
    microprice,
)
from kraken_transports import AsyncClient, connect, run_simulator

LEVELS_SHOWN = 5  # per side
IMBALANCE_LEVELS = 10
TRADE_WINDOW = 60.0  # seconds of trades summed by price


def rounded(value: Decimal, like: Decimal, extra: int = 2) -> str:
    """``value`` with ``extra`` more decimals than the price ``like`` has."""
    decimals = len(str(like).partition(".")[2]) + extra
    return f"{value:.{decimals}f}"


class Analytics:
    """The trackers, fed from the client's callbacks; :meth:`frame` prints one frame."""

    def __init__(self, client: AsyncClient, symbol: str) -> None:
        self.client = client
        self.symbol = symbol
        self.health = MarketHealthTracker(stale_after=5.0, halted_after=30.0)
        # Relative: 10 BTC and 10 DOGE are not alike; 5 x the median level of the window.
        self.flow = OrderFlowTracker(LargeOrderThreshold.relative(5), track_depth=25)
        self.trades = TradesByPriceLevel(TRADE_WINDOW)
        self.flow_events: list[FlowEvent] = []

    def on_event(self, event: Event) -> None:
        """Every event: the health tracker learns from all of them (``received_at`` is the
        driver's clock, which ``now`` below reads too)."""
        self.health.observe(event, event.received_at)
        if isinstance(event, Trade) and event.symbol == self.symbol:
            self.trades.add_trade(event, event.received_at)
        elif isinstance(event, BookUpdate) and event.symbol == self.symbol:
            # A callback runs right after the update was applied: the book matches it.
            book = self.client.book(self.symbol)
            if book is not None and book.is_live:
                self.flow_events += self.flow.track_update(book, event.received_at)

    def frame(self, now: float, elapsed: float) -> None:
        health = self.health.check(self.symbol, now)
        print(f"[{elapsed:5.1f} s] {self.symbol}  market {health.status.value} ({health.reason})")
        book = self.client.book(self.symbol)
        try:
            if book is None:
                raise BookNotLiveError(self.symbol, "absent")
            ladder = depth_ladder(book, LEVELS_SHOWN)  # levels with running totals
            micro = microprice(book)
            pressure = book_pressure(book, IMBALANCE_LEVELS)  # default thresholds ±0.2, ±0.5
            metrics = imbalance_metrics(book, IMBALANCE_LEVELS)
        except BookNotLiveError as exc:  # resyncing: nothing to compute from
            print(f"  (no analytics: {exc})")
            return
        for level in reversed(ladder.asks):
            print(f"  ask {level.price:>14} {level.qty:>14}  cum {level.cumulative_qty:>14}")
        if ladder.bids and ladder.asks and micro is not None:
            bid, ask = ladder.bids[0].price, ladder.asks[0].price
            print(
                f"    bid {bid}  microprice {rounded(micro, bid)}  ask {ask}   "
                f"spread {ladder.spread} ({ladder.spread_bps:.2f} bps)"
            )
        for level in ladder.bids:
            print(f"  bid {level.price:>14} {level.qty:>14}  cum {level.cumulative_qty:>14}")
        print(
            f"  imbalance({IMBALANCE_LEVELS}) {pressure.imbalance:+.4f} {pressure.signal.value}"
            f"  (bid {metrics.bid_qty} vs ask {metrics.ask_qty})"
        )
        self.print_flow()
        self.print_trades(now)

    def print_flow(self) -> None:
        large = self.flow.large_levels(self.symbol)
        listed = "; ".join(f"{level.side} {level.price} x {level.qty}" for level in large[:4])
        more = f" (+{len(large) - 4} more)" if len(large) > 4 else ""
        print(f"  large orders (>= 5 x median level): {listed or 'none'}{more}")
        for event in self.flow_events[-3:]:  # the latest changes since the last frame
            print(
                f"    flow: {event.kind.name} {event.side} {event.price} "
                f"{event.previous_qty} -> {event.qty}"
            )
        if len(self.flow_events) > 3:
            print(f"    flow: and {len(self.flow_events) - 3} more since the last frame")
        self.flow_events.clear()

    def print_trades(self, now: float) -> None:
        overlay = self.trades.overlay(self.symbol, now)  # trades older than the window drop
        control, vwap = overlay.point_of_control, overlay.vwap
        if control is None or vwap is None:
            print(f"  trades (last {TRADE_WINDOW:g} s): none yet")
            return
        print(
            f"  trades (last {TRADE_WINDOW:g} s): {overlay.trade_count}, buy {overlay.buy_qty} "
            f"sell {overlay.sell_qty}, vwap {rounded(vwap, control)}, "
            f"point of control {control} (the price traded most)"
        )
        busiest = sorted(overlay.levels, key=lambda level: level.volume, reverse=True)[:3]
        for level in busiest:
            print(
                f"    at {level.price}: {level.trade_count} trades, "
                f"buy {level.buy_qty} sell {level.sell_qty}"
            )


async def run(config: ClientConfig, symbol: str, duration: float, interval: float) -> None:
    # Callbacks only (buffer_events=False): each runs as the event is produced, when the
    # book is exactly as the update left it.
    client = connect(config, buffer_events=False)
    analytics = Analytics(client, symbol)
    client.on(None, analytics.on_event)
    loop = asyncio.get_running_loop()
    async with client:
        await client.subscribe("book", [symbol], depth=25, timeout=15)
        await client.subscribe("trade", [symbol], timeout=15)
        started = loop.time()
        while (elapsed := loop.time() - started) < duration:
            await asyncio.sleep(min(interval, duration - elapsed))
            analytics.frame(loop.time(), loop.time() - started)  # the driver's clock
            print(flush=True)


async def main(args: argparse.Namespace) -> None:
    if args.live:  # Kraken's public host (no credentials)
        await run(ClientConfig(), args.symbol, args.duration, args.interval)
        return
    async with run_simulator() as sim:  # 127.0.0.1, port 0: the OS picks a free one
        print(f"simulator listening at {sim.url}")
        await run(ClientConfig(endpoint=sim.url), args.symbol, args.duration, args.interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    parser.add_argument("--symbol", default="BTC/USD", help="pair to watch (default BTC/USD)")
    asyncio.run(main(parser.parse_args()))
