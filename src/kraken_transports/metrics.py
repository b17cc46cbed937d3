"""Prometheus metrics of the clients and of the simulator: the ``metrics`` extra.

::

    pip install "kraken-ws-sdk[metrics]"

This is the only module of the SDK that imports ``prometheus_client``; nothing imports it
unless metrics are asked for (``client.metrics()``, ``kraken-ws ... --metrics-port``), so
without the extra nothing costs.

What is counted is counted elsewhere, once: the protocol's facts in the core
(:attr:`KrakenProtocol.counters <kraken_proto.protocol.KrakenProtocol.counters>`), the events
and the buffer in the driver layer (``client.stats`` and its split by event type), the
latencies in the latency tracker. A :class:`KrakenCollector` reads them when Prometheus
scrapes, through :meth:`Driver.snapshot <kraken_transports.driver.Driver.snapshot>` (under
the client's lock), and builds the metric families then: nothing happens between scrapes,
and a scrape's figures agree with ``client.stats`` taken at the same moment. Every metric
is defined once, in :data:`CLIENT_METRICS` (and :data:`SIMULATOR_METRICS`); every one of a
client carries the label ``endpoint``, its WebSocket URL, so the clients of one process
share one registry (one collector per registry serves them all).

Latency histograms (``ClientConfig(latency=True)``) are converted from the tracker's
log-linear histograms to cumulative buckets :data:`LATENCY_BUCKETS` (10 µs to 10 s, 1-2.5-5
per decade): each value is placed as the middle of its fine bucket, within 0.78% of its
true value, so only values within 0.78% of a bucket's bound can land in the next bucket;
values under 10 µs (negative ones included) land in the first, values of 10 s or more in
``+Inf``. ``_count`` is the tracker's count (with sampling, an estimate of all events, as in
``client.latency``) and ``_sum`` is summed from the same middles.

:func:`serve_metrics` serves a registry's ``/metrics`` over HTTP on loopback, on a thread
of its own, until closed.
"""

from __future__ import annotations

import socketserver
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kraken_proto.analytics.latency import LATENCY_CHANNELS, LatencyHistogram
from kraken_proto.state import ConnectionState
from kraken_transports.driver import DriverSnapshot

INSTALL_HINT = 'metrics need the prometheus-client package: pip install "kraken-ws-sdk[metrics]"'
"""The message of the ``ImportError`` raised when ``prometheus_client`` is missing."""

try:
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
        make_wsgi_app,
    )
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import REGISTRY, Collector
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(INSTALL_HINT) from exc

if TYPE_CHECKING:
    from typing_extensions import Self

    from kraken_transports.client import ClientBase
    from kraken_transports.simserver import SimServer, SimulatorCounters

__all__ = [
    "CLIENT_METRICS",
    "INSTALL_HINT",
    "LATENCY_BUCKETS",
    "SIMULATOR_METRICS",
    "ClientMetrics",
    "KrakenCollector",
    "MetricSpec",
    "MetricsServer",
    "SimulatorCollector",
    "latency_buckets",
    "new_registry",
    "register_client",
    "register_simulator",
    "serve_metrics",
]

DEFAULT_MAX_SYMBOLS = 20
"""How many symbols get a label of their own with ``symbol_labels=True``, by default."""


