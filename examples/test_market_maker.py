"""Testing a toy market maker end to end, in memory, with the SDK's pytest fixtures.

Run it with pytest (the fixtures come with the package: nothing to copy):

    python -m pytest examples/test_market_maker.py

``MarketMaker`` is written for the drivers' surface (``ThreadedClient``): it quotes one bid
and one ask around the microprice, skews them by its inventory, and reads its fills from
the ``executions`` and ``balances`` channels. The tests hand it in-memory clients of the
``kraken_exchange`` fixture (Kraken simulated on a fake clock, seeded), so the same code
runs deterministically, a simulated minute in a fraction of a second: the quotes fill
against the simulator's matching engine when the test moves the price through them, the
connection is dropped halfway, and the strategy ends flat.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from kraken_proto import Balance, Execution, StateChanged
from kraken_proto.analytics import microprice
from kraken_transports.blocking import BlockingClient
from kraken_transports.testing import SimulatedKraken

SYMBOL = "BTC/USD"
BASE = "BTC"
TICK = Decimal("0.1")

# --------------------------------------------------------------------- the strategy


class MarketMaker:
    """Quote ``size`` on both sides, ``half_spread`` around the microprice, skewed against
    the inventory; stop quoting a side once the inventory reaches ``max_position``. A quote
    within ``band`` of its price stays, so the account's trading rate counter keeps up.

    ``market`` is a public client (the book; nothing reads its events, so make it with
    ``buffer_events=False`` or they queue up to the buffer's limit), ``trading`` a private
    one (orders, fills, balances): ``ThreadedClient``s live, in-memory clients in tests.
    """

    def __init__(
        self,
        market: BlockingClient,
        trading: BlockingClient,
        *,
        size: Decimal = Decimal("0.001"),
        half_spread: Decimal = Decimal("2.0"),
        max_position: Decimal = Decimal("0.003"),
        skew: Decimal = Decimal("500"),
        band: Decimal = Decimal("1.5"),
    ) -> None:
        self.market = market
        self.trading = trading
        self.size = size
        self.half_spread = half_spread
        self.max_position = max_position
        self.skew = skew  # quote dollars moved per BTC of inventory
        self.band = band  # a quote this close to where it should be stays (rate limits)
        self.start_balance: Decimal | None = None
        self.balance: Decimal | None = None
        self.filled = Decimal(0)  # traded quantity, both sides
        self.quotes: dict[str, tuple[str, Decimal]] = {}  # side -> (order id, price)
        self.reconnects = 0
        trading.on(Execution, self._on_execution)
        trading.on(Balance, self._on_balance)
        trading.on(StateChanged, self._on_state)

    def start(self, timeout: float = 10.0) -> None:
        """Subscribe to the book and the account, and wait up to ``timeout`` seconds for
        the book's snapshot (``TimeoutError`` if it does not come)."""
        self.market.subscribe("book", SYMBOL, depth=10)
        self.trading.subscribe("executions")
        self.trading.subscribe("balances")
        for _ in range(int(timeout / 0.1)):
            if self.fair_price() is not None:
                return
            self.wait(0.1)
        raise TimeoutError(f"no {SYMBOL} book within {timeout} s")

    @property
    def position(self) -> Decimal:
        """BTC bought minus sold since the start, from the balances channel (exact after
        a reconnect too: its snapshot gives the balance afresh)."""
        if self.balance is None or self.start_balance is None:
            return Decimal(0)
        return self.balance - self.start_balance

    # ------------------------------------------------------------------ events (callbacks)

    def _on_execution(self, event: Execution) -> None:
        if event.exec_type == "trade" and event.last_qty is not None:
            self.filled += event.last_qty
        if event.order_status in ("filled", "canceled", "expired"):
            self.quotes = {s: q for s, q in self.quotes.items() if q[0] != event.order_id}

    def _on_balance(self, event: Balance) -> None:
        if event.asset == BASE and event.balance is not None:
            if self.start_balance is None:
                self.start_balance = event.balance
            self.balance = event.balance

    def _on_state(self, event: StateChanged) -> None:
        if event.old == "degraded":
            self.reconnects += 1

    # ------------------------------------------------------------------ quoting

    def fair_price(self) -> Decimal | None:
        """The microprice, moved against the inventory; None while the book is not live."""
        book = self.market.book(SYMBOL)
        if book is None or not book.is_live:
            return None
        price = microprice(book)
        return None if price is None else price - self.skew * self.position

    def requote(self) -> None:
        """Cancel quotes that are off the fair price and place the missing ones."""
        fair = self.fair_price()
        if fair is None:
            return
        wanted = {
            "buy": (fair - self.half_spread).quantize(TICK, rounding=ROUND_FLOOR),
            "sell": (fair + self.half_spread).quantize(TICK, rounding=ROUND_CEILING),
        }
        if self.position >= self.max_position:
            del wanted["buy"]
        if self.position <= -self.max_position:
            del wanted["sell"]
        stale = [
            order_id
            for side, (order_id, price) in self.quotes.items()
            if side not in wanted or abs(wanted[side] - price) > self.band
        ]
        if stale:
            self.trading.cancel_order(order_id=stale)
            self.quotes = {s: q for s, q in self.quotes.items() if q[0] not in stale}
        for side, price in wanted.items():
            if side not in self.quotes:
                placed = self.trading.add_order(
                    order_type="limit",
                    side=side,
                    symbol=SYMBOL,
                    order_qty=self.size,
                    limit_price=price,
                    post_only=True,
                )
                self.quotes[side] = (placed.order_id, price)

    def wait(self, seconds: float) -> None:
        """Handle what the private client has queued, then wait up to ``seconds`` for its
        next event (a fill, say). The waits are the client's, so a test's fake clock moves
        with them (``time.sleep`` would not move it)."""
        while self.trading.get(timeout=0) is not None:
            pass  # callbacks did the work; reading keeps the queue short
        self.trading.get(timeout=seconds)

    def run(self, rounds: int, interval: float = 0.5) -> None:
        """Requote, then wait up to ``interval`` seconds, ``rounds`` times."""
        for _ in range(rounds):
            self.requote()
            self.wait(interval)

    def flatten(self) -> None:
        """Cancel every quote, then trade the inventory away at the market."""
        self.trading.cancel_all()
        self.quotes.clear()
        position = self.position
        if position:
            self.trading.add_order(
                order_type="market",
                side="sell" if position > 0 else "buy",
                symbol=SYMBOL,
                order_qty=abs(position),
            )
            self.wait(1.0)  # the balance update follows the response


# --------------------------------------------------------------------- the tests


@pytest.mark.kraken(seed=42, symbols=[SYMBOL])
def test_quotes_fill_survive_a_reconnect_and_end_flat(kraken_exchange: SimulatedKraken) -> None:
    market = kraken_exchange.client(buffer_events=False)  # read through book() only
    trading = kraken_exchange.client(private=True)
    maker = MarketMaker(market, trading)
    maker.start()
    maker.run(rounds=10)
    buy_price = maker.quotes["buy"][1]
    kraken_exchange.move_price(SYMBOL, buy_price - 5)  # the market falls through our bid
    maker.run(rounds=10)
    assert maker.position > 0 and maker.filled > 0  # filled against the matching engine
    kraken_exchange.drop()  # both connections, mid-run
    maker.run(rounds=20)
    assert maker.reconnects == 1
    sell_price = maker.quotes["sell"][1]
    kraken_exchange.move_price(SYMBOL, sell_price + 5)  # and rises through our ask
    maker.run(rounds=20)
    maker.flatten()
    assert maker.position == 0 and not maker.quotes
    assert not kraken_exchange.exchange.engine.orders  # nothing left resting
    assert trading.stats.callback_errors == 0


@pytest.mark.kraken(seed=7, symbols=[SYMBOL])
def test_the_maker_stops_buying_at_its_position_limit(kraken_exchange: SimulatedKraken) -> None:
    maker = MarketMaker(
        kraken_exchange.client(buffer_events=False),
        kraken_exchange.client(private=True),
        max_position=Decimal(0),
    )
    maker.start()
    maker.run(rounds=2)
    assert set(maker.quotes) == set()  # flat counts as at the limit on both sides
    maker.max_position = Decimal("0.001")
    maker.run(rounds=2)
    assert set(maker.quotes) == {"buy", "sell"}
    kraken_exchange.move_price(SYMBOL, maker.quotes["buy"][1] - 5)
    maker.run(rounds=4)
    assert maker.position == Decimal("0.001") and "buy" not in maker.quotes
    maker.flatten()
    assert maker.position == 0
