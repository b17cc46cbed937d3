"""Prometheus metrics (kraken_transports.metrics, ``client.metrics()``, ``--metrics-port``).

The endpoint is scraped over HTTP on loopback while a client of each driver runs against the
simulator with faults (a corrupted checksum, a dropped connection), parsed with
``prometheus_client.parser``, and checked against ``client.stats``: names and types always,
the values exactly once the client has closed (nothing moves then), and within one scrape
where the client cannot run meanwhile.
"""

from __future__ import annotations

import itertools
import math
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clients import KINDS, Client, dispose, open_client, read_until, until
from cliproc import cli_process
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY
from simthread import SimThread

from kraken_proto import (
    BackpressureConfig,
    BookUpdate,
    ClientConfig,
    DropPolicy,
    ReconnectConfig,
    Trade,
)
from kraken_proto.analytics.latency import LatencyHistogram
from kraken_proto.simulator.faults import CorruptChecksum, Drop
from kraken_transports import ThreadedClient, cli
from kraken_transports.metrics import (
    CLIENT_METRICS,
    INSTALL_HINT,
    LATENCY_BUCKETS,
    SIMULATOR_METRICS,
    latency_buckets,
    register_simulator,
    serve_metrics,
)

REPO = Path(__file__).resolve().parents[2]
Families = dict[str, Any]
FAST = ReconnectConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=3) as server:
        yield server


def scrape(url: str) -> tuple[str, Families]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return text, {family.name: family for family in text_string_to_metric_families(text)}


