"""Latency tracking: a fixed-memory log-linear histogram, and per-channel latency trackers.

Latencies are times, not prices, so every value here is ``float`` seconds (the one place
the analytics are not exact ``Decimal``). Nothing reads a clock: every time is passed in.

Two latencies are tracked per Kraken channel (``book``, ``ticker``, ``trade``, ``ohlc``,
``level3``, ``executions``, ``balances``, ``instrument``, ``status``;
:data:`LATENCY_CHANNELS`), in :class:`LatencyHistogram` objects:

- ``exchange``: exchange -> receive, the event's exchange ``timestamp`` (Kraken's RFC3339
  text, UTC wall clock) to its ``received_at`` (the driver's monotonic clock). The two
  clocks differ, so the tracker keeps a **clock offset** (exchange clock minus driver
  clock), estimated from ping round trips (:meth:`LatencyTracker.pong`). Kraken stamps its
  pong with ``time_in``/``time_out``; the :class:`~kraken_proto.Pong` event carries neither
  (only the round trip and the receive time), so the tracker reads them from the pong's
  frame. Kraken handled the ping at some driver time between sending and receiving, so
  ``offset = (time_in + time_out)/2 - (sent + received)/2`` is off by at most
  ``bound = (rtt - (time_out - time_in)) / 2``; the sample with the smallest bound among
  the last ``window`` pongs is used. Until a pong has been seen, a driver may give the
  offset of its own UTC wall clock (:meth:`LatencyTracker.wall_clock`, source ``"wall"``:
  as good as the machine's NTP, no bound known); with neither, no exchange -> receive
  figure is recorded (the event counts as ``unmeasured``). A figure is corrected with the
  offset in force when it is recorded.
- ``delivery``: receive -> delivery, ``delivered_at`` (when the event reached user code,
  on the same driver clock) minus ``received_at``.

Negative latencies (a clock offset off by more than the latency, which the bound
allows) are recorded as they are, counted in ``negative`` and included in the
percentiles, never clamped. Which events have an exchange -> receive figure: tickers,
trades, book and level3 updates, executions and balance updates that carry a
``timestamp`` and are not part of a snapshot (a snapshot's timestamp is when its data
last changed, not when it was sent; tickers and trades carry no snapshot flag, so a ticker
snapshot, or a trade snapshot asked for with ``snapshot=True``, counts its age). Candles
have none: their ``timestamp`` is the end of their interval. Instrument and status
messages carry no timestamp.

Measuring an event costs a few microseconds of Python, so under load a driver measures a
sample (:class:`LatencySampler`): one event in N, each measured one recorded with weight
N, so percentiles and counts estimate all events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import msgspec

from kraken_proto.analytics._common import check_count, check_duration, check_time, shown
from kraken_proto.errors import LocalProtocolError
from kraken_proto.events import (
    OHLC,
    Balance,
    BookUpdate,
    Event,
    Execution,
    Instrument,
    L3Update,
    Pong,
    SystemStatus,
    Ticker,
    Trade,
    parse_timestamp,
)

__all__ = [
    "DIRECTIONS",
    "LATENCY_CHANNELS",
    "ChannelLatency",
    "ClockOffset",
    "LatencyHistogram",
    "LatencyPercentiles",
    "LatencyReport",
    "LatencySampler",
    "LatencyTracker",
    "pong_times",
]

DIRECTIONS = ("exchange", "delivery")
"""The two latencies tracked per channel: exchange -> receive, and receive -> delivery."""

_frexp = math.frexp
_INF = math.inf
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_QUANTILES = (50, 90, 99, 99.9)


class LatencyPercentiles(msgspec.Struct, frozen=True):
    """A summary of one histogram, in seconds (``None`` where nothing was recorded).

    ``count`` counts the values recorded and ``samples`` the values measured: they differ
    when events were sampled, each measured one standing for several (``count`` is then an
    estimate). Of ``count``, ``negative`` were below zero, ``below`` too small to resolve
    (``|value|`` under the histogram's ``lowest``: reported as 0 in percentiles, off by less
    than ``lowest``) and ``above`` at or over its ``highest`` (either sign: a percentile that
    falls among them reports ``max`` or ``min``, a bound, not an estimate). ``min`` and
    ``max`` are exact (of the values measured); percentiles are nearest-rank, within the
    histogram's relative error otherwise.
    """

    count: int
    """Values recorded, each measured one counted as many times as it stands for."""
    samples: int
    """Values measured (calls to :meth:`LatencyHistogram.record`)."""
    p50: float | None
    """The median (nearest rank), seconds."""
    p90: float | None
    """The 90th percentile (nearest rank), seconds."""
    p99: float | None
    """The 99th percentile (nearest rank), seconds."""
    p999: float | None
    """The 99.9th percentile (nearest rank), seconds."""
    min: float | None
    """The smallest value measured (exact), seconds."""
    max: float | None
    """The largest value measured (exact), seconds."""
    negative: int
    """Of ``count``, the values below zero."""
    below: int
    """Of ``count``, the values with ``|value| < lowest`` (reported as 0)."""
    above: int
    """Of ``count``, the values with ``|value| >= highest`` (either sign)."""


class LatencyHistogram:
    """A fixed-memory log-linear histogram of latencies in seconds, HdrHistogram-like.

    Each power of two between ``lowest`` and ``highest`` (rounded outwards to powers of
    two; the defaults cover 0.95 µs .. 128 s) is cut into ``sub_buckets`` equal buckets,
    so a value is reported as the middle of its bucket, within :attr:`relative_error`
    (``1 / (2 * sub_buckets)``: 0.78% with the default 64). Recording is O(1) and never
    allocates; memory is fixed by the layout (1,728 counters by default, and as many again
    the first time a negative value is recorded).

    Values are never lost nor clamped: negative values go to mirrored buckets and count in
    ``negative``; values too small to resolve (``|value| < lowest``) count in ``below``,
    values at or over ``highest`` (either sign) in ``above``; ``min`` and ``max`` are kept
    exactly. NaN and infinities are refused (``LocalProtocolError``).
    """

    __slots__ = (
        "_base",
        "_count",
        "_counts",
        "_highest",
        "_lowest",
        "_max",
        "_min",
        "_negative",
        "_negatives",
        "_over_high",
        "_over_low",
        "_samples",
        "_shift",
        "_small",
        "_twice",
        "layout",
    )

    def __init__(self, lowest: float = 1e-6, highest: float = 100.0, sub_buckets: int = 64) -> None:
        lowest = check_duration("lowest", lowest)
        highest = check_duration("highest", highest)
        if not lowest < highest:
            raise LocalProtocolError(f"lowest must be below highest, got {lowest!r}, {highest!r}")
        if (
            isinstance(sub_buckets, bool)
            or not isinstance(sub_buckets, int)
            or not 2 <= sub_buckets <= 1024
            or sub_buckets & (sub_buckets - 1)
        ):
            raise LocalProtocolError(
                f"sub_buckets must be a power of two from 2 to 1024, got {shown(sub_buckets)}"
            )
        mantissa, exponent = _frexp(lowest)
        low = exponent - 1  # 2**low <= lowest
        mantissa, exponent = _frexp(highest)
        high = exponent - 1 if mantissa == 0.5 else exponent  # highest <= 2**high
        self.layout = (low, high, sub_buckets)
        """``(low, high, sub_buckets)``: the range is ``2**low`` .. ``2**high`` seconds."""
        self._lowest = math.ldexp(1.0, low)
        self._highest = math.ldexp(1.0, high)
        self._shift = sub_buckets.bit_length() - 1
        self._twice = 2.0 * sub_buckets
        # index = (e << shift) + int(m * 2S) - base for value = m * 2**e, 0.5 <= m < 1
        self._base = (low + 2) * sub_buckets
        self._counts = [0] * ((high - low) * sub_buckets)
        self._negatives: list[int] | None = None  # mirrored buckets, made on first use
        self._count = 0  # values, a sampled one counted as many times as it stands for
        self._samples = 0  # record calls
        self._negative = 0
        self._small = 0  # |value| < lowest
        self._over_high = 0  # value >= highest
        self._over_low = 0  # value <= -highest
        self._min = _INF
        self._max = -_INF

    def __repr__(self) -> str:
        low, high, sub_buckets = self.layout
        return (
            f"<LatencyHistogram lowest=2**{low} highest=2**{high} sub_buckets={sub_buckets} "
            f"count={self._count} min={self.min!r} max={self.max!r}>"
        )

    # ------------------------------------------------------------------ recording

    def record(self, value: float, count: int = 1) -> None:
        """Count ``value`` (seconds, finite, either sign) ``count`` times (a sampled value
        stands for ``count``)."""
        self._add(check_time("value", value), check_count("count", count))

    def _add(self, value: float, count: int) -> None:
        """:meth:`record` without checking ``count`` (the tracker's own calls)."""
        if self._lowest <= value < self._highest:  # the common case
            mantissa, exponent = _frexp(value)
            index = (exponent << self._shift) + int(mantissa * self._twice) - self._base
            self._counts[index] += count
        else:
            self._add_other(value, count)
        self._count += count
        self._samples += 1
        self._max = max(self._max, value)
        self._min = min(self._min, value)

    def _add_other(self, value: float, count: int) -> None:
        """Everything but a positive value in range: refused, negative, tiny or too large."""
        if not -_INF < value < _INF:  # NaN or an infinity
            raise LocalProtocolError(f"a latency must be a finite number of seconds, got {value!r}")
        if value < 0:
            self._negative += count
        magnitude = -value if value < 0 else value
        if magnitude < self._lowest:
            self._small += count
        elif magnitude >= self._highest:
            if value > 0:
                self._over_high += count
            else:
                self._over_low += count
        else:
            negatives = self._negatives
            if negatives is None:
                negatives = self._negatives = [0] * len(self._counts)
            mantissa, exponent = _frexp(magnitude)
            index = (exponent << self._shift) + int(mantissa * self._twice) - self._base
            negatives[index] += count

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value ``other`` recorded (same layout, else ``LocalProtocolError``)."""
        if not isinstance(other, LatencyHistogram) or other.layout != self.layout:
            shown = other.layout if isinstance(other, LatencyHistogram) else type(other).__name__
            raise LocalProtocolError(
                f"can only merge a LatencyHistogram of the same layout {self.layout}, got {shown}"
            )
        self._counts = [a + b for a, b in zip(self._counts, other._counts, strict=True)]
        if other._negatives is not None:
            mine = self._negatives or [0] * len(self._counts)
            self._negatives = [a + b for a, b in zip(mine, other._negatives, strict=True)]
        self._count += other._count
        self._samples += other._samples
        self._negative += other._negative
        self._small += other._small
        self._over_high += other._over_high
        self._over_low += other._over_low
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def copy(self) -> LatencyHistogram:
        """An independent copy."""
        twin = LatencyHistogram.__new__(LatencyHistogram)
        for name in self.__slots__:
            setattr(twin, name, getattr(self, name))
        twin._counts = self._counts.copy()
        if self._negatives is not None:
            twin._negatives = self._negatives.copy()
        return twin

    # ------------------------------------------------------------------ queries

    @property
    def relative_error(self) -> float:
        """The most a reported value in range can be off, relative to the true one."""
        return 1.0 / (2 * self.layout[2])

    @property
    def lowest(self) -> float:
        """The smallest magnitude resolved, seconds (a power of two)."""
        return self._lowest

    @property
    def highest(self) -> float:
        """The magnitude from which values count as ``above``, seconds (a power of two)."""
        return self._highest

    @property
    def count(self) -> int:
        """Values recorded (a value recorded with ``count=n`` counts ``n`` times)."""
        return self._count

    @property
    def samples(self) -> int:
        """Calls to :meth:`record` (equal to :attr:`count` when nothing was sampled)."""
        return self._samples

    @property
    def negative(self) -> int:
        """Values recorded below zero."""
        return self._negative

    @property
    def below(self) -> int:
        """Values with ``|value| < lowest`` (counted, reported as 0 in percentiles)."""
        return self._small

    @property
    def above(self) -> int:
        """Values with ``|value| >= highest`` (counted; ``max``/``min`` are exact)."""
        return self._over_high + self._over_low

    @property
    def min(self) -> float | None:
        """The smallest value recorded (exact), ``None`` if none was."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """The largest value recorded (exact), ``None`` if none was."""
        return self._max if self._count else None

    def percentile(self, q: float) -> float | None:
        """The nearest-rank ``q``-th percentile (``0 <= q <= 100``; 99.9 for p99.9), or
        ``None`` if nothing was recorded."""
        return self._percentiles((q,))[0]

    def summary(self) -> LatencyPercentiles:
        """p50, p90, p99, p99.9, min, max and the counts, as one frozen value."""
        p50, p90, p99, p999 = self._percentiles(_QUANTILES)
        return LatencyPercentiles(
            count=self._count,
            samples=self._samples,
            p50=p50,
            p90=p90,
            p99=p99,
            p999=p999,
            min=self.min,
            max=self.max,
            negative=self._negative,
            below=self._small,
            above=self.above,
        )

    def _percentiles(self, quantiles: Iterable[float]) -> list[float | None]:
        ranks = [_rank(q, self._count) for q in quantiles]
        if not self._count:
            return [None] * len(ranks)
        found = dict.fromkeys(ranks, 0.0)
        wanted = sorted(found)
        seen = 0
        index = 0  # into wanted
        for count, value in self.buckets():
            seen += count
            while index < len(wanted) and wanted[index] <= seen:
                found[wanted[index]] = min(max(value, self._min), self._max)
                index += 1
        return [found[rank] for rank in ranks]

    def buckets(self) -> Iterator[tuple[int, float]]:
        """Everything recorded, by bucket: ``(count, value)`` of every non-empty bucket, in
        increasing value, for exporting the distribution (e.g. as a Prometheus histogram).

        ``value`` is what the histogram reports for the bucket's values: its middle (within
        :attr:`relative_error` of each), ``0.0`` for those in ``below``, and the exact
        :attr:`min` and :attr:`max` for those at or beyond ``highest`` (``<= -highest``,
        ``>= highest``). The counts add up to :attr:`count`; nothing is yielded while it is 0.
        """
        low, _, sub_buckets = self.layout
        if self._over_low:
            yield self._over_low, self._min
        negatives = self._negatives
        if negatives is not None:
            for index in range(len(negatives) - 1, -1, -1):
                if negatives[index]:
                    yield negatives[index], -_middle(index, low, sub_buckets)
        if self._small:
            yield self._small, 0.0
        for index, count in enumerate(self._counts):
            if count:
                yield count, _middle(index, low, sub_buckets)
        if self._over_high:
            yield self._over_high, self._max


def _middle(index: int, low: int, sub_buckets: int) -> float:
    """The middle of bucket ``index`` of a layout starting at ``2**low``."""
    octave, step = divmod(index, sub_buckets)
    return math.ldexp(1.0 + (step + 0.5) / sub_buckets, low + octave)


def _rank(q: float, count: int) -> int:
    """The nearest rank (1-based) of percentile ``q`` among ``count`` values; ``q`` is taken
    as written (99.9 is 999/10, not the binary float just above it)."""
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 100:
        raise LocalProtocolError(
            f"q must be a percentile from 0 to 100 (99.9 for p99.9), got {q!r}"
        )
    return max(1, math.ceil(Fraction(str(q)) * count / 100))


# --------------------------------------------------------------------------- tracker


class ChannelLatency(msgspec.Struct, frozen=True):
    """The two latencies of one channel: ``exchange`` (exchange timestamp -> receive,
    clock-offset corrected) and ``delivery`` (receive -> delivery to user code).

    ``unmeasured`` counts events recorded with no exchange -> receive figure: no usable
    timestamp (candles, instrument, status, a snapshot, a timestamp that does not parse)
    or no clock offset yet.
    """

    exchange: LatencyPercentiles
    """Exchange timestamp -> receive, corrected by the clock offset in force."""
    delivery: LatencyPercentiles
    """Receive -> delivery to user code, on the driver's clock."""
    unmeasured: int
    """Events recorded without an exchange -> receive figure."""