class MetricSpec(NamedTuple):
    """One metric: its full name, Prometheus type, help text and labels (``endpoint``, the
    client's URL, comes first in every client metric and is not listed)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()


def _bounds() -> tuple[float, ...]:
    return (*(float(f"{m}e{e}") for e in range(-5, 1) for m in ("1", "2.5", "5")), 10.0)


LATENCY_BUCKETS: tuple[float, ...] = _bounds()
"""The upper bounds of the latency histograms' buckets, seconds: 10 µs to 10 s, 1-2.5-5 per
decade (``+Inf`` follows)."""
_BUCKET_LABELS: tuple[str, ...] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*LATENCY_BUCKETS, float("inf"))
)

_C, _G, _S, _H = "counter", "gauge", "summary", "histogram"

CLIENT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "kraken_ws_received_messages_total",
        _C,
        "WebSocket messages received, by channel (a data channel, 'response' for answers "
        "to requests, 'unknown' for messages not understood, 'ignored' after a failure)",
        ("channel",),
    ),
    MetricSpec(
        "kraken_ws_received_bytes_total",
        _C,
        "Size of the WebSocket messages received (UTF-8 bytes), by channel",
        ("channel",),
    ),
    MetricSpec("kraken_ws_sent_messages_total", _C, "WebSocket messages sent"),
    MetricSpec(
        "kraken_ws_events_received_total",
        _C,
        "Events produced for the consumer, by event type (buffered, or handed to the "
        "callbacks of a client with buffer_events=False)",
        ("type",),
    ),
    MetricSpec(
        "kraken_ws_events_delivered_total",
        _C,
        "Events delivered to the consumer (taken from the buffer; or handed to the "
        "callbacks of a client with buffer_events=False), by event type",
        ("type",),
    ),
    MetricSpec(
        "kraken_ws_events_dropped_total",
        _C,
        "Events dropped by the backpressure policy, by event type and reason ('oldest': "
        "evicted to make room, 'latest': rejected)",
        ("type", "reason"),
    ),
    MetricSpec(
        "kraken_ws_events_coalesced_total",
        _C,
        "Events replaced by a newer one of the same symbol, by event type and reason "
        "('window': within coalesce_window, 'full': the buffer was full)",
        ("type", "reason"),
    ),
    MetricSpec("kraken_ws_buffered_events", _G, "Events waiting in the buffer"),
    MetricSpec(
        "kraken_ws_buffer_capacity_events",
        _G,
        "Market events the buffer holds before its drop policy applies (max_queue_depth)",
        ("policy",),
    ),
    MetricSpec("kraken_ws_callback_errors_total", _C, "Exceptions raised by user callbacks"),
    MetricSpec(
        "kraken_ws_connection_state",
        _G,
        "1 for the connection's current state, 0 for the others",
        ("state",),
    ),
    MetricSpec("kraken_ws_connection_attempts_total", _C, "Connections opened or attempted"),
    MetricSpec(
        "kraken_ws_connection_failures_total",
        _C,
        "Failures of a connection or of an attempt (each is followed by a reconnect or "
        "by giving up)",
    ),
    MetricSpec("kraken_ws_reconnects_total", _C, "Connection attempts made after a failure"),
    MetricSpec(
        "kraken_ws_subscriptions",
        _G,
        "Subscriptions by channel and status (active, pending, unsubscribing, failed)",
        ("channel", "status"),
    ),
    MetricSpec(
        "kraken_ws_book_resyncs_total",
        _C,
        "Book resyncs started, by channel and reason ('checksum', 'unusable': a number "
        "the book refused, 'invalid_frame': a frame naming it did not decode)",
        ("channel", "reason"),
    ),
    MetricSpec(
        "kraken_ws_checksum_failures_total",
        _C,
        "Book checksums that did not match Kraken's, by channel",
        ("channel",),
    ),
    MetricSpec(
        "kraken_ws_sequence_gaps_total",
        _C,
        "Sequence gaps detected on a private channel, by channel",
        ("channel",),
    ),
    MetricSpec(
        "kraken_ws_ping_round_trip_seconds",
        _S,
        "Round trips of the application pings answered (count and sum)",
    ),
    MetricSpec(
        "kraken_ws_last_ping_round_trip_seconds",
        _G,
        "Round trip of the latest ping answered",
    ),
    MetricSpec(
        "kraken_ws_exchange_latency_seconds",
        _H,
        "Kraken's timestamp to receipt, by channel (ClientConfig(latency=True); "
        "clock-offset corrected)",
        ("channel",),
    ),
    MetricSpec(
        "kraken_ws_delivery_latency_seconds",
        _H,
        "Receipt to delivery to the consumer, by channel (ClientConfig(latency=True))",
        ("channel",),
    ),
    MetricSpec(
        "kraken_ws_symbol_updates_total",
        _C,
        "Market data entries received (book updates, trades, tickers, candles), by "
        "channel and symbol, for the first max_symbols symbols (symbol_labels=True)",
        ("channel", "symbol"),
    ),
    MetricSpec(
        "kraken_ws_symbol_updates_omitted_total",
        _C,
        "Market data entries of the symbols beyond max_symbols, by channel (symbol_labels=True)",
        ("channel",),
    ),
)
"""Every metric of a client, each with the label ``endpoint`` first."""

SIMULATOR_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "kraken_ws_simulator_connections_total",
        _C,
        "Connections the simulator accepted, by host (public, auth, level3)",
        ("host",),
    ),
    MetricSpec("kraken_ws_simulator_open_connections", _G, "Live connections, by host", ("host",)),
    MetricSpec("kraken_ws_simulator_sent_messages_total", _C, "Messages sent, by host", ("host",)),
    MetricSpec(
        "kraken_ws_simulator_received_messages_total",
        _C,
        "Messages received from clients, by host",
        ("host",),
    ),
    MetricSpec(
        "kraken_ws_simulator_closes_total",
        _C,
        "Connections the simulator ended, by close code ('1006': dropped without a close frame)",
        ("code",),
    ),
    MetricSpec(
        "kraken_ws_simulator_faults_total",
        _C,
        "Faults injected (SimServer.inject), by fault",
        ("fault",),
    ),
    MetricSpec(
        "kraken_ws_simulator_token_requests_total",
        _C,
        "Answers of the REST token endpoint, by HTTP status",
        ("status",),
    ),
)
"""Every metric of the simulator (``kraken-ws serve``)."""

_SUBSCRIPTION_STATUSES = ("active", "pending", "unsubscribing", "failed")
_STATES = tuple(state.value for state in ConnectionState)
_Labels = tuple[str, ...]
_Samples = dict[str, list[tuple[_Labels, Any]]]


def _family(spec: MetricSpec, extra: Sequence[str] = ()) -> Metric:
    """An empty family for ``spec``, its labels preceded by ``extra``."""
    labels = [*extra, *spec.labels]
    if spec.type == _C:
        return CounterMetricFamily(spec.name, spec.help, labels=labels)
    if spec.type == _G:
        return GaugeMetricFamily(spec.name, spec.help, labels=labels)
    if spec.type == _S:
        return SummaryMetricFamily(spec.name, spec.help, labels=labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=labels)


def _families(specs: Sequence[MetricSpec], samples: _Samples, extra: Sequence[str]) -> list[Metric]:
    """The families of ``specs``, each filled with its ``samples`` (label values first)."""
    families = []
    for spec in specs:
        family: Any = _family(spec, extra)
        for labels, value in samples.get(spec.name, ()):
            if spec.type == _S:
                family.add_metric(labels, count_value=value[0], sum_value=value[1])
            elif spec.type == _H:
                family.add_metric(labels, buckets=value[0], sum_value=value[1])
            else:
                family.add_metric(labels, value)
        families.append(family)
    return families


# --------------------------------------------------------------------------- latency


def latency_buckets(histogram: LatencyHistogram) -> tuple[list[tuple[str, float]], float]:
    """``(buckets, sum)`` of ``histogram`` for a Prometheus histogram: the cumulative count
    at each of :data:`LATENCY_BUCKETS` and ``+Inf``, and the sum (see the module docstring
    for the conversion and its error)."""
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    total = 0.0
    # buckets(): the histogram's own walk over its buckets, ascending: (count, value) with
    # the value a bucket's middle (exact min/max for the counts out of its range).
    for count, value in histogram.buckets():
        counts[bisect_left(LATENCY_BUCKETS, value)] += count
        total += count * value
    buckets = []
    cumulative = 0
    for bound, count in zip(_BUCKET_LABELS, counts, strict=True):
        cumulative += count
        buckets.append((bound, float(cumulative)))
    return buckets, total


# --------------------------------------------------------------------------- clients


def _add(samples: _Samples, name: str, labels: _Labels, value: Any) -> None:
    samples.setdefault(name, []).append((labels, value))


def _client_samples(snapshot: DriverSnapshot, endpoint: str, symbol_labels: bool) -> _Samples:
    """The samples of one client (label values: ``endpoint`` first)."""
    samples: _Samples = {}
    stats, events, counters = snapshot.stats, snapshot.events, snapshot.counters
    e = (endpoint,)

    def add(name: str, value: Any, *labels: str) -> None:
        _add(samples, name, (*e, *labels), value)

    for channel, count in sorted(counters.messages.items()):
        add("kraken_ws_received_messages_total", count, channel)
        add("kraken_ws_received_bytes_total", counters.message_bytes[channel], channel)
    add("kraken_ws_sent_messages_total", stats.frames_out)
    for kind, count in sorted(events.received.items()):
        add("kraken_ws_events_received_total", count, kind)
        add("kraken_ws_events_delivered_total", events.delivered[kind], kind)
    for (kind, reason), count in sorted(events.dropped.items()):
        add("kraken_ws_events_dropped_total", count, kind, reason)
    for (kind, reason), count in sorted(events.coalesced.items()):
        add("kraken_ws_events_coalesced_total", count, kind, reason)
    add("kraken_ws_buffered_events", stats.queued)
    add("kraken_ws_buffer_capacity_events", events.capacity, events.policy)
    add("kraken_ws_callback_errors_total", stats.callback_errors)
    current = snapshot.state.value
    for state in _STATES:
        add("kraken_ws_connection_state", 1 if state == current else 0, state)
    add("kraken_ws_connection_attempts_total", counters.connection_attempts)
    add("kraken_ws_connection_failures_total", counters.connection_failures)
    add("kraken_ws_reconnects_total", stats.reconnects)
    view = snapshot.subscriptions
    by_status: dict[tuple[str, str], int] = {}
    for status in _SUBSCRIPTION_STATUSES:
        for info in getattr(view, status):
            key = (info.channel, status)
            by_status[key] = by_status.get(key, 0) + 1
    for (channel, status), count in sorted(by_status.items()):
        add("kraken_ws_subscriptions", count, channel, status)
    for (channel, reason), count in sorted(counters.book_resyncs.items()):
        add("kraken_ws_book_resyncs_total", count, channel, reason)
    for channel, count in sorted(counters.checksum_failures.items()):
        add("kraken_ws_checksum_failures_total", count, channel)
    for channel, count in sorted(counters.gaps.items()):
        add("kraken_ws_sequence_gaps_total", count, channel)
    round_trips = (counters.round_trips, counters.round_trip_seconds)
    add("kraken_ws_ping_round_trip_seconds", round_trips)
    if counters.last_round_trip is not None:
        add("kraken_ws_last_ping_round_trip_seconds", counters.last_round_trip)
    tracker = snapshot.latency
    if tracker is not None:
        for channel in sorted(set(LATENCY_CHANNELS.values())):
            for direction in ("exchange", "delivery"):
                histogram = tracker.histogram(channel, direction)
                if histogram is not None:
                    name = f"kraken_ws_{direction}_latency_seconds"
                    add(name, latency_buckets(histogram), channel)
    if symbol_labels:
        for (channel, symbol), count in sorted(counters.symbol_entries.items()):
            add("kraken_ws_symbol_updates_total", count, channel, symbol)
        for channel, count in sorted(counters.symbols_omitted.items()):
            add("kraken_ws_symbol_updates_omitted_total", count, channel)
    return samples


class _Source(NamedTuple):
    endpoint: str
    snapshot: Callable[[], DriverSnapshot]
    symbol_labels: bool


class KrakenCollector(Collector):
    """The metrics of the clients registered with it (:data:`CLIENT_METRICS`), built from
    their snapshots at each scrape. One per registry; :func:`register_client` makes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[int, _Source] = {}

    def describe(self) -> Iterable[Metric]:
        """The (empty) families, for the registry's check of duplicate names."""
        return [_family(spec, ("endpoint",)) for spec in CLIENT_METRICS]

    def collect(self) -> Iterable[Metric]:
        """Every client's metrics now."""
        with self._lock:
            sources = list(self._sources.values())
        samples: _Samples = {}
        for source in sources:
            taken = _client_samples(source.snapshot(), source.endpoint, source.symbol_labels)
            for name, entries in taken.items():
                samples.setdefault(name, []).extend(entries)
        return _families(CLIENT_METRICS, samples, ("endpoint",))

    def _add(self, source: _Source) -> int:
        with self._lock:
            if any(s.endpoint == source.endpoint for s in self._sources.values()):
                raise ValueError(
                    f"a client of {source.endpoint} is already registered with this "
                    "registry: register this one with another registry"
                )
            key = id(source)
            self._sources[key] = source
            return key

    def _remove(self, key: int) -> bool:
        """Forget a client; whether none is left."""
        with self._lock:
            self._sources.pop(key, None)
            return not self._sources