def value(families: Families, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    family_name = re.sub(r"(_total|_count|_sum|_bucket)$", "", name)
    family = families[family_name]
    return sum(
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def samples(families: Families, name: str) -> list[Any]:
    family_name = re.sub(r"(_total|_count|_sum|_bucket)$", "", name)
    return [s for s in families[family_name].samples if s.name == name]


def check_names_and_types(families: Families) -> None:
    """Every metric of a client is there, with its type (and the simulator's)."""
    for spec in (*CLIENT_METRICS, *SIMULATOR_METRICS):
        name = spec.name.removesuffix("_total")
        assert name in families, spec.name
        assert families[name].type == spec.type, spec.name


def check_identities(families: Families) -> None:
    """What one consistent snapshot must satisfy."""
    received = value(families, "kraken_ws_events_received_total")
    delivered = value(families, "kraken_ws_events_delivered_total")
    lost = value(families, "kraken_ws_events_dropped_total")
    lost += value(families, "kraken_ws_events_coalesced_total")
    assert received == delivered + lost + value(families, "kraken_ws_buffered_events")


def check_against_stats(families: Families, client: Client) -> None:
    """The scrape agrees exactly with ``client.stats`` and ``protocol.counters``."""
    stats = client.stats
    counters = client.protocol.counters
    assert value(families, "kraken_ws_received_messages_total") == stats.frames_in
    assert value(families, "kraken_ws_sent_messages_total") == stats.frames_out
    assert value(families, "kraken_ws_events_received_total") == stats.received
    assert value(families, "kraken_ws_events_delivered_total") == stats.delivered
    assert value(families, "kraken_ws_events_dropped_total") == stats.dropped
    assert value(families, "kraken_ws_events_coalesced_total") == stats.coalesced
    assert value(families, "kraken_ws_buffered_events") == stats.queued
    assert value(families, "kraken_ws_reconnects_total") == stats.reconnects
    assert value(families, "kraken_ws_callback_errors_total") == stats.callback_errors
    assert value(families, "kraken_ws_reconnects_total") == counters.reconnects
    assert value(families, "kraken_ws_connection_attempts_total") == counters.connection_attempts
    assert value(families, "kraken_ws_connection_failures_total") == counters.connection_failures
    for (channel, reason), count in counters.book_resyncs.items():
        assert value(families, "kraken_ws_book_resyncs_total", channel=channel, reason=reason) == (
            count
        )
    assert value(families, "kraken_ws_checksum_failures_total") == sum(
        counters.checksum_failures.values()
    )
    for channel, size in counters.message_bytes.items():
        assert value(families, "kraken_ws_received_bytes_total", channel=channel) == size
    assert value(families, "kraken_ws_ping_round_trip_seconds_count") == counters.round_trips
    state = client.state.value
    assert value(families, "kraken_ws_connection_state", state=state) == 1
    assert value(families, "kraken_ws_connection_state") == 1
    report = client.latency
    for channel, latency in report.channels.items():
        for direction in ("exchange", "delivery"):
            name = f"kraken_ws_{direction}_latency_seconds"
            summary = getattr(latency, direction)
            if summary.count:
                assert value(families, f"{name}_count", channel=channel) == summary.count
                buckets = [
                    s for s in samples(families, f"{name}_bucket") if s.labels["channel"] == channel
                ]
                assert [s.labels["le"] for s in buckets][-1] == "+Inf"
                assert len(buckets) == len(LATENCY_BUCKETS) + 1
                counts = [s.value for s in buckets]
                assert counts == sorted(counts) and counts[-1] == summary.count


# --------------------------------------------------------------------------- every driver


def test_a_scrape_during_a_run_with_faults_agrees_with_stats(kind: str, sim: SimThread) -> None:
    config = sim.client_config(
        latency=True,
        ping_interval=1.0,
        reconnect=FAST,
        backpressure=BackpressureConfig(max_queue_depth=8, drop_policy=DropPolicy.OLDEST),
    )
    registry = CollectorRegistry()
    register_simulator(sim.server, registry)  # read from this thread: counters are plain
    client = open_client(kind, config)
    try:
        registration = client.metrics(registry, symbol_labels=True, max_symbols=1)
        with serve_metrics(registry) as server:
            client.start()
            client.subscribe("book", ["BTC/USD", "ETH/USD"], depth=10, timeout=10)
            client.subscribe("trade", "BTC/USD", timeout=10)
            read_until(client, lambda: client.stats.received > 30)  # some delivered
            sim.inject(CorruptChecksum("BTC/USD"))
            until(client, lambda: client.protocol.counters.book_resyncs != {})
            sim.inject(Drop())
            until(
                client, lambda: client.stats.reconnects == 1 and client.state.value == "subscribed"
            )
            until(client, lambda: client.stats.dropped > 0)  # nobody reads: the buffer fills
            read_until(client, lambda: client.protocol.counters.round_trips > 0)
            text, families = scrape(server.url)  # during the run
            check_names_and_types(families)
            if kind != "aio":  # the threaded client is read under its lock; the socket
                check_identities(families)  # client cannot step while the test scrapes
            assert value(families, "kraken_ws_book_resyncs_total", reason="checksum") >= 1
            assert value(families, "kraken_ws_checksum_failures_total", channel="book") >= 1
            assert value(families, "kraken_ws_subscriptions", status="active") == 3
            assert value(families, "kraken_ws_events_dropped_total", reason="oldest") >= 1
            assert value(families, "kraken_ws_simulator_faults_total", fault="Drop") == 1
            assert value(families, "kraken_ws_simulator_closes_total", code="1006") == 1
            labelled = samples(families, "kraken_ws_symbol_updates_total")
            assert len({s.labels["symbol"] for s in labelled}) == 1  # max_symbols=1
            assert value(families, "kraken_ws_symbol_updates_omitted_total") > 0
            assert value(families, "kraken_ws_last_ping_round_trip_seconds") > 0
            assert 'endpoint="' + config.endpoint + '"' in text
            client.close()
            _, families = scrape(server.url)  # quiescent: exact
            check_names_and_types(families)
            check_identities(families)
            check_against_stats(families, client)
            assert value(families, "kraken_ws_connection_state", state="closed") == 1
            registration.unregister()
            registration.unregister()  # idempotent
            _, families = scrape(server.url)
            assert "kraken_ws_received_messages" not in families
            assert "kraken_ws_simulator_open_connections" in families
    finally:
        dispose(client)


def test_a_callback_only_client_counts_what_its_callbacks_were_handed(
    kind: str, sim: SimThread
) -> None:
    client = open_client(kind, sim.client_config(reconnect=FAST), buffer_events=False)
    seen: dict[str, int] = {}

    def count(event: Any) -> None:
        seen[type(event).__name__] = seen.get(type(event).__name__, 0) + 1

    client.on(None, count)
    registry = CollectorRegistry()
    try:
        with client.metrics(registry):
            client.start()
            client.subscribe("trade", "BTC/USD", timeout=10)
            until(client, lambda: seen.get("Trade", 0) >= 3)
            client.close()
            _, families = scrape_registry(registry)
            for name, count_ in seen.items():
                assert value(families, "kraken_ws_events_received_total", type=name) == count_
                assert value(families, "kraken_ws_events_delivered_total", type=name) == count_
            assert client.stats.received == 0  # stats count the buffer, which there is not
            assert value(families, "kraken_ws_received_messages_total") == client.stats.frames_in
        assert "kraken_ws_received_messages" not in scrape_registry(registry)[1]
    finally:
        dispose(client)


def scrape_registry(registry: CollectorRegistry) -> tuple[str, Families]:
    with serve_metrics(registry) as server:
        return scrape(server.url)


# --------------------------------------------------------------------------- registration


def test_clients_share_a_registry_by_endpoint(sim: SimThread) -> None:
    registry = CollectorRegistry()
    public = ThreadedClient(sim.client_config())
    private = ThreadedClient(sim.client_config(), private=True)
    other = ThreadedClient(sim.client_config())
    first = public.metrics(registry)
    second = private.metrics(registry)
    assert first.collector is second.collector
    with pytest.raises(ValueError, match="already registered with this registry"):
        other.metrics(registry)
    _, families = scrape_registry(registry)
    endpoints = {s.labels["endpoint"] for s in samples(families, "kraken_ws_connection_state")}
    assert endpoints == {sim.server.url, sim.server.auth_url}
    first.unregister()
    assert (
        registry.get_sample_value(
            "kraken_ws_connection_state", {"endpoint": sim.server.auth_url, "state": "disconnected"}
        )
        == 1.0
    )
    second.unregister()
    assert (
        registry.get_sample_value(
            "kraken_ws_connection_state", {"endpoint": sim.server.auth_url, "state": "disconnected"}
        )
        is None
    )
    with other.metrics(registry) as third:  # the registry is free again
        assert third.registry is registry
        assert other.protocol.counters.counting  # registering turned counting on


def test_the_default_registry_and_bad_arguments(sim: SimThread) -> None:
    client = ThreadedClient(sim.client_config())
    with pytest.raises(ValueError, match="max_symbols must be an int >= 1"):
        client.metrics(symbol_labels=True, max_symbols=0)
    with client.metrics() as registration:
        assert registration.registry is REGISTRY
        assert (
            REGISTRY.get_sample_value("kraken_ws_buffered_events", {"endpoint": sim.server.url})
            == 0.0
        )
    assert (
        REGISTRY.get_sample_value("kraken_ws_buffered_events", {"endpoint": sim.server.url}) is None
    )


def test_metric_names_follow_the_conventions() -> None:
    names = [spec.name for spec in (*CLIENT_METRICS, *SIMULATOR_METRICS)]
    families = {name.removesuffix("_total") for name in names}  # a counter's family name
    assert len(families) == len(names)
    for spec in (*CLIENT_METRICS, *SIMULATOR_METRICS):
        assert spec.name.startswith("kraken_ws_"), spec.name
        assert spec.type in ("counter", "gauge", "summary", "histogram")
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        assert "endpoint" not in spec.labels
        if "symbol" in spec.labels:  # opt-in, capped
            assert spec.name == "kraken_ws_symbol_updates_total"
        assert not re.search(r"(millis|micro|ms_|_kb|seconds_total)", spec.name), spec.name
    for spec in CLIENT_METRICS:
        if "latency" in spec.name or "round_trip" in spec.name:
            assert spec.name.endswith("_seconds"), spec.name


def test_docs_list_every_metric() -> None:
    text = (REPO / "docs" / "metrics.md").read_text()
    rows = re.findall(r"^\| `(kraken_ws_\w+)` \| (\w+) \| ([^|]*) \|", text, re.M)
    documented = {name: (kind, labels.strip()) for name, kind, labels in rows}
    for spec in (*CLIENT_METRICS, *SIMULATOR_METRICS):
        assert spec.name in documented, spec.name
        kind, labels = documented[spec.name]
        assert kind == spec.type, spec.name
        listed = re.findall(r"`(\w+)`", labels)
        expected = [*(("endpoint",) if spec in CLIENT_METRICS else ()), *spec.labels]
        assert listed == expected, spec.name
    assert len(documented) == len(CLIENT_METRICS) + len(SIMULATOR_METRICS)


# --------------------------------------------------------------------------- latency buckets


def test_latency_buckets_are_10_us_to_10_s_by_1_2_5_5() -> None:
    assert LATENCY_BUCKETS[0] == 1e-5 and LATENCY_BUCKETS[-1] == 10.0
    assert len(LATENCY_BUCKETS) == 19
    for low, high in itertools.pairwise(LATENCY_BUCKETS):
        assert high / low in (2.5, 2.0)
    buckets, total = latency_buckets(LatencyHistogram())
    assert [count for _, count in buckets] == [0.0] * 20 and total == 0.0
    assert buckets[0][0] == "1e-05" and buckets[-1][0] == "+Inf"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(1e-7, 200.0),
            st.floats(-1e-3, 1e-3),
            st.sampled_from([*LATENCY_BUCKETS, 0.0, 128.0, 1000.0]),
        ),
        max_size=60,
    )
)
def test_latency_buckets_are_off_only_within_the_histograms_error(values: list[float]) -> None:
    histogram = LatencyHistogram()
    for v in values:
        histogram.record(v)
    buckets, total = latency_buckets(histogram)
    error = histogram.relative_error
    assert buckets[-1][1] == len(values)
    for (_, count), bound in zip(buckets, LATENCY_BUCKETS, strict=False):
        surely_in = sum(1 for v in values if v <= bound * (1 - error))
        maybe_in = sum(1 for v in values if v <= bound * (1 + error))
        assert surely_in <= count <= maybe_in, (bound, count)
    in_range = [v for v in values if histogram.lowest <= v < histogram.highest]
    if len(in_range) == len(values):
        assert math.isclose(total, sum(values), rel_tol=error, abs_tol=1e-12)


