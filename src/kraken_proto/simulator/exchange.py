"""The fake Kraken exchange: shared markets and account, one session per socket.

:class:`FakeExchange` owns one :class:`~kraken_proto.simulator.market.MarketModel` per
symbol and runs their engine events in time order, each market at its own (bursty) times,
as the driver's clock advances. Each client socket gets an :class:`ExchangeConnection`,
the server-side twin of :class:`~kraken_proto.protocol.KrakenProtocol`: a sans-IO object
fed with the socket's events (``connection_made``, ``receive_data``, ``handle_timer``,
``connection_lost``) that returns, in order, the :data:`ServerAction` s to perform:
``Send(text)``, ``CloseConnection(code, reason)`` or
:class:`~kraken_proto.simulator.faults.Drop`.

It speaks Kraken's Spot WebSocket v2 as recorded on the wire (KRAKEN-V2.md section 13):
a status frame at connect; one ack per symbol with alphabetical keys, then that symbol's
snapshot after Kraken's delay; one book message per engine event, published by Kraken's
rule (see :class:`~kraken_proto.simulator.market.MarketStep`), numbers padded to the
pair's precision with a checksum on every message; heartbeats every second once something
is subscribed; Kraken's error strings; an idle close for connections with nothing
subscribed; a message-rate budget (``{"Error":"Exceeded msg rate"}``, then a close). Time is
the driver's monotonic ``now``; wall-clock text is ``epoch`` plus the time since driver
time ``origin`` (by default the first ``now`` seen), so a run is reproducible: the same
seed and the same calls at the same ``now`` give the same frames.

Three hosts (KRAKEN-V2.md section 1), chosen per connection with
:meth:`FakeExchange.open_connection`: ``public`` (ws.kraken.com: book, ticker, trade, ohlc,
instrument), ``auth`` (ws-auth.kraken.com: executions, balances and the trading methods,
each with a token from :meth:`FakeExchange.handle_token_request`) and ``level3``
(ws-l3.kraken.com: level3, with a token). A channel or method on the wrong host gets an
error and the socket stays open: :data:`PRIVATE_ON_PUBLIC_HOST` and
:data:`PUBLIC_ON_AUTH_HOST` are Kraken's texts [WIRE]; on the level3 host the same two
texts are used, and level3 elsewhere gets :data:`LEVEL3_ON_OTHER_HOST` on the auth host
(invented; what Kraken sends there is not observed). Private subscribes with a missing,
unknown, expired or revoked token get ``ESession:Invalid session`` (with ``channel`` and
``"status":"error"``), trading requests ``EAPI:Invalid token``. Orders are matched by
:class:`~kraken_proto.simulator.matching.MatchingEngine`; see
:mod:`~kraken_proto.simulator.trading` for the trading methods.

Error strings taken from the wire or Kraken's SDK: ``Already subscribed``,
``Subscription Not Found`` (with ``"method":"subscribe"`` even for an unsubscribe),
``Currency pair not supported <SYM>``, ``Subscription name invalid``,
``Symbol(s) not found``, the private-endpoint text and ``{"Error":"Exceeded msg rate"}``.
Kraken's v2 texts for a message that is not a JSON object, an unknown method and a
parameter of the wrong type are not documented: the simulator answers them with Kraken's
documented ``EGeneral:Invalid arguments`` (:data:`INVALID_ARGUMENTS`). A bad book depth or
ohlc interval gets Kraken's v1 texts (:data:`DEPTH_NOT_SUPPORTED` and the constants after
it); their v2 texts are not documented either.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from operator import itemgetter
from types import MappingProxyType
from typing import Any, cast

import msgspec

from kraken_proto.actions import CloseConnection, Send
from kraken_proto.simulator import frames, trading
from kraken_proto.simulator.account import (
    BASE_PRECISION,
    DEFAULT_BALANCES,
    QUOTE_PRECISION,
    Account,
    LedgerEntry,
)
from kraken_proto.simulator.auth import SIM_API_KEY, SIM_API_SECRET, TokenIssuer
from kraken_proto.simulator.faults import (
    ABNORMAL_CLOSURE,
    RATE_LIMIT_TEXT,
    Close,
    CorruptChecksum,
    Drop,
    Fault,
    LoseResponse,
    MalformedFrame,
    RateLimit,
    RevokeTokens,
    SequenceGap,
    Stall,
    TokenError,
    TruncatedFrame,
)
from kraken_proto.simulator.level3 import L3_DEPTHS, Level3Book
from kraken_proto.simulator.market import DEPTHS, INTERVALS, MarketModel, MarketStep
from kraken_proto.simulator.matching import MAKER_FEE, TAKER_FEE, MatchingEngine
from kraken_proto.trading import TRADING_METHODS

__all__ = [
    "ALREADY_SUBSCRIBED",
    "DEFAULT_EPOCH",
    "DEFAULT_SYMBOLS",
    "DEPTH_NOT_SUPPORTED",
    "EVENT_TRIGGER_NOT_SUPPORTED",
    "INTERVAL_NOT_SUPPORTED",
    "INTERVAL_REQUIRED",
    "MALFORMED_REQUEST",
    "METHOD_NOT_FOUND",
    "PAIR_NOT_SUPPORTED",
    "HOSTS",
    "INVALID_ARGUMENTS",
    "INVALID_SESSION",
    "INVALID_TOKEN",
    "LEVEL3_ON_OTHER_HOST",
    "PRIVATE_ON_PUBLIC_HOST",
    "PUBLIC_ON_AUTH_HOST",
    "SUBSCRIPTION_NAME_INVALID",
    "SUBSCRIPTION_NOT_FOUND",
    "SYMBOLS_NOT_FOUND",
    "ExchangeConnection",
    "FakeExchange",
    "ServerAction",
    "SymbolSpec",
]

ALREADY_SUBSCRIBED = "Already subscribed"
"""A second subscribe of a symbol on a channel (any depth) on one connection. [WIRE]"""
SUBSCRIPTION_NOT_FOUND = "Subscription Not Found"
"""Unsubscribing something not subscribed; sent with ``"method":"subscribe"``. [WIRE]"""
PAIR_NOT_SUPPORTED = "Currency pair not supported {}"
"""An unknown symbol (formatted with it), e.g. ``XBT/USD``. [WIRE]"""
SUBSCRIPTION_NAME_INVALID = "Subscription name invalid"
"""An unknown or missing channel name. [SDK]"""
SYMBOLS_NOT_FOUND = "Symbol(s) not found"
"""Subscribing to ``status`` [SDK]; also used here for a missing or empty symbol list
(Kraken's text for those is not documented)."""
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
"""Kraken's documented error for invalid request arguments. [DOC]"""
PRIVATE_ON_PUBLIC_HOST = (
    "Private data and trading are unavailable on this endpoint. Try ws-auth.kraken.com"
)
"""A private channel or a trading method on the public (or level3) host. [WIRE]"""
PUBLIC_ON_AUTH_HOST = (
    "Public market data subscriptions are unavailable on this endpoint. Try ws.kraken.com"
)
"""A public channel on the auth (or level3) host. [WIRE]"""
LEVEL3_ON_OTHER_HOST = (
    "Level3 market data subscriptions are unavailable on this endpoint. Try ws-l3.kraken.com"
)
"""level3 on the auth host. (Invented by analogy; on the public host it gets the private text.)"""
INVALID_SESSION = "ESession:Invalid session"
"""A private subscribe without a valid token. [WIRE]"""
INVALID_TOKEN = "EAPI:Invalid token"
"""A trading request without a valid token; the socket stays open. [SDK]"""
HOSTS = ("public", "auth", "level3")
"""The hosts a connection can be opened on."""
MAX_RATE_COUNT = 125
"""``maxratecount`` of the executions ack (Intermediate tier)."""
MALFORMED_REQUEST = INVALID_ARGUMENTS
"""Not a JSON object, or a field of the wrong type (``params`` not an object, ``snapshot``
not a boolean, ``symbol`` not a list of strings, ...). Kraken's v2 text for these is not
documented (``Malformed request`` is its v1 text): :data:`INVALID_ARGUMENTS`."""
METHOD_NOT_FOUND = INVALID_ARGUMENTS
"""An unknown ``method``. Kraken's v2 text is not documented: :data:`INVALID_ARGUMENTS`."""
DEPTH_NOT_SUPPORTED = "Subscription depth not supported"
"""A book depth outside 10/25/100/500/1000. (Kraken's v1 text.)"""
INTERVAL_REQUIRED = "Subscription ohlc requires interval"
"""An ohlc request without ``interval``. (Kraken's v1 text.)"""
INTERVAL_NOT_SUPPORTED = "Subscription ohlc interval not supported"
"""An ohlc ``interval`` that is not one of Kraken's. (Kraken's v1 text.)"""
EVENT_TRIGGER_NOT_SUPPORTED = INVALID_ARGUMENTS
"""A ticker ``event_trigger`` other than ``trades``/``bbo``. Kraken's text is not
documented: :data:`INVALID_ARGUMENTS`."""

DEFAULT_EPOCH = 1785542400.0
"""2026-08-01T00:00:00Z: the default wall-clock time of the exchange's first ``now``."""

VERSION = "2.0.10"
"""The API version the status frame reports (as in the 2026 captures)."""

IDLE_CLOSE_REASON = "Connection idle"
"""Reason of the close (code 1000) after ``idle_timeout`` seconds without a client message.
(Kraken's reason text is not documented.)"""

SNAPSHOT_DELAY = 0.15
"""Median delay in seconds of a book snapshot after its ack (Kraken: 13-466 ms, median 153)."""

MESSAGE_RATE = 25.0
"""Client messages per second the exchange accepts after a burst (Kraken documents none)."""

MESSAGE_BURST = 50
"""Client messages the exchange accepts back to back (Kraken documents none)."""

RATE_LIMIT_CLOSE = 1008
"""Close code after ``{"Error":"Exceeded msg rate"}``: policy violation. (Kraken's code is
not documented.)"""

_PUBLIC_CHANNELS = ("book", "ticker", "trade", "ohlc", "instrument")
_PRIVATE_CHANNELS = ("executions", "balances", "level3")
_ACCOUNT_CHANNELS = ("executions", "balances")
_EXECUTIONS_WARNINGS = ["cancel_reason is deprecated, use reason"]
# Execution types sent with order_status=false: open and close transitions (and fills).
_STATUS_ONLY = frozenset({"pending_new", "amended", "restated", "status"})
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_EVENT_TRIGGERS = ("trades", "bbo")
_OHLC_WARNINGS = ["timestamp is deprecated, use interval_begin"]
_INSTRUMENT_WARNINGS = ["tick_size is deprecated, use price_increment"]
_INF = math.inf

ServerAction = Send | CloseConnection | Drop
"""What an :class:`ExchangeConnection` asks its server driver to do."""


class SymbolSpec(msgspec.Struct, frozen=True):
    """One simulated pair: its precisions, starting price, market and instrument details.

    ``tick`` defaults to one unit of ``price_precision``; ``qty_min`` to a round quantity
    worth about 5 units of the quote currency. ``activity`` sets how busy the market is:
    ``activity * tick_rate`` book events per second on average (the exchange's
    ``tick_rate``, 20 by default). ``levels`` is the least number of levels per book side
    and ``spread`` how loose the top of the book is (the market model's ``spread``: 1 keeps
    the spread at one tick nearly always, as on Kraken's BTC/USD; 120 gives ETH/USD's median
    of 4 ticks and 90th percentile of 16). ``margin`` is ``(margin_initial,
    position_limit_long, position_limit_short)`` for a pair traded on margin, as the
    instrument channel lists them; ``None``: not marginable.
    """

    price_precision: int
    qty_precision: int
    mid: Decimal
    tick: Decimal | None = None
    qty_min: Decimal | None = None
    cost_min: Decimal = Decimal("0.5")
    activity: float = 2.0
    levels: int = 1000
    spread: int = 1
    margin: tuple[Decimal, int, int] | None = None

    def price_increment(self) -> Decimal:
        """The tick: ``tick`` or one unit of ``price_precision``."""
        return Decimal(1).scaleb(-self.price_precision) if self.tick is None else self.tick

    def minimum_qty(self) -> Decimal:
        """``qty_min``, or a power of ten worth about 5 quote units."""
        if self.qty_min is not None:
            return self.qty_min
        exponent = math.floor(math.log10(5 / float(self.mid)))
        return Decimal(1).scaleb(max(exponent, -self.qty_precision))


DEFAULT_SYMBOLS: Mapping[str, SymbolSpec] = MappingProxyType(
    {
        # qty_min and the margin terms of BTC/USD as Kraken lists them [WIRE, DOC].
        "BTC/USD": SymbolSpec(
            1,
            8,
            Decimal("63000.0"),
            qty_min=Decimal("0.00005"),
            activity=2.5,
            margin=(Decimal("0.2"), 250, 200),
        ),
        "ETH/USD": SymbolSpec(
            2, 8, Decimal("1877.30"), activity=1.75, spread=120, margin=(Decimal("0.2"), 3000, 2500)
        ),
        "XRP/USD": SymbolSpec(
            5,
            8,
            Decimal("1.08100"),
            activity=1.65,
            spread=100,
            margin=(Decimal("0.2"), 4_000_000, 3_000_000),
        ),
        "SOL/USD": SymbolSpec(2, 8, Decimal("142.50"), activity=1.5, spread=60),
        "ADA/USD": SymbolSpec(6, 8, Decimal("0.452300"), activity=1.5, spread=60),
        "DOGE/USD": SymbolSpec(7, 8, Decimal("0.1523400"), activity=1.5, spread=60),
        "LTC/USD": SymbolSpec(2, 8, Decimal("82.15"), activity=1.5, spread=60),
        "DOT/USD": SymbolSpec(4, 8, Decimal("4.2150"), activity=1.5, spread=60),
    }
)
"""The default pairs: price/qty precision as on Kraken, realistic 2026 prices, and
activity and spreads fitted to the real BTC/USD, ETH/USD and XRP/USD captures."""


class _StepFrames:
    """The frames one market step produces, each rendered once for every connection."""

    __slots__ = ("_checksum", "_texts", "_timestamp", "level3", "market", "step")

    def __init__(
        self, market: MarketModel, step: MarketStep, level3: Level3Book | None = None
    ) -> None:
        self.market = market
        self.step = step
        self.level3 = level3
        self._texts: dict[object, str] = {}
        self._timestamp = ""
        self._checksum: int | None = None

    def _time(self) -> str:
        if not self._timestamp:
            self._timestamp = frames.rfc3339(self.step.time)
        return self._timestamp

    def book(self, depth: int) -> str | None:
        delta = self.step.book(depth)
        if delta is None:
            return None
        text = self._texts.get(depth)
        if text is None:
            if self._checksum is None:
                self._checksum = self.market.checksum()
            text = self._texts[depth] = frames.book_frame(
                "update", self.market.symbol, delta.bids, delta.asks, self._checksum, self._time()
            )
        return text

    def l3(self, depth: int) -> str | None:
        assert self.level3 is not None  # only asked for by level3 subscribers
        key = ("level3", depth)
        if key not in self._texts:
            text = self.level3.frame("update", depth)
            if text is None:
                return None
            self._texts[key] = text
        return self._texts[key]

    def ticker(self) -> str:
        text = self._texts.get("ticker")
        if text is None:
            text = self._texts["ticker"] = frames.ticker_frame(
                "update", self.market.symbol, self.market.ticker(), self._time()
            )
        return text

    def trade(self) -> str:
        text = self._texts.get("trade")
        if text is None:
            text = self._texts["trade"] = frames.trade_frame(
                "update", self.market.symbol, self.step.trades
            )
        return text

    def ohlc(self, interval: int) -> str:
        key = ("ohlc", interval)
        text = self._texts.get(key)
        if text is None:
            candle = self.market.candle(interval)
            assert candle is not None  # this step traded
            text = self._texts[key] = frames.ohlc_frame(
                "update", self.market.symbol, [candle], frames.rfc3339_ns(self.step.time)
            )
        return text


class FakeExchange:
    """A deterministic fake of Kraken's WebSocket hosts; see the module docstring.

    ``symbols`` maps each pair to its :class:`SymbolSpec` (default :data:`DEFAULT_SYMBOLS`);
    ``seed`` seeds every market and connection. Each market makes ``activity *
    tick_rate`` book events per second on average, one engine event at a time at its own
    (bursty) times, from the first ``now`` the exchange sees; when more than
    ``max_catchup`` seconds of events are owed (nobody called for a while), the older ones
    are skipped rather than simulated.

    Wall-clock time (every timestamp sent): driver time ``origin`` stands for ``epoch``
    (Unix seconds), and wall time runs with driver time from there. The exchange never
    reads a clock: a server that wants the current date passes ``epoch=time.time()`` with
    ``origin`` its own clock's reading at that moment (``run_simulator`` does). By default
    ``epoch`` is the fixed :data:`DEFAULT_EPOCH` and ``origin`` the first ``now``, so the
    same seed and the same calls give the same frames.

    Connections send a heartbeat every ``heartbeat_interval`` seconds once subscribed, and
    are closed after ``idle_timeout`` seconds without a client message while they have no
    subscription (``None``: never). A book or level3 snapshot follows its ack after a
    random delay of about ``snapshot_delay`` seconds (median; from a tenth of it to three
    times it; ``None``: at once), as on Kraken (13-466 ms, median 153 ms). A client may send
    ``message_burst`` messages at once and ``message_rate`` per second after that; one more
    gets ``{"Error":"Exceeded msg rate"}`` and the socket is closed (``message_rate=None``:
    no limit, e.g. for benchmarks).

    The authenticated side: ``api_key``/``api_secret`` are the one key pair the token
    endpoint accepts (default :data:`~kraken_proto.simulator.auth.SIM_API_KEY` /
    :data:`~kraken_proto.simulator.auth.SIM_API_SECRET`); ``balances`` the starting
    balances (default :data:`~kraken_proto.simulator.account.DEFAULT_BALANCES`; every asset
    of ``symbols`` is listed, at 0 when not given); ``maker_fee``/``taker_fee`` the fee rates.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        symbols: Mapping[str, SymbolSpec] | None = None,
        tick_rate: float = 20.0,
        epoch: float = DEFAULT_EPOCH,
        origin: float | None = None,
        idle_timeout: float | None = 60.0,
        heartbeat_interval: float = 1.0,
        max_catchup: float = 5.0,
        snapshot_delay: float | None = SNAPSHOT_DELAY,
        message_rate: float | None = MESSAGE_RATE,
        message_burst: int = MESSAGE_BURST,
        api_key: str = SIM_API_KEY,
        api_secret: str = SIM_API_SECRET,
        balances: Mapping[str, Decimal] | None = None,
        maker_fee: Decimal = MAKER_FEE,
        taker_fee: Decimal = TAKER_FEE,
    ) -> None:
        if tick_rate <= 0:
            raise ValueError(f"tick_rate must be > 0, got {tick_rate}")
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0 or None, got {idle_timeout}")
        if max_catchup <= 0:
            raise ValueError(f"max_catchup must be > 0, got {max_catchup}")
        if snapshot_delay is not None and snapshot_delay <= 0:
            raise ValueError(f"snapshot_delay must be > 0 or None, got {snapshot_delay}")
        if message_rate is not None and message_rate <= 0:
            raise ValueError(f"message_rate must be > 0 or None, got {message_rate}")
        if message_burst < 1:
            raise ValueError(f"message_burst must be at least 1, got {message_burst}")
        self.seed = seed
        """The seed of every market and connection."""
        self.tick_rate = tick_rate
        """The markets' pace: each makes ``activity * tick_rate`` book events per second."""
        self.epoch = epoch
        """Wall-clock seconds at driver time :attr:`origin`."""
        self.idle_timeout = idle_timeout
        """Seconds without a client message before an unsubscribed connection is closed."""
        self.heartbeat_interval = heartbeat_interval
        """Seconds between heartbeats."""
        self.snapshot_delay = snapshot_delay
        """Median delay of a book or level3 snapshot after its ack (``None``: none)."""
        self.message_rate = message_rate
        """Client messages per second allowed after a burst (``None``: no limit)."""
        self.message_burst = message_burst
        """Client messages allowed back to back."""
        self.specs: Mapping[str, SymbolSpec] = MappingProxyType(
            dict(DEFAULT_SYMBOLS if symbols is None else symbols)
        )
        """The simulated pairs."""
        self.markets: dict[str, MarketModel] = {
            symbol: MarketModel(
                symbol,
                rng=random.Random(f"{seed}:market:{symbol}"),
                price_precision=spec.price_precision,
                qty_precision=spec.qty_precision,
                mid=spec.mid,
                tick=spec.price_increment(),
                levels=spec.levels,
                spread=spec.spread,
                start=epoch,
                rate=spec.activity * tick_rate,
            )
            for symbol, spec in self.specs.items()
        }
        """The market of each pair (shared by every connection)."""
        self._max_catchup = max_catchup
        self._origin = origin
        # (driver time of the market's next event, index into _markets), a heap.
        self._markets = list(self.markets.values())
        self._due: list[tuple[float, int]] = []
        self._started = False
        self.halted: set[str] = set()
        """The pairs halted by :meth:`halt` (no market events, new orders refused)."""
        # (driver time, number, connection, channel, symbol) of snapshots to send, a heap.
        self._snapshots: list[tuple[float, int, ExchangeConnection, str, str]] = []
        self._snapshot_count = 0
        self._opened = 0
        self._connections: list[ExchangeConnection] = []
        self._future: list[tuple[float | None, float | None, Fault]] = []
        self._instrument: str | None = None
        self.tokens = TokenIssuer(seed=seed, api_key=api_key, api_secret=api_secret)
        """The token endpoint and the tokens it issued."""
        assets = [a for symbol in self.specs for a in symbol.split("/")]
        quotes = {symbol.partition("/")[2] for symbol in self.specs}
        self.account = Account(
            DEFAULT_BALANCES if balances is None else balances,
            assets,
            {asset: QUOTE_PRECISION if asset in quotes else BASE_PRECISION for asset in assets},
        )
        """The simulated account's balances."""
        self.engine = MatchingEngine(
            self.markets,
            self.account,
            random.Random(f"{seed}:engine"),
            maker_fee=maker_fee,
            taker_fee=taker_fee,
        )
        """The matching engine (open orders, fills)."""
        self.rules = {
            symbol: trading.SymbolRules(
                spec.price_precision,
                spec.qty_precision,
                spec.price_increment(),
                spec.minimum_qty(),
                spec.cost_min,
            )
            for symbol, spec in self.specs.items()
        }
        """What orders on each pair must respect."""
        self.level3_books: dict[str, Level3Book] = {}
        """The level3 book of each pair somebody subscribed to (kept from then on)."""
        if origin is not None:
            self._start(origin)

    # ----------------------------------------------------------------- time

    @property
    def origin(self) -> float | None:
        """The driver time that stands for :attr:`epoch` (``None`` until the first ``now``)."""
        return self._origin

    def _start(self, now: float) -> float:
        if not self._started:
            self._started = True
            if self._origin is None:
                self._origin = now
            first = self._origin
            self._due = [(first + market.next_gap(), i) for i, market in enumerate(self._markets)]
            heapq.heapify(self._due)
        return cast(float, self._origin)

    def wall_time(self, now: float) -> float:
        """The wall-clock time (Unix seconds) that driver time ``now`` stands for."""
        return self.epoch + now - self._start(now)

    def driver_time(self, wall: float) -> float:
        """The driver time that wall-clock time ``wall`` stands for (inverse of wall_time)."""
        origin = 0.0 if self._origin is None else self._origin
        return origin + wall - self.epoch

    def next_step_time(self) -> float:
        """Driver time of the next market event or snapshot to render (inf: none)."""
        due = self._due[0][0] if self._due else _INF
        return min(due, self._snapshots[0][0]) if self._snapshots else due

    def advance(self, now: float) -> None:
        """Run every market event due by ``now`` and queue the frames on the connections.

        Events run in time order across markets, each at its own time; the snapshots
        connections wait for are rendered in that order too, at their time. Connections
        call this themselves; call it directly only to move the markets with no connection
        driving them.
        """
        self._start(now)
        due = self._due
        floor = now - self._max_catchup
        if due and due[0][0] < floor:
            # Nobody watched: skip what is owed beyond max_catchup.
            self._due = due = [
                (floor + self._markets[i].next_gap() if t < floor else t, i) for t, i in due
            ]
            heapq.heapify(due)
        engine = self.engine
        snapshots = self._snapshots
        while True:
            next_event = due[0][0] if due else _INF
            if snapshots and snapshots[0][0] <= min(next_event, now):
                t, number, connection, channel, symbol = heapq.heappop(snapshots)
                connection._snapshot_due(t, number, channel, symbol)
                continue
            if next_event > now:
                break
            index = due[0][1]
            market = self._markets[index]
            wall = self.wall_time(next_event)
            engine.run_timers(wall)
            self._publish(market, market.step(wall), next_event)
            heapq.heapreplace(due, (next_event + market.next_gap(), index))
        engine.run_timers(self.wall_time(now))
        if engine.outbox:
            self.flush_private(now)

    def _publish(self, market: MarketModel, step: MarketStep, t: float) -> None:
        """Account for one market step at driver time ``t`` and queue its frames."""
        engine = self.engine
        engine.on_step(market, step)
        level3 = self.level3_books.get(market.symbol)
        if level3 is not None:
            level3.apply(step)
        rendered = _StepFrames(market, step, level3)
        for connection in self._connections:
            connection._collect(rendered, t)
        if engine.outbox:
            self.flush_private(t)

    # ----------------------------------------------------------------- market control

    def _market(self, symbol: str) -> MarketModel:
        market = self.markets.get(symbol)
        if market is None:
            raise ValueError(f"symbol must be one of {sorted(self.markets)}, got {symbol!r}")
        return market

    def move_price(self, symbol: str, price: Decimal, now: float) -> None:
        """Move ``symbol``'s market to ``price`` at driver time ``now``: a taker sweeps the
        book there, with a trade per level, and a new best level rests at ``price`` (see
        :meth:`MarketModel.sweep <kraken_proto.simulator.market.MarketModel.sweep>`).

        Resting orders the sweep reaches fill; every connection gets the frames at ``now``
        (book, ticker, trades, level3), in order with the market's own events. Raises
        ``ValueError`` for an unknown symbol or a price the sweep cannot reach.
        """
        market = self._market(symbol)
        self.advance(now)
        self._publish(market, market.sweep(price, self.wall_time(now)), now)

    def add_liquidity(
        self, symbol: str, side: str, price: Decimal, qty: Decimal, now: float
    ) -> None:
        """Rest ``qty`` more at ``price`` on ``side`` (``"bid"``/``"ask"``) of ``symbol``'s
        book at driver time ``now`` (see :meth:`MarketModel.add_liquidity
        <kraken_proto.simulator.market.MarketModel.add_liquidity>`); published like
        :meth:`move_price`. Raises ``ValueError`` for an unknown symbol or a bad level."""
        market = self._market(symbol)
        self.advance(now)
        self._publish(market, market.add_liquidity(side, price, qty, self.wall_time(now)), now)

    def halt(self, symbol: str, now: float) -> None:
        """Halt ``symbol`` at driver time ``now``, as Kraken's ``cancel_only`` status: its
        market makes no more events (no book updates, trades or fills; heartbeats go on) and
        new orders on it (``add_order``, ``batch_add``, ``edit_order``) are refused with
        :data:`~kraken_proto.simulator.trading.MARKET_HALTED`; cancels work. Idempotent."""
        market = self._market(symbol)
        self.advance(now)
        self.halted.add(symbol)
        self.rules[symbol] = msgspec.structs.replace(self.rules[symbol], halted=True)
        index = self._markets.index(market)
        self._due = [entry for entry in self._due if entry[1] != index]
        heapq.heapify(self._due)

    def resume(self, symbol: str, now: float) -> None:
        """Let a halted ``symbol`` trade again from driver time ``now`` (a no-op if it is
        not halted)."""
        market = self._market(symbol)
        self.advance(now)
        if symbol in self.halted:
            self.halted.discard(symbol)
            self.rules[symbol] = msgspec.structs.replace(self.rules[symbol], halted=False)
            index = self._markets.index(market)
            heapq.heappush(self._due, (now + market.next_gap(), index))

    def _schedule_snapshot(
        self, at: float, connection: ExchangeConnection, channel: str, symbol: str
    ) -> int:
        """Render ``connection``'s snapshot of ``channel``/``symbol`` at driver time ``at``."""
        self._snapshot_count += 1
        heapq.heappush(self._snapshots, (at, self._snapshot_count, connection, channel, symbol))
        return self._snapshot_count

    def flush_private(self, latest: float) -> None:
        """Queue the engine's new execution reports and ledger entries on every connection.

        Each is due at the driver time of its wall-clock time, but not after ``latest`` (the
        driver time of the step or request that made it: no float rounding past it).
        """
        outbox = self.engine.outbox
        self.engine.outbox = []
        for wall, channel, entry in outbox:
            t = min(self.driver_time(wall), latest)
            for connection in self._connections:
                connection._private(t, channel, entry)

    # ----------------------------------------------------------------- authentication

    def handle_token_request(
        self, path: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> tuple[int, bytes]:
        """Answer ``POST /0/private/GetWebSocketsToken``: ``(HTTP status, JSON body)``.

        See :class:`~kraken_proto.simulator.auth.TokenIssuer`: ``API-Key`` must be this
        exchange's key, ``API-Sign`` must verify and the nonce must increase. Tokens are
        valid for 900 s of driver time (``now``) unless a connection subscribed with them.
        """
        return self.tokens.handle(path, headers, body, now)

    def inject_token_error(self, error: str = "EAPI:Invalid key", count: int = 1) -> None:
        """Make the next ``count`` token requests fail with ``error`` (like :class:`TokenError`)."""
        self.tokens.inject_error(error, count)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far (like :class:`RevokeTokens`)."""
        self.tokens.revoke()

    def level3_book(self, symbol: str) -> Level3Book:
        """The level3 book of ``symbol``, started from the market's book on first use."""
        book = self.level3_books.get(symbol)
        if book is None:
            market = self.markets[symbol]
            rng = random.Random(f"{self.seed}:level3:{symbol}")
            book = self.level3_books[symbol] = Level3Book(market, rng, market.time)
        return book

    def next_private_time(self) -> float | None:
        """Driver time of the engine's next timer (dead man's switch, GTD expiry), if any."""
        wall = self.engine.next_timer()
        return None if wall is None else self.driver_time(wall)

    # ----------------------------------------------------------------- connections

    @property
    def connections(self) -> list[ExchangeConnection]:
        """The open connections, oldest first."""
        return list(self._connections)

    def open_connection(self, now: float, host: str = "public") -> ExchangeConnection:
        """A new session for a client socket accepted at ``now``; call its ``connection_made``.

        ``host`` is the endpoint the socket reached: ``public``, ``auth`` or ``level3``.
        """
        if host not in HOSTS:
            raise ValueError(f"host must be one of {HOSTS}, got {host!r}")
        self.advance(now)
        self._opened += 1
        connection = ExchangeConnection(self, self._opened, now, host)
        for at, after, fault in self._future:
            if after is not None:
                connection.schedule(fault, at=now + after)
            elif at is not None and at >= now:
                connection.schedule(fault, at=at)
        self._connections.append(connection)
        return connection

    def _detach(self, connection: ExchangeConnection) -> None:
        self._connections.remove(connection)

    def schedule(
        self,
        fault: Fault,
        *,
        at: float | None = None,
        after: float | None = None,
        connection: ExchangeConnection | None = None,
    ) -> None:
        """Inject ``fault`` later: at driver time ``at``, or ``after`` seconds past a connect.

        With ``connection`` the fault goes to that connection only (``after`` counts from
        its connect). Without, ``at`` reaches every connection open at that time, and
        ``after`` every connection, current and future, ``after`` seconds after it opened
        (e.g. ``schedule(Drop(), after=5.0)`` drops each connection after 5 s).
        """
        if (at is None) == (after is None):
            raise ValueError("schedule() takes exactly one of at= and after=")
        targets = self._connections if connection is None else [connection]
        for target in targets:
            when = cast(float, at) if after is None else target.opened_at + after
            target.schedule(fault, at=when)
        if connection is None:
            self._future.append((at, after, fault))

    # ----------------------------------------------------------------- instrument

    def instrument_snapshot(self) -> str:
        """The instrument channel's snapshot frame (built once).

        Keys in the wire's order. Pairs carry ``ws_display_price_precision`` (the price
        precision) and, when :attr:`SymbolSpec.margin` is set, ``marginable`` true with
        ``margin_initial``, ``position_limit_long`` and ``position_limit_short``; assets
        carry ``class`` (``currency``). Numbers are written as Python writes the float
        (``1e-08``, ``5e-05``), as on the wire.
        """
        if self._instrument is None:
            assets: dict[str, dict[str, Any]] = {}
            pairs: list[dict[str, Any]] = []
            for symbol, spec in self.specs.items():
                base, _, quote = symbol.partition("/")
                for asset, precision, display in (
                    (base, BASE_PRECISION, 5),
                    (quote, QUOTE_PRECISION, 2),
                ):
                    assets.setdefault(
                        asset,
                        {
                            "id": asset,
                            "status": "enabled",
                            "precision": precision,
                            "precision_display": display,
                            "borrowable": False,
                            "collateral_value": 1.0 if asset == quote else 0.9,
                            "class": "currency",
                        },
                    )
                increment = frames.float_number(spec.price_increment())
                pair: dict[str, Any] = {
                    "symbol": symbol,
                    "base": base,
                    "quote": quote,
                    "status": "online",
                    "qty_precision": spec.qty_precision,
                    "qty_increment": frames.float_number(Decimal(1).scaleb(-spec.qty_precision)),
                    "price_precision": spec.price_precision,
                    "cost_precision": 5,
                    "marginable": spec.margin is not None,
                    "has_index": True,
                    "ws_display_price_precision": spec.price_precision,
                    "cost_min": frames.float_number(spec.cost_min),
                }
                if spec.margin is not None:
                    initial, long_limit, short_limit = spec.margin
                    pair["margin_initial"] = frames.float_number(initial)
                    pair["position_limit_long"] = long_limit
                    pair["position_limit_short"] = short_limit
                pair["tick_size"] = increment
                pair["price_increment"] = increment
                pair["qty_min"] = frames.float_number(spec.minimum_qty())
                pairs.append(pair)
            self._instrument = frames.instrument_frame(list(assets.values()), pairs)
        return self._instrument


class _Private:
    """A private channel message waiting in a connection's queue (rendered when sent)."""

    __slots__ = ("channel", "entry")

    def __init__(self, channel: str, entry: Any) -> None:
        self.channel = channel
        self.entry = entry


def _ledger_row(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "ledger_id": entry.ledger_id,
        "ref_id": entry.ref_id,
        "timestamp": frames.rfc3339(entry.time),
        "type": entry.type,
        "asset": entry.asset,
        "asset_class": "currency",
        "category": entry.category,
        "wallet_type": "spot",
        "wallet_id": "main",
        "amount": frames.float_number(entry.amount),
        "fee": frames.float_number(entry.fee),
        "balance": frames.float_number(entry.balance),
    }


class ExchangeConnection:
    """The server side of one client socket (make it with :meth:`FakeExchange.open_connection`).

    Every method takes the driver's monotonic ``now`` and returns the actions to perform,
    in order. After a close or a drop the connection is finished: every method returns
    ``[]`` and :meth:`next_deadline` is ``None``.
    """

    def __init__(
        self, exchange: FakeExchange, number: int, now: float, host: str = "public"
    ) -> None:
        self._exchange = exchange
        self.host = host
        """The endpoint this socket reached: ``public``, ``auth`` or ``level3``."""
        self._rng = random.Random(f"{exchange.seed}:connection:{number}")
        self.connection_id = self._rng.getrandbits(64)
        """The uint64 id of the status frame (often above 2**63, as on Kraken)."""
        self.opened_at = now
        """Driver time the connection was opened."""
        self.closed = False
        """Whether the connection has been closed or dropped (or lost)."""
        self._pending: list[tuple[float, str | _Private, str | None]] = []
        self._book: dict[str, int] = {}
        self._ticker: dict[str, str] = {}
        self._trade: dict[str, None] = {}
        self._ohlc: dict[str, dict[int, None]] = {}
        self._instrument = False
        self._heartbeats = False
        self._next_heartbeat = _INF
        self._last_message = now
        self._stall_until = -_INF
        self._slow_delay = 0.0
        self._slow_until = -_INF
        self._delayed: deque[tuple[float, str]] = deque()
        self._truncate = False
        self._corrupt: dict[str, None] = {}
        self._faults: list[tuple[float, int, Fault]] = []
        self._fault_count = 0
        self._clock = 0
        self._bound: set[str] = set()
        self._level3: dict[str, int] = {}
        # channel -> [sequence of the last message, order_status]; absent: not subscribed.
        self._account: dict[str, list[Any]] = {}
        self._gaps: set[str] = set()
        self._lose: list[str | None] = []
        # (channel, symbol) -> number of the snapshot it waits for; its data waits too.
        self._waiting: dict[tuple[str, str], int] = {}
        self._budget = float(exchange.message_burst)
        self._budget_at = now

    # ----------------------------------------------------------------- driver inputs

    def connection_made(self, now: float) -> list[ServerAction]:
        """The socket is open: send the status frame."""
        out: list[ServerAction] = []
        if not self.closed:
            status = frames.status_frame(VERSION, "online", self.connection_id)
            self._send(now, status, None, out)
        return out

    def receive_data(self, text: str | bytes, now: float) -> list[ServerAction]:
        """Handle one client text message (after sending whatever was due before ``now``)."""
        out: list[ServerAction] = []
        self._pump(now, out)
        if self.closed or now < self._stall_until:
            return out
        self._last_message = now
        if not self._within_rate(now):
            self._send(now, RATE_LIMIT_TEXT, None, out)
            self._end(CloseConnection(RATE_LIMIT_CLOSE, "Exceeded msg rate"), out)
            return out
        self._request(text, now, out)
        self._release(now, out)
        return out

    def _within_rate(self, now: float) -> bool:
        """Take one message from the budget (a token bucket); False when it is spent."""
        exchange = self._exchange
        rate = exchange.message_rate
        if rate is None:
            return True
        budget = self._budget + (now - self._budget_at) * rate
        self._budget = min(float(exchange.message_burst), budget)
        self._budget_at = now
        if self._budget < 1.0:
            return False
        self._budget -= 1.0
        return True

    def _subscribed(self) -> bool:
        """Whether anything is subscribed on this connection."""
        return bool(
            self._book
            or self._ticker
            or self._trade
            or self._ohlc
            or self._instrument
            or self._level3
            or self._account
        )

    def handle_timer(self, now: float) -> list[ServerAction]:
        """Send what is due at ``now``: market data, heartbeats, faults, the idle close."""
        out: list[ServerAction] = []
        self._pump(now, out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must be called next (``None``: only on input)."""
        if self.closed:
            return None
        deadline = _INF
        if self._pending:
            deadline = self._pending[0][0]
        if (
            self._book
            or self._ticker
            or self._trade
            or self._ohlc
            or self._level3
            or (self._account and self._exchange.engine.orders)
        ):
            deadline = min(deadline, self._exchange.next_step_time())
        if self.host == "auth":
            timer = self._exchange.next_private_time()
            if timer is not None:
                deadline = min(deadline, timer)
        if self._heartbeats:
            deadline = min(deadline, self._next_heartbeat)
        if self._exchange.idle_timeout is not None and not self._subscribed():
            idle = self._last_message + self._exchange.idle_timeout
            deadline = min(deadline, max(idle, self._stall_until))
        if self._faults:
            deadline = min(deadline, self._faults[0][0])
        if self._delayed:
            deadline = min(deadline, self._delayed[0][0])
        return None if deadline == _INF else deadline

    def connection_lost(self, now: float) -> list[ServerAction]:
        """The socket is gone (whoever closed it): forget the session."""
        if not self.closed:
            self._finish()
        return []

    def inject(self, fault: Fault, now: float) -> list[ServerAction]:
        """Apply ``fault`` at ``now`` (after sending whatever was due before)."""
        out: list[ServerAction] = []
        self._pump(now, out)
        if not self.closed:
            self._apply(fault, now, out)
            self._release(now, out)
        return out

    def schedule(self, fault: Fault, *, at: float) -> None:
        """Apply ``fault`` at driver time ``at`` (reported through :meth:`next_deadline`)."""
        if not self.closed:
            self._fault_count += 1
            heapq.heappush(self._faults, (at, self._fault_count, fault))

    # ----------------------------------------------------------------- output

    def _collect(self, rendered: _StepFrames, t: float) -> None:
        """Queue this connection's frames of one market step at driver time ``t``."""
        if t < self._stall_until:
            return
        symbol = rendered.market.symbol
        pending = self._pending
        depth = self._book.get(symbol)
        waiting = self._waiting
        if depth is not None and not (waiting and ("book", symbol) in waiting):
            text = rendered.book(depth)
            if text is not None:
                pending.append((t, text, symbol))
        trigger = self._ticker.get(symbol)
        step = rendered.step
        if trigger is not None and (step.bbo_changed if trigger == "bbo" else step.trades):
            pending.append((t, rendered.ticker(), None))
        depth = self._level3.get(symbol)
        if depth is not None and not (waiting and ("level3", symbol) in waiting):
            text = rendered.l3(depth)
            if text is not None:
                pending.append((t, text, symbol))
        if step.trades:
            if symbol in self._trade:
                pending.append((t, rendered.trade(), None))
            for interval in self._ohlc.get(symbol, ()):
                pending.append((t, rendered.ohlc(interval), None))

    def _snapshot_later(self, channel: str, symbol: str, now: float) -> None:
        """Send the snapshot of ``channel``/``symbol`` after Kraken's delay; data waits too."""
        median = cast(float, self._exchange.snapshot_delay)
        delay = min(3.0 * median, max(0.1 * median, median * self._rng.lognormvariate(0.0, 0.55)))
        number = self._exchange._schedule_snapshot(now + delay, self, channel, symbol)
        self._waiting[channel, symbol] = number

    def _snapshot_due(self, t: float, number: int, channel: str, symbol: str) -> None:
        """The exchange reached driver time ``t``: queue that snapshot, if still wanted."""
        key = (channel, symbol)
        if self._waiting.get(key) != number:
            return  # unsubscribed (or subscribed again) since, or closed
        del self._waiting[key]
        if channel == "book":
            text = self._book_snapshot(symbol, self._book[symbol], t)
        else:
            text = cast(
                str, self._exchange.level3_book(symbol).frame("snapshot", self._level3[symbol])
            )
        insort(self._pending, (t, text, symbol), key=itemgetter(0))

    def _book_snapshot(self, symbol: str, depth: int, t: float) -> str:
        """The book snapshot of ``symbol`` at ``depth`` as the market stands, stamped ``t``."""
        market = self._exchange.markets[symbol]
        bids, asks = market.book(depth)
        stamp = frames.rfc3339(self._exchange.wall_time(t))
        return frames.book_frame("snapshot", symbol, bids, asks, market.checksum(), stamp)

    def _private(self, t: float, channel: str, entry: Any) -> None:
        """Queue one execution report or ledger entry (made at driver time ``t``)."""
        if channel in self._account and not self.closed and t >= self._stall_until:
            insort(self._pending, (t, _Private(channel, entry), None), key=itemgetter(0))

    def _render(self, item: _Private) -> str | None:
        """The frame of a queued private message, with its sequence (None: not sent)."""
        state = self._account[item.channel]
        if item.channel == "executions":
            if not state[1] and item.entry["exec_type"] in _STATUS_ONLY:
                return None
            data = item.entry
        else:
            data = _ledger_row(item.entry)
        return self._sequenced(item.channel, "update", [data])

    def _sequenced(self, channel: str, kind: str, data: list[Any]) -> str:
        state = self._account[channel]
        state[0] += 1
        if channel in self._gaps:
            self._gaps.discard(channel)
            state[0] += 1
        return frames.encode({"channel": channel, "type": kind, "data": data, "sequence": state[0]})

    def _pump(self, now: float, out: list[ServerAction]) -> None:
        """Move the markets to ``now`` and send, in time order, everything due by then."""
        exchange = self._exchange
        exchange.advance(now)
        if self.closed:
            return
        # (time, rank, payload): on equal times faults go first, then heartbeats, the idle
        # close and market frames; the sort is stable within a rank.
        items: list[tuple[float, int, Any]] = []
        while self._faults and self._faults[0][0] <= now:
            at, _, fault = heapq.heappop(self._faults)
            items.append((at, 0, fault))
        while self._heartbeats and self._next_heartbeat <= now:
            items.append((self._next_heartbeat, 1, None))
            self._next_heartbeat += exchange.heartbeat_interval
        if exchange.idle_timeout is not None and not self._subscribed():
            idle = max(self._last_message + exchange.idle_timeout, self._stall_until)
            if idle <= now:
                items.append((idle, 2, None))
        # Frames stay pending until their time: another connection's clock may be ahead.
        cut = bisect_right(self._pending, now, key=itemgetter(0))
        items.extend([(t, 3, (text, symbol)) for t, text, symbol in self._pending[:cut]])
        del self._pending[:cut]
        items.sort(key=lambda item: (item[0], item[1]))
        for t, rank, payload in items:
            if self.closed:
                break
            if rank == 0:
                self._apply(payload, t, out)
            elif t < self._stall_until:
                continue  # stalled: frames are lost; the idle close waits for the end
            elif rank == 1:
                self._send(t, frames.HEARTBEAT, None, out)
            elif rank == 2:
                self._end(CloseConnection(1000, IDLE_CLOSE_REASON), out)
            else:
                text = payload[0]
                if type(text) is _Private:
                    text = self._render(text)
                    if text is None:
                        continue
                self._send(t, text, payload[1], out)
        self._release(now, out)

    def _release(self, now: float, out: list[ServerAction]) -> None:
        """Send the held-back frames whose time has come."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            out.append(Send(delayed.popleft()[1]))

    def _send(self, t: float, text: str, book_symbol: str | None, out: list[ServerAction]) -> None:
        """Send ``text`` (due at ``t``), through the armed faults."""
        if book_symbol is not None and book_symbol in self._corrupt:
            del self._corrupt[book_symbol]
            start = text.index('"checksum":') + 11
            end = text.index(",", start)
            text = f"{text[:start]}{int(text[start:end]) ^ 0x5A5A5A5A}{text[end:]}"
        if self._truncate:
            self._truncate = False
            text = text[: len(text) // 2]
        if t < self._slow_until:
            self._delayed.append((t + self._slow_delay, text))
        elif self._delayed:
            self._delayed.append((t, text))  # behind the frames still held back
        else:
            out.append(Send(text))

    def _end(self, action: ServerAction, out: list[ServerAction]) -> None:
        out.append(action)
        self._finish()

    def _finish(self) -> None:
        self.closed = True
        self._pending = []
        self._waiting.clear()
        self._delayed.clear()
        self._faults = []
        self._exchange._detach(self)

    def _apply(self, fault: Fault, t: float, out: list[ServerAction]) -> None:
        match fault:
            case Drop():
                self._end(Drop(), out)
            case Close(code=code, reason=reason):
                self._end(
                    Drop() if code == ABNORMAL_CLOSURE else CloseConnection(code, reason), out
                )
            case Stall(duration=duration):
                self._stall_until = _INF if duration is None else t + duration
            case CorruptChecksum(symbol=symbol):
                self._corrupt[symbol] = None
            case MalformedFrame(text=text):
                self._send(t, text, None, out)
            case TruncatedFrame():
                self._truncate = True
            case RateLimit():
                self._send(t, RATE_LIMIT_TEXT, None, out)
            case SequenceGap(channel=channel):
                self._gaps.add(channel)
            case LoseResponse(method=method):
                self._lose.append(method)
            case TokenError(error=error, count=count):
                self._exchange.inject_token_error(error, count)
            case RevokeTokens():
                self._exchange.revoke_tokens()
            case _:  # SlowSender
                self._slow_delay = fault.delay
                self._slow_until = _INF if fault.duration is None else t + fault.duration

    # ----------------------------------------------------------------- requests

    def _stamp(self) -> tuple[str, str]:
        """``time_in`` and ``time_out`` of the next response to the current request."""
        rng = self._rng
        time_in = self._clock + rng.randint(2, 30)
        self._clock = time_in + rng.randint(8, 60)
        return frames.rfc3339(time_in / 1e6), frames.rfc3339(self._clock / 1e6)

    def _respond(
        self,
        now: float,
        out: list[ServerAction],
        method: str | None,
        req_id: int | None,
        *,
        result: Any = None,
        error: str | None = None,
        symbol: str | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if error is not None:
            body["error"] = error
        if method is not None:
            body["method"] = method
        if req_id is not None:
            body["req_id"] = req_id
        if result is not None:
            body["result"] = result
        body["success"] = error is None
        if symbol is not None:
            body["symbol"] = symbol
        body["time_in"], body["time_out"] = self._stamp()
        self._send(now, frames.encode(body), None, out)

    def _request(self, text: str | bytes, now: float, out: list[ServerAction]) -> None:
        self._clock = round(self._exchange.wall_time(now) * 1e6)
        try:
            message = _DECODER.decode(text)
        except msgspec.DecodeError:
            message = None
        if not isinstance(message, dict):
            self._respond(now, out, None, None, error=MALFORMED_REQUEST)
            return
        method = message.get("method")
        req_id = message.get("req_id")
        if req_id is not None and (type(req_id) is not int):
            self._respond(now, out, None, None, error=MALFORMED_REQUEST)
            return
        if not isinstance(method, str):
            self._respond(now, out, None, req_id, error=MALFORMED_REQUEST)
        elif method == "ping":
            stamps = self._stamp()
            pong: dict[str, Any] = {"method": "pong"}
            if req_id is not None:
                pong["req_id"] = req_id
            pong["time_in"], pong["time_out"] = stamps
            self._send(now, frames.encode(pong), None, out)
        elif method in ("subscribe", "unsubscribe"):
            self._subscription(method, message.get("params", {}), req_id, now, out)
        elif method in TRADING_METHODS:
            if self.host == "auth":
                self._trading(method, message.get("params", {}), req_id, now, out)
            else:
                self._respond(now, out, method, req_id, error=PRIVATE_ON_PUBLIC_HOST)
        else:
            self._respond(now, out, method, req_id, error=METHOD_NOT_FOUND)

    def _subscription(
        self, method: str, params: Any, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        def fail(error: str) -> None:
            self._respond(now, out, method, req_id, error=error)

        if not isinstance(params, dict):
            return fail(MALFORMED_REQUEST)
        channel = params.get("channel")
        host = self.host
        if channel in _PRIVATE_CHANNELS:
            if host == "public":
                return fail(PRIVATE_ON_PUBLIC_HOST)
            if channel == "level3":
                if host == "auth":
                    return fail(LEVEL3_ON_OTHER_HOST)
                return self._level3_request(method, params, req_id, now, out)
            if host == "level3":
                return fail(PRIVATE_ON_PUBLIC_HOST)
            return self._account_request(method, channel, params, req_id, now, out)
        if channel == "status":
            return fail(SYMBOLS_NOT_FOUND)
        if channel not in _PUBLIC_CHANNELS:
            return fail(SUBSCRIPTION_NAME_INVALID)
        if host != "public":
            return fail(PUBLIC_ON_AUTH_HOST)
        snapshot = params.get("snapshot", channel != "trade")
        if type(snapshot) is not bool:
            return fail(MALFORMED_REQUEST)
        if channel == "instrument":
            return self._instrument_request(method, snapshot, req_id, now, out)
        symbols = params.get("symbol")
        if not symbols:
            return fail(SYMBOLS_NOT_FOUND)
        if not (isinstance(symbols, list) and all(isinstance(s, str) for s in symbols)):
            return fail(MALFORMED_REQUEST)
        option: Any = None
        if channel == "book":
            option = params.get("depth", 10)
            if type(option) is not int or option not in DEPTHS:
                return fail(DEPTH_NOT_SUPPORTED)
        elif channel == "ohlc":
            option = params.get("interval")
            if option is None:
                return fail(INTERVAL_REQUIRED)
            if type(option) is not int or option not in INTERVALS:
                return fail(INTERVAL_NOT_SUPPORTED)
        elif channel == "ticker":
            option = params.get("event_trigger", "trades")
            if method == "subscribe" and option not in _EVENT_TRIGGERS:
                return fail(EVENT_TRIGGER_NOT_SUPPORTED)
        for symbol in symbols:
            if symbol not in self._exchange.markets:
                self._respond(
                    now, out, method, req_id, error=PAIR_NOT_SUPPORTED.format(symbol), symbol=symbol
                )
            elif method == "subscribe":
                self._subscribe(channel, symbol, option, snapshot, req_id, now, out)
            else:
                self._unsubscribe(channel, symbol, option, req_id, now, out)
        return None

    def _subscribe(
        self,
        channel: str,
        symbol: str,
        option: Any,
        snapshot: bool,
        req_id: int | None,
        now: float,
        out: list[ServerAction],
    ) -> None:
        market = self._exchange.markets[symbol]
        result: dict[str, Any] = {"channel": channel}
        frame: str | None = None
        if channel == "book":
            if symbol in self._book:
                return self._already(symbol, req_id, now, out)
            self._book[symbol] = option
            result["depth"] = option
            if snapshot:
                if self._exchange.snapshot_delay is None:
                    frame = self._book_snapshot(symbol, option, now)
                else:
                    self._snapshot_later("book", symbol, now)
        elif channel == "ticker":
            if symbol in self._ticker:
                return self._already(symbol, req_id, now, out)
            self._ticker[symbol] = option
            result["event_trigger"] = option
            if snapshot:
                stamp = frames.rfc3339(market.time)
                frame = frames.ticker_frame("snapshot", symbol, market.ticker(), stamp)
        elif channel == "trade":
            if symbol in self._trade:
                return self._already(symbol, req_id, now, out)
            self._trade[symbol] = None
            if snapshot:
                frame = frames.trade_frame("snapshot", symbol, market.recent_trades())
        else:  # ohlc
            intervals = self._ohlc.setdefault(symbol, {})
            if option in intervals:
                return self._already(symbol, req_id, now, out)
            intervals[option] = None
            result["interval"] = option
            if snapshot:
                stamp = frames.rfc3339_ns(self._exchange.wall_time(now))
                frame = frames.ohlc_frame("snapshot", symbol, market.candles(option), stamp)
        result["snapshot"] = snapshot
        result["symbol"] = symbol
        if channel == "ohlc":
            result["warnings"] = _OHLC_WARNINGS
        self._respond(now, out, "subscribe", req_id, result=result)
        if frame is not None:
            self._send(now, frame, symbol if channel == "book" else None, out)
        self._start_heartbeats(now)
        return None

    def _already(
        self, symbol: str | None, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        self._respond(now, out, "subscribe", req_id, error=ALREADY_SUBSCRIBED, symbol=symbol)

    def _not_found(
        self, symbol: str | None, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        # Kraken answers a failed unsubscribe with "method":"subscribe". [WIRE]
        self._respond(now, out, "subscribe", req_id, error=SUBSCRIPTION_NOT_FOUND, symbol=symbol)

    def _unsubscribe(
        self,
        channel: str,
        symbol: str,
        option: Any,
        req_id: int | None,
        now: float,
        out: list[ServerAction],
    ) -> None:
        result: dict[str, Any] = {"channel": channel}
        if channel == "book":
            if self._book.get(symbol) != option:
                return self._not_found(symbol, req_id, now, out)
            del self._book[symbol]
            self._waiting.pop(("book", symbol), None)
            result["depth"] = option
        elif channel == "ticker":
            if symbol not in self._ticker:
                return self._not_found(symbol, req_id, now, out)
            result["event_trigger"] = self._ticker.pop(symbol)
        elif channel == "trade":
            if symbol not in self._trade:
                return self._not_found(symbol, req_id, now, out)
            del self._trade[symbol]
        else:  # ohlc
            intervals = self._ohlc.get(symbol, {})
            if option not in intervals:
                return self._not_found(symbol, req_id, now, out)
            del intervals[option]
            if not intervals:
                del self._ohlc[symbol]
            result["interval"] = option
        result["symbol"] = symbol
        self._respond(now, out, "unsubscribe", req_id, result=result)
        return None

    def _instrument_request(
        self, method: str, snapshot: bool, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        if method == "unsubscribe":
            if not self._instrument:
                return self._not_found(None, req_id, now, out)
            self._instrument = False
            self._respond(now, out, method, req_id, result={"channel": "instrument"})
            return None
        if self._instrument:
            return self._already(None, req_id, now, out)
        self._instrument = True
        result = {"channel": "instrument", "snapshot": snapshot, "warnings": _INSTRUMENT_WARNINGS}
        self._respond(now, out, method, req_id, result=result)
        if snapshot:
            self._send(now, self._exchange.instrument_snapshot(), None, out)
        self._start_heartbeats(now)
        return None

    # ----------------------------------------------------------------- authenticated

    def _token_ok(self, params: dict[str, Any], now: float) -> bool:
        return self._exchange.tokens.valid(params.get("token"), now, self._bound)

    def _invalid_session(
        self, channel: str, method: str, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        body: dict[str, Any] = {"channel": channel, "error": INVALID_SESSION, "method": method}
        if req_id is not None:
            body["req_id"] = req_id
        body["status"] = "error"
        body["success"] = False
        body["time_in"], body["time_out"] = self._stamp()
        self._send(now, frames.encode(body), None, out)

    def _account_request(
        self,
        method: str,
        channel: str,
        params: dict[str, Any],
        req_id: int | None,
        now: float,
        out: list[ServerAction],
    ) -> None:
        if not self._token_ok(params, now):
            return self._invalid_session(channel, method, req_id, now, out)
        if method == "unsubscribe":
            if channel not in self._account:
                return self._not_found(None, req_id, now, out)
            del self._account[channel]
            # Messages of that channel still queued (made at a later time) are not sent.
            self._pending = [
                item
                for item in self._pending
                if not (type(item[1]) is _Private and item[1].channel == channel)
            ]
            self._respond(now, out, method, req_id, result={"channel": channel})
            return None
        if channel in self._account:
            return self._already(None, req_id, now, out)
        defaults = (
            {"snap_orders": True, "snap_trades": False, "order_status": True, "ratecounter": False}
            if channel == "executions"
            else {}
        )
        options = {name: params.get(name, default) for name, default in defaults.items()}
        snapshot = params.get("snapshot", True)
        if any(type(value) is not bool for value in (*options.values(), snapshot)):
            return self._respond(now, out, method, req_id, error=MALFORMED_REQUEST)
        self._bound.add(params["token"])
        engine = self._exchange.engine
        self._account[channel] = [0, options.get("order_status", True)]
        data: list[Any] = []
        if channel == "executions":
            result: dict[str, Any] = {
                "channel": channel,
                "maxratecount": MAX_RATE_COUNT,
                "snap_orders": options["snap_orders"],
                "snap_trades": options["snap_trades"],
                "snapshot": snapshot,
                "warnings": _EXECUTIONS_WARNINGS,
            }
            if options["snap_orders"]:
                data += [
                    engine.order_report(order, "new", order.created)
                    for order in engine.orders.values()
                ]
            if options["snap_trades"]:
                data += list(engine.trades)
        else:
            result = {"channel": channel, "snapshot": snapshot}
            data = [
                {
                    "asset": asset,
                    "asset_class": "currency",
                    "balance": frames.float_number(balance),
                    "wallets": [
                        {"type": "spot", "id": "main", "balance": frames.float_number(balance)}
                    ],
                }
                for asset, balance in self._exchange.account.balances.items()
            ]
        self._respond(now, out, method, req_id, result=result)
        if channel == "executions" or snapshot:
            self._send(now, self._sequenced(channel, "snapshot", data), None, out)
        self._start_heartbeats(now)
        return None

    def _level3_request(
        self,
        method: str,
        params: dict[str, Any],
        req_id: int | None,
        now: float,
        out: list[ServerAction],
    ) -> None:
        def fail(error: str) -> None:
            self._respond(now, out, method, req_id, error=error)

        if not self._token_ok(params, now):
            return self._invalid_session("level3", method, req_id, now, out)
        snapshot = params.get("snapshot", True)
        if type(snapshot) is not bool:
            return fail(MALFORMED_REQUEST)
        symbols = params.get("symbol")
        if not symbols:
            return fail(SYMBOLS_NOT_FOUND)
        if not (isinstance(symbols, list) and all(isinstance(s, str) for s in symbols)):
            return fail(MALFORMED_REQUEST)
        depth = params.get("depth", 10)
        if type(depth) is not int or depth not in L3_DEPTHS:
            return fail(DEPTH_NOT_SUPPORTED)
        if method == "subscribe":
            self._bound.add(params["token"])
        for symbol in symbols:
            if symbol not in self._exchange.markets:
                self._respond(
                    now, out, method, req_id, error=PAIR_NOT_SUPPORTED.format(symbol), symbol=symbol
                )
            elif method == "unsubscribe":
                if self._level3.get(symbol) != depth:
                    self._not_found(symbol, req_id, now, out)
                    continue
                del self._level3[symbol]
                self._waiting.pop(("level3", symbol), None)
                result = {"channel": "level3", "depth": depth, "symbol": symbol}
                self._respond(now, out, method, req_id, result=result)
            elif symbol in self._level3:
                self._already(symbol, req_id, now, out)
            else:
                self._level3[symbol] = depth
                book = self._exchange.level3_book(symbol)
                result = {"channel": "level3", "depth": depth, "snapshot": snapshot}
                result["symbol"] = symbol
                self._respond(now, out, method, req_id, result=result)
                if snapshot and self._exchange.snapshot_delay is not None:
                    self._snapshot_later("level3", symbol, now)
                elif snapshot:
                    self._send(now, cast(str, book.frame("snapshot", depth)), symbol, out)
                self._start_heartbeats(now)
        return None

    def _trading(
        self, method: str, params: Any, req_id: int | None, now: float, out: list[ServerAction]
    ) -> None:
        exchange = self._exchange
        if not (isinstance(params, dict) and self._token_ok(params, now)):
            replies = [trading.Reply(error=INVALID_TOKEN)]
        else:
            wall = exchange.wall_time(now)
            replies = trading.execute(exchange.engine, exchange.rules, method, params, wall)
        for reply in replies:
            if self._lost(method):
                continue
            self._respond(now, out, method, req_id, result=reply.result, error=reply.error)
        exchange.flush_private(now)
        self._pump(now, out)

    def _lost(self, method: str) -> bool:
        """Whether an armed :class:`LoseResponse` swallows this response."""
        for index, wanted in enumerate(self._lose):
            if wanted is None or wanted == method:
                del self._lose[index]
                return True
        return False

    def _start_heartbeats(self, now: float) -> None:
        if not self._heartbeats:
            self._heartbeats = True
            interval = self._exchange.heartbeat_interval
            beats = math.floor((now - self.opened_at) / interval) + 1
            self._next_heartbeat = self.opened_at + beats * interval
