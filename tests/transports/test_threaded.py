"""kraken_transports.threaded: the background-thread client against loopback peers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest
from simthread import RawServer, ServerConn, SimThread, blackhole, closed_port_url

from kraken_proto import (
    OHLC,
    BackpressureConfig,
    BookNotLiveError,
    BookUpdate,
    ClientConfig,
    ConnectionState,
    DropPolicy,
    Event,
    KrakenConnectionError,
    LocalProtocolError,
    ReconnectConfig,
    StateChanged,
    Subscribed,
    SubscriptionError,
    SubscriptionResult,
    Ticker,
    Trade,
)
from kraken_proto.events import Dropped
from kraken_proto.simulator import Drop, Stall
from kraken_transports.threaded import ThreadedClient

SYMBOLS = ["BTC/USD", "ETH/USD"]
FAST = ReconnectConfig(initial_delay=0.05, jitter=0.0)


def make_config(url: str, **overrides: object) -> ClientConfig:
    options: dict[str, object] = {"endpoint": url, "reconnect": FAST, "ping_interval": None}
    options.update(overrides)
    return ClientConfig(**options)  # type: ignore[arg-type]


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kraken")]


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=11) as server:
        yield server


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    assert io_threads() == []


def test_streams_and_subscribes_from_the_calling_thread() -> None:
    callback_threads: set[str] = set()
    verified: list[bool] = []
    # A fast market of its own (tick_rate 100, not the tests' default 60): two of every event
    # kind come sooner.
    with SimThread(seed=11, tick_rate=100) as fast, ThreadedClient(make_config(fast.url)) as client:

        def on_book(event: BookUpdate) -> None:
            callback_threads.add(threading.current_thread().name)
            book = client.book(event.symbol)  # safe here: callbacks run on the IO thread
            assert book is not None
            verified.append(book.checksum() == event.checksum)

        client.on(BookUpdate, on_book)
        acks = client.subscribe("book", SYMBOLS, depth=10)
        assert [(a.channel, a.symbol, a.result["depth"]) for a in acks] == [
            ("book", "BTC/USD", 10),
            ("book", "ETH/USD", 10),
        ]
        for channel, params in (("ticker", {}), ("trade", {}), ("ohlc", {"interval": 5})):
            acks = client.subscribe(channel, SYMBOLS, **params)
            assert [(a.channel, a.symbol) for a in acks] == [(channel, s) for s in SYMBOLS]
        seen: Counter[tuple[str, str]] = Counter()
        kinds = (BookUpdate, Ticker, Trade, OHLC)
        for event in client.events(idle_timeout=3):
            if isinstance(event, kinds):
                seen[(type(event).__name__, event.symbol)] += 1
                if isinstance(event, Trade):
                    assert isinstance(event.price, Decimal) and event.qty > 0
                if isinstance(event, OHLC):
                    assert event.interval == 5 and event.low <= event.close <= event.high
            if all(seen[(k.__name__, s)] >= 2 for k in kinds for s in SYMBOLS):
                break
        assert all(seen[(k.__name__, s)] >= 2 for k in kinds for s in SYMBOLS), seen
        for symbol in SYMBOLS:
            snapshot = client.book_snapshot(symbol)
            assert snapshot is not None
            bids, asks = snapshot
            assert len(bids) == len(asks) == 10
            assert all(isinstance(level.price, Decimal) for level in bids + asks)
            assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)
            assert bids[0].price < asks[0].price
            top = client.book_snapshot(symbol, 3)
            assert top is not None and len(top[0]) == len(top[1]) == 3
        assert client.book_snapshot("SOL/USD") is None
        assert client.state is ConnectionState.SUBSCRIBED
        assert {(i.channel, i.symbol) for i in client.subscriptions.active} == {
            (c, s) for c in ("book", "ticker", "trade", "ohlc") for s in SYMBOLS
        }
    assert callback_threads == {"kraken-ws"}
    assert verified and all(verified)
    assert client.state is ConnectionState.CLOSED


def test_concurrent_subscribes_and_a_refusal(sim: SimThread) -> None:
    symbols = ["BTC/USD", "ETH/USD", "XRP/USD", "SOL/USD", "ADA/USD", "DOT/USD"]
    results: dict[str, list[str | None]] = {}
    errors: list[BaseException] = []

    def worker(symbol: str) -> None:
        try:
            results[symbol] = [a.symbol for a in client.subscribe("ticker", symbol, timeout=5)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    with ThreadedClient(make_config(sim.url)) as client:
        threads = [threading.Thread(target=worker, args=(s,)) for s in symbols]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert errors == []
        assert results == {s: [s] for s in symbols}
        with pytest.raises(SubscriptionError) as caught:
            client.subscribe("trade", ["BTC/USD", "XBT/USD"], timeout=5)
        assert (caught.value.symbol, caught.value.error) == (
            "XBT/USD",
            "Currency pair not supported XBT/USD",
        )
        with pytest.raises(LocalProtocolError, match="book depth"):
            client.subscribe("book", "BTC/USD", depth=7)
        acks = client.unsubscribe("ticker", "SOL/USD", timeout=5)
        assert [(type(a).__name__, a.symbol) for a in acks] == [("Unsubscribed", "SOL/USD")]
        assert sorted(i.symbol or "" for i in client.subscriptions.active) == sorted(
            [*(s for s in symbols if s != "SOL/USD"), "BTC/USD"]
        )


def test_callbacks_may_subscribe_without_waiting(sim: SimThread) -> None:
    outcomes: list[str] = []
    with ThreadedClient(make_config(sim.url), buffer_events=False) as client:

        def on_ack(event: Subscribed) -> None:
            if event.channel != "ticker":
                return
            try:
                client.subscribe("trade", event.symbol, wait=True)
            except LocalProtocolError as exc:
                outcomes.append(str(exc))
            client.subscribe("trade", event.symbol, wait=False)
            outcomes.append("queued")

        client.on(Subscribed, on_ack)
        client.subscribe("ticker", "ETH/USD")
        client.wait_until(ConnectionState.SUBSCRIBED, timeout=5)
        assert _wait(lambda: ("trade", "ETH/USD") in _active(client))
        with pytest.raises(LocalProtocolError, match="buffer_events=False"):
            client.get(0.1)
    assert outcomes == [
        "subscribe(wait=True) cannot run inside a callback; pass wait=False",
        "queued",
    ]


def test_drop_reconnects_and_events_report_it(sim: SimThread) -> None:
    with ThreadedClient(make_config(sim.url)) as client:
        client.subscribe("book", SYMBOLS, depth=10)
        client.wait_until(ConnectionState.SUBSCRIBED, timeout=5)
        sim.inject(Drop())
        changes: list[str] = []
        snapshots: set[str] = set()
        for event in client.events(idle_timeout=3):
            if isinstance(event, StateChanged):
                changes.append(event.new)
            if isinstance(event, BookUpdate) and event.snapshot and "degraded" in changes:
                snapshots.add(event.symbol)
            if snapshots == set(SYMBOLS) and changes[-1:] == ["subscribed"]:
                break
        assert changes[-4:] == ["degraded", "connecting", "subscribing", "subscribed"]
        assert client.stats.reconnects == 1


@pytest.mark.parametrize(
    "situation", ["blackhole", "subscribed", "stalled", "unresponsive", "degraded"]
)
def test_close_returns_within_a_second_from_any_state(situation: str, sim: SimThread) -> None:
    def silent_after_upgrade(conn: ServerConn) -> None:
        conn.handshake()
        time.sleep(1.2)  # reads nothing, answers nothing (not even the close frame)

    with blackhole() as hole, RawServer(silent_after_upgrade) as raw:
        if situation == "blackhole":
            client = ThreadedClient(make_config(hole))
            client.start()
            expected = ConnectionState.CONNECTING
        elif situation == "degraded":
            config = make_config(
                closed_port_url(), reconnect=ReconnectConfig(initial_delay=30.0, max_delay=30.0)
            )
            client = ThreadedClient(config)
            client.start()
            client.wait_until(ConnectionState.DEGRADED, timeout=5)
            expected = ConnectionState.DEGRADED
        elif situation == "unresponsive":
            client = ThreadedClient(make_config(raw.url))
            client.start()
            client.wait_until(ConnectionState.SUBSCRIBED, timeout=5)
            expected = ConnectionState.SUBSCRIBED
        else:
            client = ThreadedClient(make_config(sim.url, stale_timeout=30.0))
            client.start()
            client.subscribe("book", SYMBOLS, depth=10)
            if situation == "stalled":
                sim.inject(Stall(None))
            expected = ConnectionState.SUBSCRIBED
        time.sleep(0.1)
        assert client.state is expected
        thread = io_threads()[0]
        started = time.monotonic()
        client.close()
        elapsed = time.monotonic() - started
        assert elapsed < 2.5, f"close() took {elapsed:.2f} s from {situation}"  # about 1 s
        assert not thread.is_alive()
        assert client.state is ConnectionState.CLOSED
        client.close()  # idempotent
        events = list(client.events(idle_timeout=1))  # what was queued, then the end
        assert isinstance(events[-1], StateChanged) and events[-1].new == "closed"
        assert client.get(timeout=1) is None
        with pytest.raises(KrakenConnectionError, match="refused: the client is closed"):
            client.subscribe("ticker", "BTC/USD")


def test_pending_subscribe_fails_when_the_client_closes() -> None:
    with blackhole() as hole:
        client = ThreadedClient(make_config(hole))
        client.start()
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                client.subscribe("ticker", "BTC/USD", timeout=5)
            except BaseException as exc:  # checked below
                errors.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.1)
        client.close()
        thread.join(2)
        assert len(errors) == 1 and isinstance(errors[0], KrakenConnectionError)


def test_terminal_close_ends_iteration() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.close(1008, "policy violation")

    with RawServer(script) as server, ThreadedClient(make_config(server.url)) as client:
        events = list(client.events(idle_timeout=5))
        assert [e.new for e in events if isinstance(e, StateChanged)] == [
            "connecting",
            "subscribing",
            "subscribed",
            "closed",
        ]
        assert client.get(timeout=5) is None  # at once: closed and drained
        with pytest.raises(KrakenConnectionError):
            client.wait_until(ConnectionState.SUBSCRIBED, timeout=1)
        assert server.connections == 1


def test_backpressure_accounting_with_a_slow_consumer(sim: SimThread) -> None:
    config = make_config(
        sim.url,
        backpressure=BackpressureConfig(max_queue_depth=8, drop_policy=DropPolicy.OLDEST),
    )
    consumed: list[Event] = []
    with ThreadedClient(config) as client:
        client.subscribe("book", SYMBOLS, depth=10)
        client.subscribe("trade", SYMBOLS)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            event = client.get(timeout=0.5)
            if event is not None:
                consumed.append(event)
            time.sleep(0.05)  # slow consumer
            stats = client.stats
            assert (
                stats.received == stats.delivered + stats.dropped + stats.coalesced + stats.queued
            )
    final = client.stats
    consumed.extend(client.events(idle_timeout=1))  # drain what is left after the close
    drained = client.stats
    assert final.dropped > 0 and final.coalesced == 0
    assert final.received == final.delivered + final.dropped + final.queued
    assert drained.queued == 0 and drained.delivered == final.delivered + final.queued
    reported = sum(e.dropped for e in consumed if isinstance(e, Dropped))
    delivered = sum(1 for e in consumed if not isinstance(e, Dropped))
    assert (reported, delivered) == (drained.dropped, drained.delivered)


def test_not_started_and_not_thread_blocking_helpers() -> None:
    client = ThreadedClient(make_config(closed_port_url()))
    with pytest.raises(LocalProtocolError, match="needs a started client"):
        client.subscribe("ticker", "BTC/USD")
    assert client.subscribe("ticker", "BTC/USD", wait=False) == []
    assert [i.symbol for i in client.subscriptions.pending] == ["BTC/USD"]
    with pytest.raises(LocalProtocolError, match="needs a started client"):
        client.get(0)
    client.close()
    assert client.state is ConnectionState.CLOSED
    settled = client.get(0)  # the subscribe call, settled by the close
    assert isinstance(settled, SubscriptionResult) and not settled.ok
    assert [f.error for f in settled.failures] == ["closed by the client"]
    closed = client.get(0)
    assert isinstance(closed, StateChanged) and (closed.old, closed.new) == (
        "disconnected",
        "closed",
    )
    assert client.get(0) is None
    with (
        pytest.raises(BookNotLiveError, match="awaiting_snapshot"),
        ThreadedClient(make_config(closed_port_url())) as other,
    ):
        other.subscribe("book", "BTC/USD", wait=False)
        other.book_snapshot("BTC/USD")


# --------------------------------------------------------------------------- helpers


def _active(client: ThreadedClient) -> set[tuple[str, str | None]]:
    return {(i.channel, i.symbol) for i in client.subscriptions.active}


def _wait(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_slow_callbacks_starve_neither_calls_nor_close() -> None:
    # Issue 9, item 2: the IO thread held the client's lock for a whole step, and a step
    # could read 1 MiB of backlog and run the callbacks of every frame in it, so close()
    # (and subscribe) waited for minutes once slow callbacks fell behind the stream.
    symbols = ["BTC/USD", "ETH/USD", "XRP/USD", "SOL/USD"]
    slow_calls: list[float] = []
    behind = threading.Event()

    def slow(event: BookUpdate) -> None:
        slow_calls.append(time.monotonic())
        if len(slow_calls) == 30:  # 0.6 s of callbacks: the stream is far ahead by now
            behind.set()
        time.sleep(0.02)  # a slow consumer: the stream is ~400 updates/s

    with SimThread(seed=5, tick_rate=100) as fast:
        client = ThreadedClient(make_config(fast.url), buffer_events=False)
        client.on(BookUpdate, slow)
        client.start()
        acks = client.subscribe("book", symbols, depth=10, timeout=10)
        assert [a.symbol for a in acks] == symbols
        acks = client.subscribe("ticker", symbols, timeout=10)  # while updates pile up
        assert [(a.channel, a.symbol) for a in acks] == [("ticker", s) for s in symbols]
        assert behind.wait(10)
        started = time.monotonic()  # far behind now: a call still goes out at once
        assert client.subscribe("trade", symbols, wait=False) == []
        assert time.monotonic() - started < 3.0
        assert {i.symbol for i in client.subscriptions.pending if i.channel == "trade"} == set(
            symbols
        )
        thread = io_threads()[0]
        started = time.monotonic()
        client.close()
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"close() took {elapsed:.1f} s with slow callbacks"
        assert not thread.is_alive()
        assert client.state is ConnectionState.CLOSED


def _lock_free(client: ThreadedClient) -> bool:
    """Whether another thread could take the client's lock right now (never blocks)."""
    free: list[bool] = []

    def probe() -> None:
        taken = client._lock.acquire(blocking=False)  # type: ignore[attr-defined]
        if taken:
            client._lock.release()  # type: ignore[attr-defined]
        free.append(taken)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return free[0]