_collectors: weakref.WeakKeyDictionary[Any, KrakenCollector] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


class ClientMetrics:
    """A client's registration with a registry (what ``client.metrics()`` returns).

    :meth:`unregister` (or leaving a ``with`` block) removes the client's metrics; the
    collector leaves the registry with its last client. Message counting, once on, stays on.
    """

    def __init__(self, registry: CollectorRegistry, collector: KrakenCollector, key: int) -> None:
        self.registry = registry
        """The registry the metrics are in."""
        self.collector = collector
        """The collector serving them (shared by the registry's clients)."""
        self._key: int | None = key

    def unregister(self) -> None:
        """Remove this client's metrics from the registry; idempotent."""
        key, self._key = self._key, None
        if key is None:
            return
        with _collectors_lock:
            if self.collector._remove(key) and _collectors.get(self.registry) is self.collector:
                del _collectors[self.registry]
                self.registry.unregister(self.collector)

    def __enter__(self) -> Self:
        """The registration itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Unregister (see :meth:`unregister`)."""
        self.unregister()


def register_client(
    client: ClientBase,
    registry: CollectorRegistry | None = None,
    *,
    symbol_labels: bool = False,
    max_symbols: int = DEFAULT_MAX_SYMBOLS,
) -> ClientMetrics:
    """Export ``client``'s metrics through ``registry`` (default: ``prometheus_client``'s
    global ``REGISTRY``): the body of ``client.metrics()``, which see."""
    if registry is None:
        registry = REGISTRY
    if isinstance(max_symbols, bool) or not isinstance(max_symbols, int) or max_symbols < 1:
        raise ValueError(f"max_symbols must be an int >= 1, got {max_symbols!r}")
    client._start_counting(max_symbols if symbol_labels else 0)
    source = _Source(client.protocol.url, client._snapshot, bool(symbol_labels))
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = KrakenCollector()
            key = collector._add(source)
            registry.register(collector)
            _collectors[registry] = collector
        else:
            key = collector._add(source)
    return ClientMetrics(registry, collector, key)