class ClockOffset(msgspec.Struct, frozen=True):
    """The exchange clock minus the driver's clock, seconds: ``exchange = local + offset``.

    ``source`` is ``"pong"`` (from a ping round trip: ``bound`` is the most the offset can
    be off, ``rtt`` that round trip, ``samples`` the pongs it was chosen from) or
    ``"wall"`` (the driver's own UTC wall clock, before any pong: as good as its NTP;
    ``bound`` and ``rtt`` are ``None``).
    """

    offset: float
    """Exchange clock minus driver clock, seconds."""
    source: str
    """``"pong"`` or ``"wall"``: where the offset comes from."""
    bound: float | None = None
    """The most the offset can be off, seconds (``"pong"``); ``None`` for ``"wall"``."""
    rtt: float | None = None
    """The round trip of the pong the offset comes from, seconds; ``None`` for ``"wall"``."""
    samples: int = 0
    """How many recent pongs the offset was chosen from (0 for ``"wall"``)."""


class LatencyReport(msgspec.Struct, frozen=True):
    """A snapshot of a :class:`LatencyTracker`: per channel (sorted by name) its two
    latencies; the clock offset in force (``None``: none known yet); and ``wall_samples``,
    the exchange -> receive figures recorded with the wall-clock offset, before any pong."""

    channels: dict[str, ChannelLatency]
    """Per channel that recorded something, sorted by name: its two latencies."""
    clock: ClockOffset | None
    """The clock offset in force, ``None`` if none is known yet."""
    wall_samples: int
    """Exchange -> receive figures recorded with the wall-clock offset, before any pong."""


