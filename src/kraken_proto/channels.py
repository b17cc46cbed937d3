"""The market channels part: ticker, trade, ohlc, status and instrument frames, and the
frames that did not decode whole.

Their entries stand alone: a message becomes one event per entry, and an entry whose
numbers are unusable becomes a ``ProtocolError`` in its place while the others are
delivered. :class:`MarketChannels` also classifies a frame that is not a well-formed data
frame of a known channel (salvaging what it can) and hands the pair precisions the
instrument channel tells to the books.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import msgspec

from kraken_proto.actions import Action, Emit
from kraken_proto.config import Precision
from kraken_proto.events import MAX_NUMBER, Instrument, ProtocolError, SystemStatus
from kraken_proto.wire import (
    UNDECODABLE,
    HeartbeatFrame,
    InstrumentData,
    InstrumentFrame,
    OHLCFrame,
    Salvaged,
    StatusFrame,
    TickerFrame,
    TradeFrame,
    asset_problem,
    decode_entries,
    decode_generic,
    decode_instrument_entries,
    ohlc_problem,
    pair_problem,
    trade_problem,
)

__all__ = ["EXCERPT", "MarketChannels", "excerpt"]

EXCERPT = 200
"""How many characters of an offending frame a ``ProtocolError`` carries."""
_ZERO = Decimal(0)
_E = TypeVar("_E", bound=msgspec.Struct)
_set = msgspec.structs.force_setattr
_Heard = Callable[[str, Sequence[Any], float], None]

# The channels whose entries stand alone (a bad one costs only itself), and the check of
# an entry's numbers once decoded (a ticker's are checked as it is decoded).
_PROBLEM_OF: dict[str, Callable[[Any], str | None]] = {
    "trade": trade_problem,
    "ohlc": ohlc_problem,
    "ticker": lambda entry: None,
}
_KNOWN_CHANNELS = frozenset(
    {
        "book",
        "ticker",
        "trade",
        "ohlc",
        "status",
        "instrument",
        "heartbeat",
        "executions",
        "balances",
        "level3",
    }
)


class _BookPart(Protocol):
    """What this part needs of a books part."""

    def set_precision(self, symbol: str, precision: Precision) -> None: ...
    def invalid_frame(
        self, symbols: Sequence[str], reason: str, actions: list[Action], now: float
    ) -> None: ...


def excerpt(payload: bytes | str) -> str:
    """The start of a frame, as text, for a ``ProtocolError``."""
    text = payload if isinstance(payload, str) else payload[:EXCERPT].decode("utf-8", "replace")
    return text[:EXCERPT]


class MarketChannels:
    """The handlers of the channels without state of their own (see the module docstring)."""

    __slots__ = ("_books", "_heard", "_silence")

    def __init__(self, heard: _Heard, books: Mapping[str, _BookPart], *, silence: bool) -> None:
        self._heard = heard
        self._books = books
        self._silence = silence

    def on_ticker(self, frame: TickerFrame, now: float) -> list[Action]:
        """Tickers (their numbers are checked as they are decoded)."""
        actions: list[Action] = []
        append = actions.append
        for entry in frame.data:
            _set(entry, "received_at", now)
            append(Emit(entry))
        if self._silence:
            self._heard("ticker", frame.data, now)
        return actions

    def on_trades(self, frame: TradeFrame, now: float) -> list[Action]:
        """Trades: one whose price or quantity is unusable becomes a ``ProtocolError`` in
        its place; the message's other trades are delivered."""
        actions: list[Action] = []
        append = actions.append
        zero = _ZERO
        limit = MAX_NUMBER
        for entry in frame.data:
            # trade_problem's quick check, inlined: this runs for every trade.
            try:
                usable = zero < entry.price < limit and zero < entry.qty < limit
            except ArithmeticError:  # a NaN compared while InvalidOperation is trapped
                usable = False
            if usable:
                _set(entry, "received_at", now)
                append(Emit(entry))
            else:
                problem = trade_problem(entry)
                assert problem is not None  # the same check, spelt out
                append(_unusable_entry("trade", problem, _entry_excerpt(entry), now))
        if self._silence:
            self._heard("trade", frame.data, now)
        return actions

    def on_candles(self, frame: OHLCFrame, now: float) -> list[Action]:
        """Candles: one with an unusable number becomes a ``ProtocolError`` in its place; the
        message's other candles are delivered."""
        actions: list[Action] = []
        for entry in frame.data:
            problem = ohlc_problem(entry)
            if problem is None:
                _set(entry, "received_at", now)
                actions.append(Emit(entry))
            else:
                actions.append(_unusable_entry("ohlc", problem, _entry_excerpt(entry), now))
        if self._silence:
            self._heard("ohlc", frame.data, now)
        return actions

    def on_heartbeat(self, frame: HeartbeatFrame, now: float) -> list[Action]:
        """Heartbeats: nothing to emit (the protocol noted that Kraken spoke)."""
        return []

    def on_status(self, frame: StatusFrame, now: float) -> list[Action]:
        """The exchange's status."""
        return [
            Emit(SystemStatus(e.system, e.version, e.api_version, e.connection_id, now))
            for e in frame.data
        ]

    def on_instrument(self, frame: InstrumentFrame, now: float) -> list[Action]:
        """Assets and pairs; each pair's precisions go to the books."""
        actions: list[Action] = []
        assets = _usable(frame.data.assets, asset_problem, actions, now)
        pairs = _usable(frame.data.pairs, pair_problem, actions, now)
        for pair in pairs:
            precision = Precision(price=pair.price_precision, qty=pair.qty_precision)
            for books in self._books.values():
                books.set_precision(pair.symbol, precision)
        actions.append(Emit(Instrument(assets, pairs, frame.type == "snapshot", now)))
        return actions

    def unusable_frame(
        self, payload: bytes | str, error: Exception, now: float
    ) -> tuple[list[Action], bool]:
        """A frame that is neither a well-formed data frame of a known channel nor a
        response (``error`` says why not): salvage its usable entries, or report it (and
        rebuild the books a broken book frame names). Also returns whether it was a JSON
        object at all (Kraken spoke, for liveness)."""
        try:
            obj = decode_generic(payload)
        except UNDECODABLE as exc:
            problem = f"malformed JSON: {type(exc).__name__}: {exc}"
            return [Emit(ProtocolError(problem, excerpt(payload), now))], False
        if not isinstance(obj, dict):
            problem = f"expected a JSON object, got {type(obj).__name__}"
            return [Emit(ProtocolError(problem, excerpt(payload), now))], False
        return self._unusable_object(obj, payload, error, now), True

    def _unusable_object(
        self, obj: dict[str, Any], payload: bytes | str, error: Exception, now: float
    ) -> list[Action]:
        if "method" in obj:
            return [Emit(ProtocolError(f"invalid response: {error}", excerpt(payload), now))]
        for key in ("Error", "error"):
            if isinstance(obj.get(key), str):
                return [Emit(ProtocolError(f"Kraken error: {obj[key]}", excerpt(payload), now))]
        channel = obj.get("channel")
        if not isinstance(channel, str):
            problem = "frame has neither a channel nor a method"
            return [Emit(ProtocolError(problem, excerpt(payload), now))]
        if channel not in _KNOWN_CHANNELS:
            return [Emit(ProtocolError(f"unknown channel {channel!r}", excerpt(payload), now))]
        if channel in _PROBLEM_OF:
            salvaged = decode_entries(channel, payload)
            if salvaged is not None:
                return self._salvage_entries(channel, salvaged, now)
        elif channel == "instrument":
            instrument = decode_instrument_entries(payload)
            if instrument is not None:
                return self._salvage_instrument(instrument, now)
        reason = f"invalid {channel} frame: {error}"
        actions: list[Action] = [Emit(ProtocolError(reason, excerpt(payload), now))]
        books = self._books.get(channel)
        if books is not None:
            # The stream of these books can no longer be trusted: rebuild them. (A broken
            # private frame needs nothing here: the sequence gate sees the hole it left.)
            books.invalid_frame(_symbols_in(obj), reason, actions, now)
        return actions

    def _salvage_entries(self, channel: str, salvaged: Salvaged, now: float) -> list[Action]:
        """A ticker, trade or ohlc frame that did not decode whole: deliver the entries that
        decode and hold usable numbers, a ``ProtocolError`` in place of each other one."""
        actions: list[Action] = []
        delivered = []
        problem_of = _PROBLEM_OF[channel]
        for entry, raw in salvaged:
            problem = entry if isinstance(entry, str) else problem_of(entry)
            if problem is not None:
                actions.append(_unusable_entry(channel, problem, _raw_excerpt(raw), now))
                continue
            _set(entry, "received_at", now)
            actions.append(Emit(entry))
            delivered.append(entry)
        if self._silence:
            self._heard(channel, delivered, now)
        return actions

    def _salvage_instrument(
        self, instrument: tuple[str, Salvaged, Salvaged], now: float
    ) -> list[Action]:
        """An instrument frame that did not decode whole: the assets and pairs that decode
        are handled as usual, a ``ProtocolError`` stands for each other one."""
        kind, asset_entries, pair_entries = instrument
        actions: list[Action] = []
        assets = _decoded(asset_entries, actions, now)
        pairs = _decoded(pair_entries, actions, now)
        frame = InstrumentFrame(kind, InstrumentData(assets, pairs))
        return actions + self.on_instrument(frame, now)