def test_the_lock_is_held_while_a_message_is_handled_and_let_go_for_callbacks(
    sim: SimThread,
) -> None:
    in_hook: list[bool] = []
    in_callback: list[bool] = []

    def hook(direction: str, text: str | bytes, now: float) -> None:
        if direction == "in" and len(in_hook) < 20:
            in_hook.append(_lock_free(client))

    client = ThreadedClient(make_config(sim.url), frame_hook=hook)

    def on_book(event: BookUpdate) -> None:
        if len(in_callback) < 20:
            in_callback.append(_lock_free(client))

    client.on(BookUpdate, on_book)
    with client:
        client.subscribe("book", SYMBOLS, depth=10)
        assert _wait(lambda: len(in_hook) == len(in_callback) == 20)
    assert threading.current_thread() is threading.main_thread()
    assert in_hook == [False] * 20  # the IO thread feeds the protocol under the lock
    assert in_callback == [True] * 20  # and lets it go while user code runs


def test_a_sleeping_reader_is_woken_once_per_batch_not_per_event() -> None:
    counts = Counter[str]()

    class Counting(ThreadedClient):
        def _pause(self, timeout: float | None) -> None:
            counts["sleeps"] += 1
            super()._pause(timeout)

        def _wake_readers(self) -> None:
            counts["wakes"] += 1
            super()._wake_readers()

    # A fast market of its own (100 book events a second per symbol, not 20): the same 300
    # events in a fifth of the time, in bigger batches, which is what the count is about.
    with SimThread(seed=11, tick_rate=100) as fast, Counting(make_config(fast.url)) as client:
        client.subscribe("book", SYMBOLS, depth=10)
        client.subscribe("trade", SYMBOLS)
        for _event in client.events(idle_timeout=3):
            counts["events"] += 1
            if counts["events"] == 300:
                break
    # Each wake follows a sleep (readers and blocked callers alike), plus the first one
    # and the one at the end: never one per event.
    assert counts["wakes"] <= counts["sleeps"] + 2
    assert counts["events"] == 300


def test_close_from_a_callback_stops_the_client(sim: SimThread) -> None:
    client = ThreadedClient(make_config(sim.url))

    def on_book(event: BookUpdate) -> None:
        client.close()  # on the IO thread: closes without waiting for itself

    client.on(BookUpdate, on_book)
    client.start()
    client.subscribe("book", SYMBOLS, depth=10, wait=False)
    events = list(client.events(idle_timeout=5))  # ends: closed and drained
    assert [e.new for e in events if isinstance(e, StateChanged)][-1] == "closed"
    assert _wait(lambda: not io_threads())
    assert client.state is ConnectionState.CLOSED and not client.running
    client.close()  # idempotent, joins the ended thread