class _PongFrame(msgspec.Struct):
    method: str
    time_in: str | None = None
    time_out: str | None = None


_decode_pong = msgspec.json.Decoder(_PongFrame).decode


def pong_times(frame: str | bytes) -> tuple[str, str] | None:
    """``(time_in, time_out)`` of a pong frame as Kraken sent them, or ``None`` if ``frame``
    is no pong with a ``time_in`` (``time_out`` defaults to ``time_in``)."""
    try:
        message = _decode_pong(frame)
    except msgspec.DecodeError:
        return None
    if message.method != "pong" or message.time_in is None:
        return None
    return message.time_in, message.time_out or message.time_in


_UNSTAMPED, _STAMPED, _UNLESS_SNAPSHOT = 0, 1, 2

LATENCY_CHANNELS: Mapping[type, str] = MappingProxyType(
    {
        Ticker: "ticker",
        Trade: "trade",
        BookUpdate: "book",
        L3Update: "level3",
        OHLC: "ohlc",
        Execution: "executions",
        Balance: "balances",
        Instrument: "instrument",
        SystemStatus: "status",
    }
)
"""The events whose latencies are tracked, and the Kraken channel each belongs to."""

_STAMPS: dict[type, int] = {
    Ticker: _STAMPED,
    Trade: _STAMPED,
    BookUpdate: _UNLESS_SNAPSHOT,
    L3Update: _UNLESS_SNAPSHOT,
    Execution: _UNLESS_SNAPSHOT,
    Balance: _UNLESS_SNAPSHOT,
}
_CHANNELS: dict[type, tuple[str, int]] = {
    kind: (name, _STAMPS.get(kind, _UNSTAMPED)) for kind, name in LATENCY_CHANNELS.items()
}