def _unusable_entry(channel: str, problem: str, payload: str, now: float) -> Emit:
    """The ``ProtocolError`` standing for one entry of a message that could not be used."""
    error = (
        f"Kraken sent an unusable {channel} entry: {problem}; "
        "the message's other entries are delivered"
    )
    return Emit(ProtocolError(error, payload, now))


def _raw_excerpt(raw: msgspec.Raw) -> str:
    return bytes(raw)[:EXCERPT].decode("utf-8", "replace")


def _entry_excerpt(entry: msgspec.Struct) -> str:
    return msgspec.json.encode(entry)[:EXCERPT].decode("utf-8", "replace")


def _decoded(salvaged: Salvaged, actions: list[Action], now: float) -> tuple[Any, ...]:
    """The entries that decoded; a ``ProtocolError`` for each other one."""
    decoded = []
    for entry, raw in salvaged:
        if isinstance(entry, str):
            actions.append(_unusable_entry("instrument", entry, _raw_excerpt(raw), now))
        else:
            decoded.append(entry)
    return tuple(decoded)


def _usable(
    entries: Sequence[_E], problem_of: Callable[[_E], str | None], actions: list[Action], now: float
) -> tuple[_E, ...]:
    """The ``entries`` whose numbers are usable; a ``ProtocolError`` for each other one."""
    usable = []
    for entry in entries:
        problem = problem_of(entry)
        if problem is None:
            usable.append(entry)
        else:
            actions.append(_unusable_entry("instrument", problem, _entry_excerpt(entry), now))
    return tuple(usable)


def _symbols_in(obj: dict[str, Any]) -> list[str]:
    """The symbols named in a generic frame's ``data`` entries, when it has any."""
    data = obj.get("data")
    if not isinstance(data, list):
        return []
    return [e["symbol"] for e in data if isinstance(e, dict) and isinstance(e.get("symbol"), str)]
