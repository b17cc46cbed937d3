"""kraken_transports.sockets: wire-level behaviour against a scripted loopback server."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from clients import KINDS, dispose, open_client, until, unwrap
from simthread import (
    CERT_PEM,
    STATUS_FRAME,
    RawServer,
    ServerConn,
    SimThread,
    blackhole,
    closed_port_url,
    tls_server_context,
    wait_for,
)
from wsproto.events import CloseConnection, Pong
from wsproto.events import TextMessage as WsText

from kraken_proto import (
    OHLC,
    BookResync,
    BookUpdate,
    ClientConfig,
    ConnectionState,
    Emit,
    Event,
    KrakenProtocol,
    LocalProtocolError,
    ProtocolError,
    ReconnectConfig,
    StateChanged,
    Subscribed,
    SystemStatus,
    Ticker,
    Trade,
)
from kraken_proto.simulator import CorruptChecksum, Drop, MalformedFrame, Stall, TruncatedFrame
from kraken_proto.simulator.faults import MALFORMED_TEXT
from kraken_transports.driver import Driver
from kraken_transports.sockets import SocketClient, SocketTransport, Waker

FAST = ReconnectConfig(initial_delay=0.05, jitter=0.0)
HEARTBEAT = '{"channel":"heartbeat"}'
PROMPT = 2.5  # what returns "at once" or "within about 1 s": a loose ceiling


def make_config(url: str, **overrides: object) -> ClientConfig:
    options: dict[str, object] = {"endpoint": url, "reconnect": FAST, "ping_interval": None}
    options.update(overrides)
    return ClientConfig(**options)  # type: ignore[arg-type]


def drive(
    client: SocketClient, until: Callable[[list[Event]], bool], timeout: float = 5.0
) -> list[Event]:
    """Step the client and collect events until ``until(events)``."""
    events: list[Event] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client.step(0.02)
        while (event := client.poll()) is not None:
            events.append(event)
        if until(events):
            return events
    raise AssertionError(f"timed out in state {client.state}; last events: {events[-8:]}")


def states(events: list[Event]) -> list[str]:
    return [e.new for e in events if isinstance(e, StateChanged)]


def became(state: str) -> Callable[[list[Event]], bool]:
    return lambda events: state in states(events)


def test_private_without_credentials_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="needs api_key and api_secret"):
        SocketClient(private=True)


def test_upgrade_request_ping_pong_and_client_close() -> None:
    pongs: list[bytes] = []
    closes: list[CloseConnection] = []

    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_ping(b"are you there")
        pong = conn.next_event(Pong)
        assert isinstance(pong, Pong)
        pongs.append(bytes(pong.payload))
        reply = conn.answer_close()
        if reply is not None:
            closes.append(reply)

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.connect()
        drive(client, became("subscribed"))
        drive(client, lambda _: bool(pongs))
        assert pongs == [b"are you there"]
        request = server.conns[0].request
        assert request is not None
        assert request.host == f"127.0.0.1:{server.port}"
        assert request.target == "/v2?x=1"
        started = time.monotonic()
        client.close(timeout=1.0)
        assert time.monotonic() - started < PROMPT
        assert client.state is ConnectionState.CLOSED
        assert client.fileno() == -1
        assert wait_for(lambda: bool(closes))
        assert (closes[0].code, closes[0].reason) == (1000, "closed by the client")
        client.close()  # idempotent


def test_fragmented_message_is_reassembled() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_text(STATUS_FRAME, fragments=5)
        conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.connect()
        events = drive(client, lambda ev: any(isinstance(e, SystemStatus) for e in ev))
        status = next(e for e in events if isinstance(e, SystemStatus))
        assert (status.system, status.version, status.connection_id) == (
            "online",
            "2.0.10",
            7204881492680171915,
        )
        assert client.stats.frames_in == 1
        assert not any(isinstance(e, ProtocolError) for e in events)
        client.close()


def test_oversized_message_is_discarded_and_reported() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_text("x" * 5000, fragments=10)
        conn.send_text("y" * 300_000)  # one frame: wsproto hands it over in pieces
        conn.send_text(STATUS_FRAME)
        conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url, max_message_size=2048))
        client.connect()
        events = drive(client, lambda ev: any(isinstance(e, SystemStatus) for e in ev))
        errors = [e for e in events if isinstance(e, ProtocolError)]
        assert [(e.error, e.payload) for e in errors] == [
            ("message of 5000 bytes exceeds max_message_size (2048); discarded", "x" * 200),
            ("message of 300000 bytes exceeds max_message_size (2048); discarded", "y" * 200),
        ]
        assert client.stats.frames_in == 3
        assert client.state is ConnectionState.SUBSCRIBED  # the stream carries on
        client.close()


def test_server_close_frame_reports_its_code_and_reconnects() -> None:
    replies: list[CloseConnection | None] = []

    def script(conn: ServerConn) -> None:
        conn.handshake()
        if len(replies) == 0:
            replies.append(conn.close(1001, "maintenance"))
        else:
            conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.connect()
        events = drive(client, lambda ev: states(ev).count("subscribed") == 2)
        changes = [e for e in events if isinstance(e, StateChanged)]
        assert [c.new for c in changes] == [
            "connecting",
            "subscribing",
            "subscribed",
            "degraded",
            "connecting",
            "subscribing",
            "subscribed",
        ]
        degraded = changes[3]
        assert degraded.reason == "server closed the connection with code 1001"
        assert (degraded.retry, degraded.delay) == (1, 0.05)
        assert server.connections == 2
        reply = replies[0]
        assert reply is not None and reply.code == 1001  # the close frame was echoed
        assert client.stats.reconnects == 1
        client.close()


def test_close_1008_is_terminal() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.close(1008, "policy violation")

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.start()
        events = list(client.events(idle_timeout=5))  # ends once CLOSED and drained
        changes = [e for e in events if isinstance(e, StateChanged)]
        assert [c.new for c in changes] == ["connecting", "subscribing", "subscribed", "closed"]
        assert "code 1008" in changes[-1].reason and "not retrying" in changes[-1].reason
        time.sleep(0.2)  # several reconnect delays: nothing may try again
        client.step(0.05)
        assert server.connections == 1
        assert client.state is ConnectionState.CLOSED
        client.run()  # returns at once: closed
        client.close()


def test_abrupt_eof_is_a_connection_loss() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        if len(server.conns) == 1:
            conn.sock.close()  # no close frame
        else:
            conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.connect()
        events = drive(client, lambda ev: states(ev).count("subscribed") == 2)
        degraded = next(e for e in events if isinstance(e, StateChanged) and e.new == "degraded")
        assert degraded.reason == "connection dropped without a close frame (1006)"
        client.close()


def core_reason(exc: BaseException | None, close_code: int | None) -> str:
    """The reason the core gives for ``connection_lost(now, exc, close_code=...)`` on an open
    connection: what the asyncio driver passes it for a drop is ``(None, 1006)``."""
    proto = KrakenProtocol(make_config("ws://127.0.0.1:9/v2"))
    proto.connect(0.0)
    proto.connection_made(0.0)
    actions = proto.connection_lost(0.1, exc, close_code=close_code)
    changes = [a.event for a in actions if isinstance(a, Emit)]
    return next(e.reason for e in changes if isinstance(e, StateChanged))


def first_drop_reason(kind: str, script: Callable[[ServerConn], None]) -> str:
    """The reason of the first ``degraded`` state of a ``kind`` client of ``script``."""
    seen: list[str] = []
    with RawServer(script) as server:
        client = open_client(kind, make_config(server.url))
        unwrap(client).on(
            StateChanged, lambda e: seen.append(e.reason) if e.new == "degraded" else None
        )
        try:
            client.start()
            until(client, lambda: bool(seen), timeout=5)
        finally:
            dispose(client)
    return seen[0]


@pytest.mark.parametrize("ending", ["eof", "reset"])
def test_every_driver_words_a_drop_the_same(ending: str) -> None:
    # The server goes away without a close frame once the client has answered a ping
    # (its WebSocket is open): with a FIN, or with an RST (SO_LINGER 0).
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_ping(b"open?")
        assert conn.next_event(Pong) is not None
        if ending == "reset":
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

    reasons = {kind: first_drop_reason(kind, script) for kind in KINDS}
    assert reasons["sockets"] == reasons["aio"] == reasons["threaded"], reasons
    assert reasons["aio"] == core_reason(None, 1006)
    assert reasons["aio"] == "connection dropped without a close frame (1006)"


def test_socket_id_tells_a_new_socket_under_a_reused_number() -> None:
    # A loop that registers each socket once with an epoll/kqueue selector and re-registers
    # when socket_id changes; the number alone may stay the same across a reconnect.
    def script(conn: ServerConn) -> None:
        conn.handshake()
        if len(server.conns) == 1:
            conn.sock.close()  # the first connection drops; the client reconnects
        else:
            conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        assert (client.fileno(), client.socket_id) == (-1, 0)  # no socket yet
        client.start()
        selector = selectors.DefaultSelector()
        registered: tuple[int, int] = (-1, 0)  # (fileno, socket_id) registered now
        sockets: list[tuple[int, int]] = []
        events: list[Event] = []
        end = time.monotonic() + 5  # well inside the 10 s connect timeout
        while states(events).count("subscribed") < 2:
            assert time.monotonic() < end, (sockets, events)
            current = (client.fileno(), client.socket_id)
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.wants_write() else 0)
            if current != registered:
                if registered[0] >= 0:
                    selector.unregister(registered[0])
                if current[0] >= 0:
                    selector.register(current[0], mask)
                    sockets.append(current)
                registered = current
            elif current[0] >= 0 and selector.get_key(current[0]).events != mask:
                selector.modify(current[0], mask)
            deadline = client.next_deadline()
            timeout = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            if current[0] >= 0:
                selector.select(min(timeout, 1.0))
            else:
                time.sleep(min(timeout, 1.0))
            client.step()
            while (event := client.poll()) is not None:
                events.append(event)
        selector.close()
        ids = [socket_id for _, socket_id in sockets]
        assert ids == sorted(set(ids)) and len(ids) == 2 and ids[0] > 0, sockets
        client.close()
        assert (client.fileno(), client.socket_id) == (-1, 0)


def test_http_rejection_fails_the_connect() -> None:
    def script(conn: ServerConn) -> None:
        conn.reject(403, b"forbidden here")

    with RawServer(script) as server:
        config = make_config(server.url, reconnect=ReconnectConfig(max_attempts=0))
        client = SocketClient(config)
        client.connect()
        events = drive(client, became("closed"))
        closed = [e for e in events if isinstance(e, StateChanged)][-1]
        assert "rejected with HTTP 403: forbidden here" in closed.reason
        assert "gave up after 0 reconnect attempts" in closed.reason


def test_refused_tcp_connect_backs_off_then_gives_up() -> None:
    config = make_config(
        closed_port_url(), reconnect=ReconnectConfig(max_attempts=1, initial_delay=0.05, jitter=0.0)
    )
    client = SocketClient(config)
    client.connect()
    events = drive(client, became("closed"))
    changes = [e for e in events if isinstance(e, StateChanged)]
    assert [c.new for c in changes] == ["connecting", "degraded", "connecting", "closed"]
    assert "ECONNREFUSED" in changes[1].reason
    assert changes[1].delay == 0.05


def test_connect_to_a_blackhole_times_out_without_blocking() -> None:
    with blackhole() as url:
        client = SocketClient(make_config(url, timeout=2.0))
        client.connect()
        slowest = 0.0
        events: list[Event] = []
        end = time.monotonic() + 8
        while "degraded" not in states(events) and time.monotonic() < end:
            started = time.monotonic()
            client.step(0.0)
            slowest = max(slowest, time.monotonic() - started)
            while (event := client.poll()) is not None:
                events.append(event)
            time.sleep(0.01)
        degraded = next(e for e in events if isinstance(e, StateChanged) and e.new == "degraded")
        assert degraded.reason == "no connection within 2 s"
        assert slowest < 1.0  # a step that waited for the connect would take 2 s
        client.close()


def test_tls_with_verification_and_sni(tmp_path: Path) -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_text(STATUS_FRAME)
        conn.hold()

    with RawServer(script, tls=tls_server_context(tmp_path)) as server:
        # a host name (resolved off-thread) verified against the test CA
        url = f"wss://localhost:{server.port}/v2"
        trusted = ssl.create_default_context(cadata=CERT_PEM)
        client = SocketClient(make_config(url), ssl_context=trusted)
        client.connect()
        events = drive(client, lambda ev: any(isinstance(e, SystemStatus) for e in ev))
        assert "subscribed" in states(events)
        request = server.conns[0].request
        assert request is not None and request.host == f"localhost:{server.port}"
        client.close()

        # the default context does not trust a self-signed certificate
        config = make_config(url, reconnect=ReconnectConfig(max_attempts=0))
        untrusting = SocketClient(config)
        untrusting.connect()
        events = drive(untrusting, became("closed"))
        closed = [e for e in events if isinstance(e, StateChanged)][-1]
        assert "CERTIFICATE_VERIFY_FAILED" in closed.reason


def test_a_step_handles_a_bounded_number_of_messages() -> None:
    # Issue 9, item 2: one step used to read up to 16 x buffer_size bytes and handle every
    # message in them, so a backlog (and slow callbacks) could hold the loop for minutes.
    burst = 600
    go, sent = threading.Event(), threading.Event()

    def script(conn: ServerConn) -> None:
        conn.handshake()
        go.wait(5)
        conn.sock.sendall(b"".join(conn.ws.send(WsText(data=HEARTBEAT)) for _ in range(burst)))
        sent.set()
        conn.hold()

    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))
        client.connect()
        drive(client, became("subscribed"))
        go.set()
        assert sent.wait(5)
        per_step: list[int] = []
        while sum(per_step) < burst:
            before = client.stats.frames_in
            client.step(0.5)
            per_step.append(client.stats.frames_in - before)
            if sum(per_step) < burst and per_step[-1] == 256:
                deadline = client.next_deadline()  # work is left: step again at once
                assert deadline is not None and deadline <= time.monotonic()
        assert sum(per_step) == burst
        assert max(per_step) == 256
        client.close()


def test_step_is_not_reentrant_from_callbacks() -> None:
    def script(conn: ServerConn) -> None:
        conn.handshake()
        conn.send_text(STATUS_FRAME)
        conn.hold()

    errors: list[BaseException] = []
    with RawServer(script) as server:
        client = SocketClient(make_config(server.url))

        def callback(event: SystemStatus) -> None:
            try:
                client.subscribe("ticker", "BTC/USD", wait=True)
            except LocalProtocolError as exc:
                errors.append(exc)
            client.close()  # allowed: the running loop finishes the close

        client.on(SystemStatus, callback)
        client.run()
        assert client.state is ConnectionState.CLOSED
        assert len(errors) == 1 and "inside a callback" in str(errors[0])


# --------------------------------------------------------------------------- simulator

SYMBOLS = ["BTC/USD", "ETH/USD"]


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=7) as server:
        yield server


def subscribe_books(client: SocketClient, depth: int = 10) -> None:
    acks = client.subscribe("book", SYMBOLS, depth=depth, wait=True, timeout=5)
    assert [(a.channel, a.symbol, a.result["depth"]) for a in acks] == [
        ("book", "BTC/USD", depth),
        ("book", "ETH/USD", depth),
    ]


def snapshots(events: list[Event]) -> list[str]:
    return [e.symbol for e in events if isinstance(e, BookUpdate) and e.snapshot]


def test_streams_every_channel_in_a_caller_owned_selectors_loop(sim: SimThread) -> None:
    client = SocketClient(make_config(sim.url))
    verified: list[tuple[str, bool]] = []

    def check_book(event: BookUpdate) -> None:
        # callbacks see the book exactly as this update left it
        book = client.book(event.symbol)
        assert book is not None
        verified.append((event.symbol, book.checksum() == event.checksum))

    client.on(BookUpdate, check_book)
    client.connect()
    client.subscribe("book", SYMBOLS, depth=10, wait=False)  # own loop: never block in it
    client.subscribe("ticker", SYMBOLS, wait=False)
    client.subscribe("trade", SYMBOLS, wait=False)
    client.subscribe("ohlc", SYMBOLS, interval=1, wait=False)

    selector = selectors.DefaultSelector()
    events: list[Event] = []
    seen: Counter[tuple[str, str]] = Counter()
    registered = -1
    end = time.monotonic() + 5
    while time.monotonic() < end:
        fd = client.fileno()
        if registered >= 0:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(registered)
            registered = -1
        deadline = client.next_deadline()
        timeout = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
        if fd >= 0:
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.wants_write() else 0)
            selector.register(fd, mask)
            registered = fd
            selector.select(timeout)
        else:
            time.sleep(timeout)
        client.step()
        while (event := client.poll()) is not None:
            events.append(event)
            if isinstance(event, (BookUpdate, Ticker, Trade, OHLC)):
                seen[(type(event).__name__, event.symbol)] += 1
        if all(
            seen[(kind, s)] >= 3
            for kind in ("BookUpdate", "Ticker", "Trade", "OHLC")
            for s in SYMBOLS
        ):
            break
    selector.close()
    assert all(
        seen[(kind, s)] >= 3 for kind in ("BookUpdate", "Ticker", "Trade", "OHLC") for s in SYMBOLS
    ), seen

    acks = {(e.channel, e.symbol) for e in events if isinstance(e, Subscribed)}
    assert acks == {(c, s) for c in ("book", "ticker", "trade", "ohlc") for s in SYMBOLS}
    assert states(events) == ["connecting", "subscribing", "subscribed"]
    assert client.state is ConnectionState.SUBSCRIBED
    # every book message was checksum-verified against the maintained book
    assert verified and all(ok for _, ok in verified)
    assert {symbol for symbol, _ in verified} == set(SYMBOLS)
    assert snapshots(events) == SYMBOLS or sorted(snapshots(events)) == sorted(SYMBOLS)
    # exact numbers at each pair's precision (BTC/USD: 1 decimal, ETH/USD: 2)
    for event in events:
        if isinstance(event, BookUpdate):
            for level in event.bids + event.asks:
                assert isinstance(level.price, Decimal) and isinstance(level.qty, Decimal)
                exponent = {"BTC/USD": -1, "ETH/USD": -2}[event.symbol]
                assert level.price.as_tuple().exponent == exponent
                assert level.qty.as_tuple().exponent == -8
        elif isinstance(event, Ticker):
            assert isinstance(event.bid, Decimal) and event.bid < event.ask
        elif isinstance(event, Trade):
            assert isinstance(event.price, Decimal) and event.qty > 0
            assert event.side in ("buy", "sell")
        elif isinstance(event, OHLC):
            assert event.low <= event.open <= event.high and event.interval == 1
    for symbol in SYMBOLS:
        book = client.book(symbol)
        assert book is not None and book.is_live
        bids, asks = book.bids(), book.asks()
        assert len(bids) == len(asks) == 10
        assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)
        assert [a.price for a in asks] == sorted(a.price for a in asks)
        assert bids[0].price < asks[0].price
        assert book.spread() == asks[0].price - bids[0].price
    stats = client.stats
    assert stats.received == stats.delivered + stats.dropped + stats.coalesced + stats.queued
    assert stats.frames_out == 4 and stats.frames_in > 0
    client.close()


def test_blocking_run_with_callbacks_and_events(sim: SimThread) -> None:
    counts: Counter[str] = Counter()
    client = SocketClient(make_config(sim.url), buffer_events=False)
    client.on(None, lambda event: counts.update([type(event).__name__]))
    client.connect()
    client.subscribe("ticker", SYMBOLS, wait=True, timeout=5)
    client.run(until=lambda: counts["Ticker"] >= 4)
    assert counts["Subscribed"] == 2 and counts["Ticker"] >= 4
    client.close()
    assert client.state is ConnectionState.CLOSED

    with SocketClient(make_config(sim.url)) as blocking:  # __enter__ connects
        blocking.subscribe("trade", "BTC/USD", wait=True, timeout=5)
        trades = []
        for event in blocking:
            if isinstance(event, Trade):
                trades.append(event)
                if len(trades) == 5:
                    break
        assert {t.symbol for t in trades} == {"BTC/USD"}
        assert len({t.trade_id for t in trades}) == 5
    assert blocking.state is ConnectionState.CLOSED
    started = time.monotonic()
    rest = list(blocking.events(idle_timeout=5))  # what was still queued, then the end
    assert time.monotonic() - started < PROMPT  # not the idle timeout
    assert isinstance(rest[-1], StateChanged) and rest[-1].new == "closed"


def test_drop_reconnects_with_backoff_resubscribes_and_resnapshots(sim: SimThread) -> None:
    client = SocketClient(make_config(sim.url))
    client.connect()
    subscribe_books(client)
    client.subscribe("ticker", SYMBOLS, wait=True, timeout=5)
    drive(client, lambda ev: len(ev) > 10)
    sim.inject(Drop())
    events = drive(
        client, lambda ev: sorted(snapshots(ev)) == SYMBOLS and "subscribed" in states(ev)
    )
    changes = [e for e in events if isinstance(e, StateChanged)]
    assert [c.new for c in changes] == ["degraded", "connecting", "subscribing", "subscribed"]
    degraded, connecting = changes[0], changes[1]
    assert degraded.reason == "connection dropped without a close frame (1006)"
    assert (degraded.retry, degraded.delay) == (1, 0.05)
    assert connecting.received_at - degraded.received_at >= 0.05  # the backoff was honoured
    resubscribed = [(e.channel, e.symbol) for e in events if isinstance(e, Subscribed)]
    assert sorted(resubscribed) == sorted((c, s) for c in ("book", "ticker") for s in SYMBOLS)
    assert client.stats.reconnects == 1
    for symbol in SYMBOLS:
        book = client.book(symbol)
        assert book is not None and book.is_live
    client.close()


def test_stall_goes_stale_then_heals(sim: SimThread) -> None:
    client = SocketClient(make_config(sim.url, stale_timeout=0.4))
    client.connect()
    subscribe_books(client)
    drive(client, lambda ev: len(ev) > 5)
    stalled_at = time.monotonic()
    sim.inject(Stall(5.0))
    events = drive(
        client, lambda ev: sorted(snapshots(ev)) == SYMBOLS and "subscribed" in states(ev)
    )
    changes = [e for e in events if isinstance(e, StateChanged)]
    assert [c.new for c in changes] == ["degraded", "connecting", "subscribing", "subscribed"]
    assert changes[0].reason.startswith("stale: no message from Kraken for 0.")
    assert changes[0].received_at - stalled_at >= 0.35  # stale_timeout 0.4 s
    assert client.book("BTC/USD") is not None and client.book("BTC/USD").is_live  # type: ignore[union-attr]
    client.close()


def test_corrupt_checksum_resyncs_only_that_symbol(sim: SimThread) -> None:
    client = SocketClient(make_config(sim.url))
    client.connect()
    subscribe_books(client)
    drive(client, lambda ev: sorted(snapshots(ev)) == ["BTC/USD", "ETH/USD"])
    sim.inject(CorruptChecksum("ETH/USD"))
    events = drive(
        client,
        lambda ev: any(isinstance(e, BookResync) for e in ev) and "ETH/USD" in snapshots(ev),
    )
    resyncs = [e for e in events if isinstance(e, BookResync)]
    assert [(r.symbol, r.attempt) for r in resyncs] == [("ETH/USD", 1)]
    assert resyncs[0].reason.startswith("checksum mismatch")
    assert snapshots(events) == ["ETH/USD"]  # BTC/USD was never rebuilt
    assert states(events) == ["resyncing", "subscribed"]
    assert not any(isinstance(e, Subscribed) for e in events)  # internal resubscribe: no acks
    assert client.stats.reconnects == 0
    assert client.book("ETH/USD").is_live and client.book("BTC/USD").is_live  # type: ignore[union-attr]
    client.close()


def test_garbled_frames_are_reported_and_the_stream_continues(sim: SimThread) -> None:
    client = SocketClient(make_config(sim.url))
    client.connect()
    client.subscribe("ticker", SYMBOLS, wait=True, timeout=5)
    sim.inject(MalformedFrame())
    sim.inject(TruncatedFrame())
    events = drive(
        client,
        lambda ev: (
            sum(isinstance(e, ProtocolError) for e in ev) == 2 and isinstance(ev[-1], Ticker)
        ),
    )
    errors = [e for e in events if isinstance(e, ProtocolError)]
    assert errors[0].error.startswith("malformed JSON")
    assert errors[0].payload == MALFORMED_TEXT[:200]
    assert client.state is ConnectionState.SUBSCRIBED and client.stats.reconnects == 0
    client.close()


def test_the_transport_stepped_on_a_thread_of_ones_own(sim: SimThread) -> None:
    # SocketTransport's pieces for a caller's own IO thread (lock, pause, Waker): another
    # thread calls the driver under the lock and wakes the waiting step to send at once.
    driver = Driver(make_config(sim.url))
    lock = threading.RLock()
    asked: list[bool] = []
    transport = SocketTransport(driver, lock=lock, pause=lambda: bool(asked.append(True)))
    waker = Waker()
    stop = threading.Event()
    woken: list[bool] = []

    def run() -> None:
        while not stop.is_set():
            woken.append(transport.step(1.0, waker))

    with lock:
        driver.connect(time.monotonic())
    thread = threading.Thread(target=run, name="own-io")
    thread.start()
    try:
        assert wait_for(lambda: driver.proto.state is ConnectionState.SUBSCRIBED, 5.0)
        with lock:
            driver.call("subscribe", "ticker", "BTC/USD", {}, time.monotonic(), wait=False)
        waker.wake()  # the step waiting for IO ends now and writes the request

        def ticker_seen() -> bool:
            with lock:
                return any(
                    isinstance(driver.router.buffer.pop(time.monotonic()), Ticker)
                    for _ in range(len(driver.router.buffer))
                )

        assert wait_for(ticker_seen, 5.0)
    finally:
        stop.set()
        waker.wake()
        thread.join(5)
    assert not thread.is_alive() and True in woken and asked  # pause() asked per message
    with lock:
        now = time.monotonic()
        driver.close(now)
    transport.finish(now + 0.5)
    waker.close()
    assert driver.proto.state is ConnectionState.CLOSED
