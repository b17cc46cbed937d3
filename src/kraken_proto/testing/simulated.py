"""Kraken simulated in memory: :class:`SimulatedKraken`, with faults and market control."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kraken_proto.actions import FetchToken
from kraken_proto.auth import TOKEN_PATH, parse_token_response
from kraken_proto.errors import AuthenticationError
from kraken_proto.simulator import (
    DEFAULT_SYMBOLS,
    CorruptChecksum,
    Drop,
    ExchangeConnection,
    FakeExchange,
    Fault,
    LoseResponse,
    SequenceGap,
    Stall,
    SymbolSpec,
)
from kraken_proto.testing.network import InMemoryKraken, Socket
from kraken_proto.testing.peers import Peer
from kraken_proto.trading import TRADING_METHODS

__all__ = ["SimulatedKraken", "symbol_specs"]


class SimulatedKraken(InMemoryKraken):
    """Kraken simulated in memory: a seeded :class:`~kraken_proto.simulator.FakeExchange`.

    ``symbols`` are the pairs to simulate (names of
    :data:`~kraken_proto.simulator.DEFAULT_SYMBOLS` or a mapping to
    :class:`~kraken_proto.simulator.SymbolSpec`; default: all of them); ``exchange_options``
    go to ``FakeExchange`` (``tick_rate``, ``snapshot_delay``, ``balances``, ...; by default
    ``idle_timeout=None`` and ``message_rate=None``, so a test that waits before it
    subscribes is not cut off). ``exchange`` gives a ready one instead. The clock starts at
    ``start``.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        symbols: Iterable[str] | Mapping[str, SymbolSpec] | None = None,
        exchange: FakeExchange | None = None,
        start: float = 0.0,
        **exchange_options: Any,
    ) -> None:
        super().__init__(start)
        if exchange is None:
            options: dict[str, Any] = {"idle_timeout": None, "message_rate": None}
            options.update(exchange_options)
            exchange = FakeExchange(seed=seed, symbols=symbol_specs(symbols), **options)
        elif symbols is not None or exchange_options:
            raise ValueError("pass either exchange= or the options to build one, not both")
        self.exchange = exchange
        """The simulated exchange: markets, account, matching engine, faults."""
        self._servers: dict[Socket, ExchangeConnection] = {}

    def wall_time(self) -> float:
        """The wall-clock time (Unix seconds) of the exchange's timestamps now."""
        return self.exchange.wall_time(self.clock.now)

    # ------------------------------------------------------------------ the server's side

    def _accept(self, socket: Socket, now: float) -> None:
        server = self.exchange.open_connection(now, socket.peer.host)
        socket.server = self._servers[socket] = server
        greeting = server.connection_made(now)
        socket.peer.opened(now)
        self._deliver(socket, greeting)

    def _token(self, action: FetchToken, now: float) -> str | AuthenticationError:
        http = action.request.build(self.exchange.wall_time(now))
        _, body = self.exchange.handle_token_request(TOKEN_PATH, dict(http.headers), http.body, now)
        try:
            return parse_token_response(body)
        except AuthenticationError as error:
            return error

    def _to_server(self, socket: Socket, text: str, now: float) -> None:
        server = socket.server
        assert server is not None
        self._deliver(socket, server.receive_data(text, now))

    def _server_deadline(self) -> float | None:
        deadline: float | None = None
        for server in self._servers.values():
            due = server.next_deadline()
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def _server_timer(self, now: float) -> None:
        for socket, server in list(self._servers.items()):
            due = server.next_deadline()
            if due is not None and due <= now:
                self._deliver(socket, server.handle_timer(now))

    def _forget(self, socket: Socket, now: float) -> None:
        server = self._servers.pop(socket, None)
        if server is not None:
            server.connection_lost(now)

    # ------------------------------------------------------------------ faults

    def inject(self, fault: Fault, peer: Peer | None = None) -> None:
        """Apply ``fault`` now to ``peer``'s connection (default: every open connection),
        and deliver what it causes."""
        self.settle()
        now = self.clock.now
        for socket, server in list(self._servers.items()):
            if peer is None or socket.peer is peer:
                self._deliver(socket, server.inject(fault, now))
        self.settle()

    def drop(self, peer: Peer | None = None) -> None:
        """Abort the connection now, without a close frame (the client sees 1006)."""
        self.inject(Drop(), peer)

    def stall(self, seconds: float | None, peer: Peer | None = None) -> None:
        """The server goes silent for ``seconds`` (``None``: for good); data is lost."""
        self.inject(Stall(seconds), peer)

    def corrupt_checksum(self, symbol: str, peer: Peer | None = None) -> None:
        """The next book or level3 message of ``symbol`` carries a wrong checksum
        (``ValueError`` for a pair the exchange does not simulate)."""
        if symbol not in self.exchange.markets:
            raise ValueError(
                f"symbol must be one of {sorted(self.exchange.markets)}, got {symbol!r}"
            )
        self.inject(CorruptChecksum(symbol), peer)

    def sequence_gap(self, channel: str = "executions", peer: Peer | None = None) -> None:
        """The next message of the private ``channel`` skips a sequence number."""
        self.inject(SequenceGap(channel), peer)

    def lose_response(self, method: str | None = None, peer: Peer | None = None) -> None:
        """The next trading response (of ``method``, or any) is lost; the request acts.
        ``ValueError`` if ``method`` is not a trading method (``add_order``, ...)."""
        if method is not None and method not in TRADING_METHODS:
            raise ValueError(
                f"method must be a trading method ({', '.join(sorted(TRADING_METHODS))}), "
                f"got {method!r}"
            )
        self.inject(LoseResponse(method), peer)

    # ------------------------------------------------------------------ the market

    def _market_event(self, apply: Callable[[float], None]) -> None:
        self.settle()
        now = self.clock.now
        apply(now)
        for socket, server in list(self._servers.items()):
            self._deliver(socket, server.handle_timer(now))
        self.settle()

    def move_price(self, symbol: str, price: Decimal | int | str) -> None:
        """Move ``symbol``'s market to ``price`` now: a taker sweeps the book there (see
        ``FakeExchange.move_price``); resting orders it reaches fill. ``price`` is exact
        (a ``Decimal``, an ``int`` or a ``str``; a float is refused)."""
        target = _decimal(price, "price")
        self._market_event(lambda now: self.exchange.move_price(symbol, target, now))

    def add_liquidity(
        self, symbol: str, side: str, price: Decimal | int | str, qty: Decimal | int | str
    ) -> None:
        """Rest ``qty`` more at ``price`` on ``side`` (``"bid"``/``"ask"``) of ``symbol`` now
        (exact numbers, as for :meth:`move_price`)."""
        at, amount = _decimal(price, "price"), _decimal(qty, "qty")
        self._market_event(lambda now: self.exchange.add_liquidity(symbol, side, at, amount, now))

    def halt(self, symbol: str) -> None:
        """Halt ``symbol`` now: no more market events; new orders are refused (cancels work)."""
        self._market_event(lambda now: self.exchange.halt(symbol, now))

    def resume(self, symbol: str) -> None:
        """Let a halted ``symbol`` trade again from now."""
        self._market_event(lambda now: self.exchange.resume(symbol, now))


def _decimal(value: Decimal | int | str, name: str) -> Decimal:
    """``value`` as a finite ``Decimal``; a float (inexact) or a non-number is refused with
    an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise TypeError(f"{name} must be a Decimal, an int or a str, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite decimal number, got {value!r}")
    return number


def symbol_specs(
    symbols: Iterable[str] | Mapping[str, SymbolSpec] | None,
) -> Mapping[str, SymbolSpec] | None:
    """The specs of ``symbols``: a mapping as given, names from ``DEFAULT_SYMBOLS``."""
    if symbols is None or isinstance(symbols, Mapping):
        return symbols
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    unknown = [name for name in names if name not in DEFAULT_SYMBOLS]
    if unknown or not names:
        raise ValueError(
            f"symbols must name pairs of DEFAULT_SYMBOLS ({', '.join(DEFAULT_SYMBOLS)}), "
            f"got {names!r}"
        )
    return {name: DEFAULT_SYMBOLS[name] for name in names}