# --------------------------------------------------------------------------- the simulator


def _simulator_samples(counters: SimulatorCounters) -> _Samples:
    samples: _Samples = {}
    tables = (
        ("kraken_ws_simulator_connections_total", counters.connections),
        ("kraken_ws_simulator_open_connections", counters.live),
        ("kraken_ws_simulator_sent_messages_total", counters.sent),
        ("kraken_ws_simulator_received_messages_total", counters.received),
        ("kraken_ws_simulator_closes_total", counters.closes),
        ("kraken_ws_simulator_faults_total", counters.faults),
        ("kraken_ws_simulator_token_requests_total", counters.token_requests),
    )
    for name, table in tables:
        for key, count in sorted(table.items()):
            _add(samples, name, (key,), count)
    return samples


class SimulatorCollector(Collector):
    """The metrics of a running simulator (:data:`SIMULATOR_METRICS`), read from
    :attr:`SimServer.counters <kraken_transports.simserver.SimServer.counters>` at each
    scrape."""

    def __init__(self, server: SimServer) -> None:
        self._server = server

    def describe(self) -> Iterable[Metric]:
        """The (empty) families, for the registry's check of duplicate names."""
        return [_family(spec) for spec in SIMULATOR_METRICS]

    def collect(self) -> Iterable[Metric]:
        """The simulator's metrics now."""
        return _families(SIMULATOR_METRICS, _simulator_samples(self._server.counters), ())