class _Channel:
    __slots__ = ("delivery", "exchange", "unmeasured")

    def __init__(self, exchange: LatencyHistogram, delivery: LatencyHistogram) -> None:
        self.exchange = exchange
        self.delivery = delivery
        self.unmeasured = 0


def _checked(weight: int) -> int:
    """``weight``, checked (inline first: this is on the driver's path)."""
    if type(weight) is int and weight >= 1:
        return weight
    return check_count("weight", weight)


class LatencySampler:
    """Which events to measure, so that tracking latency stays cheap at any event rate.

    A systematic sample: one event in :attr:`every` is measured and stands for
    ``every`` events (its weight, which the histograms count), so percentiles and counts
    are unbiased estimates of all events; which events are measured depends on their order
    only, never on their latency. ``every`` is 1 (every event measured) while fewer than
    ``rate`` events arrive per second, and is re-chosen after each 64 measurements, or a
    second, from the rate just seen so that about ``rate`` are measured per second (at
    most one in 256, so a stream that slows down is measured again within 256 events).
    Times are the driver's clock as the caller knows it without reading it (a frame's
    receive time).

    The hot path reads and writes one attribute, for drivers to inline::

        left = sampler.left
        if left > 1:
            sampler.left = left - 1  # not measured
        else:
            weight = sampler.sample(now)  # measure this one
    """

    __slots__ = ("_events", "_measured", "_start", "_weight", "every", "left", "rate")

    def __init__(self, rate: float | None = 500.0) -> None:
        if rate is not None:
            rate = check_duration("rate", rate, "measurements per second", alternative="None")
        self.rate = rate
        """Measurements per second aimed at; ``None``: measure every event."""
        self.every = 1
        """One event in how many is measured (the weight of a measured one)."""
        self.left = 1
        """Events until the next measured one, that one included."""
        self._weight = 1  # of the next measured event: every, or what an unused one stood for
        self._start: float | None = None  # the current window's start
        self._events = 0  # events the window's measurements stand for
        self._measured = 0  # measurements in the window

    def __repr__(self) -> str:
        return f"<LatencySampler rate={self.rate!r} every={self.every} left={self.left}>"

    def sample(self, now: float) -> int:
        """The event at ``now`` is measured: returns its weight (the events it stands for,
        itself included) and counts down to the next one."""
        weight = self._weight
        rate = self.rate
        start = self._start
        if rate is None:
            pass
        elif start is None:  # the first measurement opens the first window
            self._start = now
        else:
            self._events += weight
            self._measured += 1
            elapsed = now - start
            if self._measured >= _WINDOW_MEASURED or elapsed >= _WINDOW_SECONDS:
                if elapsed > 0:  # (the rate seen is inf if elapsed is tiny)
                    every = math.ceil(min(self._events / elapsed / rate, _MAX_EVERY))
                elif elapsed == 0:  # a whole window in one instant: faster than any rate
                    every = self.every * 2
                else:  # the clock stepped back (or is NaN): nothing learnt
                    every = self.every
                self.every = min(max(every, 1), _MAX_EVERY)
                self._start, self._events, self._measured = now, 0, 0
        self.left = self._weight = self.every
        return weight

    def unused(self, weight: int) -> None:
        """The event just measured, standing for ``weight`` events, turned out to be of no
        use (no channel data): the next event is measured instead, standing for them."""
        if self._measured:
            self._events -= weight
            self._measured -= 1
        self.left = 1
        self._weight = weight