# --------------------------------------------------------------------------- the command line


def metrics_url(stderr_line: str) -> str:
    match = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", stderr_line)
    assert match, stderr_line
    return match.group(1)


def test_demo_serves_metrics_on_the_port_it_prints() -> None:
    with cli_process("demo", "--duration", "3", "--metrics-port", "0", limit=30) as process:
        assert process.stderr is not None
        url = metrics_url(process.stderr.readline())
        deadline = time.monotonic() + 10
        while True:
            _, families = scrape(url)
            # Served from the start; the client's metrics come once it is made.
            registered = "kraken_ws_events_received" in families
            if registered and value(families, "kraken_ws_events_received_total", type="BookUpdate"):
                break
            assert time.monotonic() < deadline, "no book update within 10 s"
            time.sleep(0.2)
        check_names_and_types(families)
        assert value(families, "kraken_ws_connection_state", state="subscribed") == 1
        assert value(families, "kraken_ws_subscriptions", status="active") == 3
        assert value(families, "kraken_ws_simulator_open_connections", host="public") == 1
        assert "process_cpu_seconds" in families  # the process metrics come along
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "summary: BTC/USD" in out and "Traceback" not in err
    with pytest.raises(OSError):  # served only while the command runs
        scrape(url)


def test_serve_exports_the_simulators_metrics_until_stopped() -> None:
    with cli_process("serve", "--port", "0", "--metrics-port", "0", limit=30) as process:
        assert process.stderr is not None and process.stdout is not None
        url = metrics_url(process.stderr.readline())
        listening = process.stdout.readline()
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)", listening)
        assert port, listening
        client = ThreadedClient(
            ClientConfig(endpoint=f"ws://127.0.0.1:{port.group(1)}/v2", reconnect=FAST)
        )
        with client:
            client.subscribe("trade", "BTC/USD", timeout=10)
        _, families = scrape(url)
        check_names_and_types_of(families, SIMULATOR_METRICS)
        assert value(families, "kraken_ws_simulator_connections_total", host="public") == 1
        assert value(families, "kraken_ws_simulator_received_messages_total") >= 1
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 130 and "Traceback" not in err