def register_simulator(
    server: SimServer, registry: CollectorRegistry | None = None
) -> SimulatorCollector:
    """Export ``server``'s metrics through ``registry`` (default: the global ``REGISTRY``);
    ``registry.unregister(collector)`` removes them."""
    collector = SimulatorCollector(server)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


# --------------------------------------------------------------------------- serving


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


_POLL_INTERVAL = 0.05


class MetricsServer:
    """``/metrics`` of a registry over HTTP, served on a daemon thread until :meth:`close`
    (also on leaving a ``with`` block). :func:`serve_metrics` starts one."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str) -> None:
        self._httpd = make_server(
            host, port, make_wsgi_app(registry), server_class=_Server, handler_class=_QuietHandler
        )
        self.host = host
        """The address listened on."""
        self.port: int = self._httpd.server_address[1]
        """The port listened on (the one chosen when 0 was asked for)."""
        # serve_forever checks for shutdown once per poll interval: 0.05 s (not its 0.5 s
        # default) makes close() return within 50 ms.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="kraken-metrics",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        """The server itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving (see :meth:`close`)."""
        self.close()


def serve_metrics(
    registry: CollectorRegistry | None = None, port: int = 0, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` (default: the global ``REGISTRY``) at ``http://host:port/metrics``
    on a thread of its own; ``port=0`` lets the OS choose (read it from ``.port``). Raises
    ``OSError`` when the port cannot be bound."""
    return MetricsServer(REGISTRY if registry is None else registry, port, host)


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A fresh registry; with ``process``, holding the process, platform and garbage
    collector metrics that ``prometheus_client`` offers (CPU, memory, Python version)."""
    registry = CollectorRegistry()
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