_WINDOW_MEASURED = 64
_WINDOW_SECONDS = 1.0
_MAX_EVERY = 256


class _Sample(msgspec.Struct, frozen=True):
    offset: float  # relative to the tracker's reference second
    bound: float
    rtt: float


class LatencyTracker:
    """Per-channel latencies (see the module docstring), fed events and times; sans-IO.

    A driver calls :meth:`record_exchange` with data events as they are produced,
    :meth:`record_delivery` with them as they reach user code (and the time they did; or
    :meth:`record` for both at once), :meth:`pong` with every ``Pong`` and its frame, and
    may call :meth:`wall_clock` once per connection. A :class:`LatencySampler` can choose
    which events to measure under load, passing each measured one's weight. :meth:`report`
    is the snapshot. Histograms use the layout of :class:`LatencyHistogram` (``lowest``,
    ``highest``, ``sub_buckets``); ``window`` is how many recent pongs the clock offset is
    chosen from. Not thread-safe: a driver calls it under its own lock.
    """

    def __init__(
        self,
        *,
        window: int = 32,
        lowest: float = 1e-6,
        highest: float = 100.0,
        sub_buckets: int = 64,
    ) -> None:
        check_count("window", window)
        self._template = LatencyHistogram(lowest, highest, sub_buckets)
        self._channels: dict[str, _Channel] = {}
        self._samples: deque[_Sample] = deque(maxlen=window)
        self._best: _Sample | None = None
        self._wall: float | None = None  # wall-clock offset, relative to _ref
        # The offset in force: exchange time (relative to _ref) minus driver time.
        self._offset: float | None = None
        self._wall_samples = 0
        # Exchange times are kept relative to a whole second near the first one seen, so
        # no precision is lost to the ~1.7e9 s of Unix time.
        self._ref: int | None = None
        self._minutes: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" -> its Unix time - _ref

    def __repr__(self) -> str:
        return f"<LatencyTracker channels={sorted(self._channels)} clock={self.clock!r}>"

    # ------------------------------------------------------------------ inputs

    def record(self, event: Event, delivered_at: float, weight: int = 1) -> bool:
        """:meth:`record_exchange` and :meth:`record_delivery` of one event."""
        if not self.record_exchange(event, weight):
            return False
        return self.record_delivery(event, delivered_at, weight)

    def record_exchange(self, event: Event, weight: int = 1) -> bool:
        """Record the exchange -> receive latency of ``event`` (standing for ``weight``
        events), or count it ``unmeasured``; False (nothing recorded) if it is no channel
        data (acks, state changes, ...)."""
        spec = _CHANNELS.get(type(event))
        if spec is None:
            return False
        name, stamped = spec
        channel = self._channels.get(name) or self._new_channel(name)
        offset = self._offset
        data: Any = event
        if stamped and offset is not None:
            text = data.timestamp
            if text is not None and not (stamped == _UNLESS_SNAPSHOT and data.snapshot):
                sent = self._exchange_time(text)
                if sent is not None:
                    channel.exchange._add(data.received_at + offset - sent, _checked(weight))
                    if self._best is None:
                        self._wall_samples += 1
                    return True
        channel.unmeasured += _checked(weight)
        return True

    def record_delivery(self, event: Event, delivered_at: float, weight: int = 1) -> bool:
        """Record the receive -> delivery latency of ``event``, which reached user code at
        ``delivered_at`` (driver clock), standing for ``weight`` events; False (nothing
        recorded) if it is no channel data."""
        spec = _CHANNELS.get(type(event))
        if spec is None:
            return False
        channel = self._channels.get(spec[0]) or self._new_channel(spec[0])
        channel.delivery._add(delivered_at - event.received_at, _checked(weight))
        return True

    def pong(self, event: Pong, frame: str | bytes) -> bool:
        """Take a clock-offset sample from ``event`` and the pong ``frame`` it came from;
        False if it cannot give one (no round trip known, no parseable ``time_in``)."""
        times = pong_times(frame)
        if event.rtt is None or times is None:
            return False
        sent = event.received_at - event.rtt
        return self.clock_sample(sent, event.received_at, *times)

    def clock_sample(self, sent: float, received: float, time_in: str, time_out: str) -> bool:
        """Take a clock-offset sample from a request sent at ``sent`` and answered at
        ``received`` (driver clock) that Kraken stamped ``time_in``/``time_out`` (RFC3339);
        False if a time does not parse or ``received < sent``. ``sent`` and ``received``
        must be finite numbers (else :class:`~kraken_proto.LocalProtocolError`)."""
        sent = check_time("sent", sent)
        received = check_time("received", received)
        start = self._exchange_time(time_in)
        end = self._exchange_time(time_out)
        if start is None or end is None or received < sent:
            return False
        rtt = received - sent
        processing = max(0.0, end - start)
        sample = _Sample(
            offset=(start + end) / 2 - (sent + received) / 2,
            bound=max(0.0, rtt - processing) / 2,
            rtt=rtt,
        )
        self._samples.append(sample)
        best = sample
        for candidate in self._samples:  # the tightest; the newest of equals
            if candidate.bound < best.bound:
                best = candidate
        self._best = best
        self._offset = best.offset
        return True

    def wall_clock(self, wall: float, now: float) -> None:
        """The driver's UTC wall clock read ``wall`` (Unix seconds) when its clock read
        ``now``: the offset used until a pong gives a better one. Both must be finite
        numbers (else :class:`~kraken_proto.LocalProtocolError`)."""
        wall = check_time("wall", wall)
        now = check_time("now", now)
        second = math.floor(wall)
        ref = self._anchor(second)
        self._wall = (second - ref) + (wall - second) - now
        if self._best is None:
            self._offset = self._wall

    # ------------------------------------------------------------------ queries

    @property
    def clock(self) -> ClockOffset | None:
        """The clock offset in force (see :class:`ClockOffset`), ``None`` if none is known."""
        best = self._best
        if best is not None:
            assert self._ref is not None
            return ClockOffset(
                offset=self._ref + best.offset,
                source="pong",
                bound=best.bound,
                rtt=best.rtt,
                samples=len(self._samples),
            )
        if self._wall is not None:
            assert self._ref is not None
            return ClockOffset(offset=self._ref + self._wall, source="wall")
        return None

    def percentiles(self) -> dict[str, ChannelLatency]:
        """Per channel that recorded something (sorted by name), its two latencies."""
        return {
            name: ChannelLatency(
                exchange=channel.exchange.summary(),
                delivery=channel.delivery.summary(),
                unmeasured=channel.unmeasured,
            )
            for name, channel in sorted(self._channels.items())
        }

    def report(self) -> LatencyReport:
        """Everything, as one frozen value: :meth:`percentiles`, :attr:`clock` and the
        count of figures taken with the wall-clock offset."""
        return LatencyReport(
            channels=self.percentiles(), clock=self.clock, wall_samples=self._wall_samples
        )

    def copy(self) -> LatencyTracker:
        """An independent copy (histograms, clock samples and all)."""
        twin = LatencyTracker.__new__(LatencyTracker)
        twin.__dict__.update(self.__dict__)
        twin._channels = {}
        for name, channel in self._channels.items():
            copied = twin._channels[name] = _Channel(
                channel.exchange.copy(), channel.delivery.copy()
            )
            copied.unmeasured = channel.unmeasured
        twin._samples = self._samples.copy()
        twin._minutes = self._minutes.copy()
        return twin

    def histogram(self, channel: str, direction: str) -> LatencyHistogram | None:
        """A copy of the histogram of ``channel`` and ``direction`` (``"exchange"`` or
        ``"delivery"``), to merge or query; ``None`` if the channel recorded nothing."""
        if direction not in DIRECTIONS:
            raise LocalProtocolError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        found = self._channels.get(channel)
        if found is None:
            return None
        return (found.exchange if direction == "exchange" else found.delivery).copy()

    # ------------------------------------------------------------------ internals

    def _new_channel(self, name: str) -> _Channel:
        channel = self._channels[name] = _Channel(self._template.copy(), self._template.copy())
        return channel

    def _anchor(self, second: int) -> int:
        """The reference second, set from ``second`` if none is yet."""
        if self._ref is None:
            self._ref = second
        return self._ref

    def _exchange_time(self, text: str) -> float | None:
        """Kraken's RFC3339 ``text`` as seconds after the reference second, or ``None``.

        The fast path takes the minute (``YYYY-MM-DDTHH:MM``, cached) and the seconds
        (``SS.ffffff[fff]``) apart; anything else goes through ``parse_timestamp``.
        """
        minute = self._minutes.get(text[:16])
        if minute is None:
            minute = self._learn_minute(text)
        if minute is not None and text[16:17] == ":" and text[-1:] == "Z":
            try:
                seconds = float(text[17:-1])
            except ValueError:
                seconds = -1.0
            if 0.0 <= seconds < 61.0:  # a leap second may read 60.x
                return minute + seconds
        return self._slow_time(text)

    def _learn_minute(self, text: str) -> int | None:
        prefix = text[:16]
        if len(prefix) != 16 or prefix[10] != "T" or not prefix[:4].isdigit():
            return None
        try:
            start = datetime.fromisoformat(prefix).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        unix = (start - _EPOCH) // timedelta(seconds=1)
        if len(self._minutes) >= 16:  # a new minute every minute: keep a few
            self._minutes.clear()
        minute = self._minutes[prefix] = unix - self._anchor(unix)
        return minute

    def _slow_time(self, text: str) -> float | None:
        try:
            moment = parse_timestamp(text)
        except msgspec.DecodeError:
            return None
        if moment.tzinfo is None:  # no offset given: Kraken's times are UTC
            moment = moment.replace(tzinfo=timezone.utc)
        micros = (moment - _EPOCH) // _MICROSECOND
        second = micros // 1_000_000
        return (second - self._anchor(second)) + (micros - second * 1_000_000) / 1e6