def check_names_and_types_of(families: Families, specs: Any) -> None:
    for spec in specs:
        name = spec.name.removesuffix("_total")
        assert families[name].type == spec.type, spec.name


@pytest.mark.parametrize("command", ["demo", "stream BTC/USD", "book BTC/USD", "serve"])
def test_every_live_command_takes_the_flag(command: str) -> None:
    args = cli.build_parser().parse_args([*command.split(), "--metrics-port", "9108"])
    assert args.metrics_port == 9108


def test_a_busy_metrics_port_is_a_clear_failure(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["demo", "--duration", "1", "--metrics-port", str(port)])
    assert code == 1
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in capsys.readouterr().err


WITHOUT_EXTRA = "import sys; sys.modules['prometheus_client'] = None; "


def test_without_the_extra_the_flag_is_a_usage_error_naming_it() -> None:
    code = WITHOUT_EXTRA + (
        "from kraken_transports.cli import main; sys.exit(main(['demo', '--metrics-port', '0']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert f"argument --metrics-port: {INSTALL_HINT}" in done.stderr
    assert 'pip install "kraken-ws-sdk[metrics]"' in done.stderr


def test_without_the_extra_nothing_imports_it_and_metrics_says_what_to_install() -> None:
    code = WITHOUT_EXTRA + (
        "import kraken_transports, kraken_transports.cli\n"
        "from kraken_transports import ThreadedClient\n"
        "assert 'kraken_transports.metrics' not in sys.modules\n"
        "try:\n"
        "    ThreadedClient().metrics()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == INSTALL_HINT


def test_nothing_imports_prometheus_client_unless_asked() -> None:
    code = (
        "import sys, kraken_transports, kraken_transports.cli, kraken_transports.simserver\n"
        "from kraken_transports import AsyncClient, SocketClient, ThreadedClient\n"
        "print(sorted(m for m in sys.modules if m.startswith('prometheus')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_trade_and_book_events_have_their_type_label(sim: SimThread) -> None:
    """Event type labels are the class names a user filters on."""
    client = ThreadedClient(sim.client_config(reconnect=FAST))
    registry = CollectorRegistry()

    def seen(kind: type) -> float:
        labels = {"endpoint": sim.server.url, "type": kind.__name__}
        return registry.get_sample_value("kraken_ws_events_received_total", labels) or 0.0

    with client.metrics(registry), client:
        client.subscribe("book", "BTC/USD", depth=10, timeout=10)
        client.subscribe("trade", "BTC/USD", timeout=10)
        until(client, lambda: seen(BookUpdate) > 0 and seen(Trade) > 0)


def test_the_simulator_counts_token_requests_and_clients_by_host(sim: SimThread) -> None:
    registry = CollectorRegistry()
    register_simulator(sim.server, registry)
    with ThreadedClient(sim.client_config(reconnect=FAST), private=True) as client:
        client.wait_until("subscribed", timeout=10)
    _, families = scrape_registry(registry)
    assert value(families, "kraken_ws_simulator_token_requests_total", status="200") == 1
    assert value(families, "kraken_ws_simulator_connections_total", host="auth") == 1
    assert value(families, "kraken_ws_simulator_sent_messages_total", host="auth") >= 1
