"""What the protocol counts, for monitoring: protocol facts, kept sans-IO.

One :class:`Tally` per :class:`~kraken_proto.protocol.KrakenProtocol`, shared by its parts,
which count what they alone see, each on a path that is already rare (a resync, a gap, a
connection attempt, a pong), so those counts are always kept and cost nothing measurable:

- :class:`~kraken_proto.books.Books`: book resyncs by channel and reason (:data:`RESYNC_REASONS`)
  and checksum mismatches by channel;
- :class:`~kraken_proto.streams.PrivateStreams`: sequence gaps by channel;
- :class:`~kraken_proto.connection.Connection`: connection attempts, reconnects (attempts
  after a failure), failures, and ping round trips.

Counting every message (by channel, with its size in bytes, and optionally the market
entries of up to ``max_symbols`` symbols) is opt-in, ``ClientConfig(count_messages=True)`` or
:meth:`KrakenProtocol.count_messages <kraken_proto.protocol.KrakenProtocol.count_messages>`,
and is the policy of one :class:`MessageCounter` per protocol, which the protocol calls on
the path it takes while counting: while it is off, the per-message path does not change.

:attr:`KrakenProtocol.counters <kraken_proto.protocol.KrakenProtocol.counters>` returns a
frozen :class:`ProtocolCounters`; ``kraken_transports.metrics`` exports it to Prometheus.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kraken_proto.errors import LocalProtocolError

__all__ = [
    "IGNORED",
    "MARKET_CHANNELS",
    "RESPONSE",
    "RESYNC_REASONS",
    "UNKNOWN",
    "MessageCounter",
    "ProtocolCounters",
    "Tally",
]

RESPONSE = "response"
"""The channel label of a response to a method call (acks, errors, pongs, trading answers)."""
UNKNOWN = "unknown"
"""The channel label of a message that is neither a well-formed data frame of a known
channel nor a response (malformed JSON, an unknown channel, entries that did not decode,
over ``max_message_size``)."""
IGNORED = "ignored"
"""The channel label of a message that arrived after the connection had failed or closed
(racing the close; not read)."""

MARKET_CHANNELS = frozenset({"book", "ticker", "trade", "ohlc", "level3"})
"""The data channels whose entries each name a ``symbol``: counted per symbol when asked
(:meth:`MessageCounter.start` with ``max_symbols``)."""

RESYNC_REASONS = ("checksum", "unusable", "invalid_frame")
"""Why a book is resynced: its checksum did not match Kraken's; it refused a number (not
finite, out of range); a frame of its channel naming it did not decode."""


class ProtocolCounters(msgspec.Struct, frozen=True):
    """A snapshot of what a :class:`~kraken_proto.protocol.KrakenProtocol` counted.

    Since the protocol was built (the message counts: since counting was turned on):

    - ``counting``: whether messages are being counted (``messages``, ``message_bytes``
      and the symbol counts stay empty otherwise);
    - ``messages`` and ``message_bytes``: messages received and their size (UTF-8 bytes) by
      channel: a data channel's name (``book``, ``ticker``, ``trade``, ``ohlc``,
      ``heartbeat``, ``status``, ``instrument``, ``executions``, ``balances``, ``level3``),
      :data:`RESPONSE`, :data:`UNKNOWN` or :data:`IGNORED`;
    - ``symbol_entries``: ``(channel, symbol) -> entries`` of the market channels (book,
      ticker, trade, ohlc, level3: one per data entry, as Kraken sent it) for the first
      ``max_symbols`` symbols seen; ``symbols_omitted`` counts by channel the entries of
      the symbols beyond that cap (both empty while ``max_symbols`` is 0);
    - ``book_resyncs``: ``(channel, reason) -> resyncs started`` (one ``BookResync`` each;
      reasons: :data:`RESYNC_REASONS`), ``checksum_failures``: mismatches by channel;
    - ``gaps``: sequence gaps detected by private channel (one ``GapDetected`` each);
    - ``connection_attempts``: sockets asked for (``OpenConnection``); ``reconnects``:
      those made after a failure (``degraded -> connecting``); ``connection_failures``:
      failures of a connection or an attempt (``-> degraded`` or given up);
    - ``round_trips``, ``round_trip_seconds`` and ``last_round_trip``: pongs answering a
      ping that left, the sum of their round trips and the latest one (seconds).
    """

    counting: bool
    max_symbols: int
    messages: dict[str, int]
    message_bytes: dict[str, int]
    symbol_entries: dict[tuple[str, str], int]
    symbols_omitted: dict[str, int]
    book_resyncs: dict[tuple[str, str], int]
    checksum_failures: dict[str, int]
    gaps: dict[str, int]
    connection_attempts: int
    reconnects: int
    connection_failures: int
    round_trips: int
    round_trip_seconds: float
    last_round_trip: float | None


def _add(counts: dict[Any, int], key: Any, amount: int = 1) -> None:
    counts[key] = counts.get(key, 0) + amount


class Tally:
    """The mutable counts behind :class:`ProtocolCounters` (internal to the core: the parts
    of one protocol share it and count into it; :meth:`snapshot` copies it out)."""

    __slots__ = (
        "attempts",
        "book_resyncs",
        "channels",
        "checksum_failures",
        "counting",
        "failures",
        "gaps",
        "max_symbols",
        "omitted",
        "reconnects",
        "round_trips",
        "rtt_last",
        "rtt_sum",
        "symbol_entries",
        "symbols",
    )

    def __init__(self) -> None:
        # What only a MessageCounter writes (counting every message is its policy):
        self.counting = False
        self.max_symbols = 0
        # channel -> [messages, bytes]: the counter keeps each channel's list at hand and
        # adds to it in place (no lookup by name per message).
        self.channels: dict[str, list[int]] = {}
        self.symbols: set[str] = set()  # the symbols admitted under max_symbols
        self.symbol_entries: dict[str, dict[str, int]] = {}  # channel -> symbol -> entries
        self.omitted: dict[str, int] = {}
        self.book_resyncs: dict[tuple[str, str], int] = {}
        self.checksum_failures: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.attempts = 0
        self.reconnects = 0
        self.failures = 0
        self.round_trips = 0
        self.rtt_sum = 0.0
        self.rtt_last: float | None = None

    # ------------------------------------------------------------------ rare events

    def resync(self, channel: str, reason: str) -> None:
        """A book of ``channel`` is being rebuilt (``reason``: one of :data:`RESYNC_REASONS`)."""
        _add(self.book_resyncs, (channel, reason))

    def checksum_failure(self, channel: str) -> None:
        """A book's checksum did not match Kraken's."""
        _add(self.checksum_failures, channel)

    def gap(self, channel: str) -> None:
        """A sequence gap was detected on a private ``channel``."""
        _add(self.gaps, channel)

    def round_trip(self, rtt: float) -> None:
        """A pong answered a ping ``rtt`` seconds after it left."""
        self.round_trips += 1
        self.rtt_sum += rtt
        self.rtt_last = rtt

    # ------------------------------------------------------------------ the snapshot

    def snapshot(self) -> ProtocolCounters:
        """Everything counted so far, copied into a frozen value."""
        channels = list(self.channels.items())
        return ProtocolCounters(
            counting=self.counting,
            max_symbols=self.max_symbols,
            messages={name: counts[0] for name, counts in channels if counts[0]},
            message_bytes={name: counts[1] for name, counts in channels if counts[0]},
            symbol_entries={
                (channel, symbol): count
                for channel, counts in list(self.symbol_entries.items())
                for symbol, count in list(counts.items())
            },
            symbols_omitted=dict(self.omitted),
            book_resyncs=dict(self.book_resyncs),
            checksum_failures=dict(self.checksum_failures),
            gaps=dict(self.gaps),
            connection_attempts=self.attempts,
            reconnects=self.reconnects,
            connection_failures=self.failures,
            round_trips=self.round_trips,
            round_trip_seconds=self.rtt_sum,
            last_round_trip=self.rtt_last,
        )


class MessageCounter:
    """Counting every message one protocol receives: the opt-in policy (off until
    :meth:`start`), kept in the protocol's :class:`Tally`.

    The protocol asks :attr:`on` to choose its path, and on the counting path hands each
    message over once, a data frame with :meth:`frame` and anything else under its label
    with :meth:`count`. Each data frame is counted under its channel, the ``channel`` tag
    of its ``msgspec`` type (``book``, ``ticker``, ...); the entries of a frame of one of
    :data:`MARKET_CHANNELS` are also counted per symbol, for the first ``max_symbols``
    symbols seen (the entries of the others by channel, as omitted).
    """

    __slots__ = ("_kinds", "_tally")

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        # frame type -> (its channel's [messages, bytes], its symbol -> entries counts when
        # they are counted, its channel): at hand for the frames of each type.
        self._kinds: dict[type, tuple[list[int], dict[str, int] | None, str]] = {}

    @property
    def on(self) -> bool:
        """Whether messages are counted (once :meth:`start` was called)."""
        return self._tally.counting

    def start(self, max_symbols: int = 0) -> None:
        """Count every message from now on; with ``max_symbols`` > 0, also the entries of
        the market channels per symbol for that many symbols. Calling again only ever
        raises ``max_symbols``.

        Raises:
            LocalProtocolError: ``max_symbols`` is not an int >= 0.
        """
        if isinstance(max_symbols, bool) or not isinstance(max_symbols, int) or max_symbols < 0:
            raise LocalProtocolError(f"max_symbols must be an int >= 0, got {max_symbols!r}")
        tally = self._tally
        tally.counting = True
        tally.max_symbols = max(tally.max_symbols, max_symbols)
        self._kinds.clear()  # the symbol counts follow the cap from the next frame on

    def count(self, channel: str, size: int) -> None:
        """One message of ``size`` bytes that is not a data frame, under its ``channel``
        label (:data:`RESPONSE`, :data:`UNKNOWN` or :data:`IGNORED`)."""
        counts = self._tally.channels.setdefault(channel, [0, 0])
        counts[0] += 1
        counts[1] += size

    def frame(self, frame: msgspec.Struct, size: int) -> None:
        """One data frame of ``size`` bytes (a frame type tagged with its channel)."""
        kind = type(frame)
        known = self._kinds.get(kind)
        if known is None:
            known = self._kinds[kind] = self._kind(kind)
        counts, symbols, channel = known
        counts[0] += 1
        counts[1] += size
        if symbols is not None:
            market: Any = frame  # of a market channel: each entry names its symbol
            for entry in market.data:
                symbol = entry.symbol
                if symbol in symbols:
                    symbols[symbol] += 1
                else:
                    self._admit(channel, symbols, symbol)

    def _kind(self, kind: type[msgspec.Struct]) -> tuple[list[int], dict[str, int] | None, str]:
        """The counts of the frames of type ``kind`` (see ``_kinds``)."""
        tally = self._tally
        channel = str(kind.__struct_config__.tag)
        counts = tally.channels.setdefault(channel, [0, 0])
        symbols = None
        if tally.max_symbols and channel in MARKET_CHANNELS:
            symbols = tally.symbol_entries.setdefault(channel, {})
        return counts, symbols, channel

    def _admit(self, channel: str, counts: dict[str, int], symbol: str) -> None:
        """The first entry of ``symbol`` on ``channel`` (``counts``: that channel's): counted
        under its name within the ``max_symbols`` cap, else as omitted."""
        tally = self._tally
        admitted = tally.symbols
        if symbol in admitted or len(admitted) < tally.max_symbols:
            admitted.add(symbol)
            counts[symbol] = 1
        else:
            _add(tally.omitted, channel)
