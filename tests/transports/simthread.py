"""Loopback peers for the blocking drivers' tests, each on its own background thread.

- :class:`SimThread`: the simulator (``kraken_transports.simserver.run_simulator``, asyncio)
  on a thread with its own event loop, with a thread-safe ``inject``.
- :class:`RawServer`: a tiny scripted WebSocket server (blocking sockets + wsproto) for
  wire-level details the simulator does not expose (pings, fragments, close frames, HTTP
  rejections, TLS).
- :func:`blackhole`: a listening socket that never accepts nor answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState as WsState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from kraken_transports.simserver import run_simulator

# A self-signed certificate for localhost / 127.0.0.1 (P-256, valid for 100 years).
CERT_PEM = """-----BEGIN CERTIFICATE-----
MIIBmTCCAT6gAwIBAgIUKFnBM/aRFUKc3XQcYYLXsC/TKRowCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTE4MjExMVoYDzIxMjYxMTAx
MTgyMTExWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATgXgMTZrVZPkrgP22lWvTxXYpp1BojP4uORZByRNT/cy8sveudquHE
hK56+O3rMkOwryzerQCqbMWo2nI9YuZPo2wwajAdBgNVHQ4EFgQUMyEzYSWoKm3G
/wpYBOUyjVgLU9AwHwYDVR0jBBgwFoAUMyEzYSWoKm3G/wpYBOUyjVgLU9AwGgYD
VR0RBBMwEYIJbG9jYWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0E
AwIDSQAwRgIhALvF1qQW2ShJl31sMwTzKDb8mAGAEPiVLdfuGoM3VwAqAiEAp76+
iIKOp04Mg48mjN0pKMJ6ZNSry4P4yu6KE7H81SU=
-----END CERTIFICATE-----
"""
KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghHKQqHbewLQIXJ8q
7BtQu9gpv2kLRC9pCMbX93COsfqhRANCAATgXgMTZrVZPkrgP22lWvTxXYpp1Boj
P4uORZByRNT/cy8sveudquHEhK56+O3rMkOwryzerQCqbMWo2nI9YuZP
-----END PRIVATE KEY-----
"""

STATUS_FRAME = (
    '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online",'
    '"api_version":"v2","connection_id":7204881492680171915}]}'
)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------- raw server


class ServerConn:
    """The server side of one accepted connection, driven by a test script (blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(5.0)
        self.ws = WSConnection(ConnectionType.SERVER)
        self.received: list[Event] = []
        self.request: Request | None = None
        self._pending: list[Event] = []
        self.eof = False

    def _pump(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self._pending.extend(self.ws.events())

    def next_event(self, *types: type[Event], timeout: float = 5.0) -> Event | None:
        """The next event of one of ``types`` (others are recorded and skipped)."""
        end = time.monotonic() + timeout
        while True:
            while self._pending:
                event = self._pending.pop(0)
                self.received.append(event)
                if isinstance(event, types):
                    return event
            if self.eof or time.monotonic() > end:
                return None
            try:
                self._pump()
            except (TimeoutError, OSError):
                return None

    def handshake(self) -> Request:
        """Accept the WebSocket upgrade."""
        event = self.next_event(Request)
        assert isinstance(event, Request), event
        self.request = event
        self.sock.sendall(self.ws.send(AcceptConnection()))
        return event

    def reject(self, status: int, body: bytes = b"") -> None:
        """Answer the upgrade with an HTTP error."""
        event = self.next_event(Request)
        assert isinstance(event, Request)
        headers = [(b"content-length", str(len(body)).encode())]
        self.sock.sendall(
            self.ws.send(RejectConnection(status_code=status, headers=headers, has_body=bool(body)))
        )
        if body:
            self.sock.sendall(self.ws.send(RejectData(data=body, body_finished=True)))

    def send_text(self, text: str, fragments: int = 1) -> None:
        """Send one text message, split into ``fragments`` frames."""
        size = max(1, -(-len(text) // fragments))
        chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self.sock.sendall(self.ws.send(TextMessage(data=chunk, message_finished=last)))

    def send_ping(self, payload: bytes) -> None:
        """Send a WebSocket Ping control frame."""
        self.sock.sendall(self.ws.send(Ping(payload=payload)))

    def close(self, code: int, reason: str = "") -> CloseConnection | None:
        """Send a close frame; return the client's reply (None if none came)."""
        self.sock.sendall(self.ws.send(CloseConnection(code=code, reason=reason)))
        reply = self.next_event(CloseConnection)
        return reply if isinstance(reply, CloseConnection) else None

    def answer_close(self) -> CloseConnection | None:
        """Wait for the client's close frame and reply to it."""
        event = self.next_event(CloseConnection)
        if isinstance(event, CloseConnection) and self.ws.state is WsState.REMOTE_CLOSING:
            self.sock.sendall(self.ws.send(event.response()))
            return event
        return None

    def messages(self) -> list[str]:
        """The text of every message received so far (complete frames only)."""
        return [str(e.data) for e in self.received if isinstance(e, Message)]

    def hold(self, timeout: float = 5.0) -> None:
        """Keep reading (answering nothing) until the client goes away or ``timeout``."""
        self.next_event(CloseConnection, timeout=timeout)


class RawServer:
    """A loopback WebSocket server running ``script(conn)`` for every connection."""

    def __init__(
        self,
        script: Callable[[ServerConn], None],
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script = script
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        port = self._listener.getsockname()[1]
        self.url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/v2?x=1"
        self.port = port
        self.conns: list[ServerConn] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._acceptor.start()

    @property
    def connections(self) -> int:
        """How many connections were accepted."""
        return len(self.conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self._tls is not None:
                sock.settimeout(5.0)
                sock = self._tls.wrap_socket(sock, server_side=True)
            conn = ServerConn(sock)
            self.conns.append(conn)
            self._script(conn)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop accepting and wait for the scripts."""
        self._stop.set()
        self._acceptor.join(2)
        self._listener.close()
        for thread in self._threads:
            thread.join(6)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tls_server_context(tmp: Path) -> ssl.SSLContext:
    """A server context with the test certificate."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    cert.write_text(CERT_PEM)
    key.write_text(KEY_PEM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def blackhole() -> Iterator[str]:
    """A ``ws://`` URL of a loopback socket that listens but never accepts or answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/v2"
    finally:
        listener.close()


def closed_port_url() -> str:
    """A ``ws://`` URL on a loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v2"


# --------------------------------------------------------------------------- simulator


class SimThread:
    """The simulator served from a background thread with its own asyncio loop."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Any = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    def start(self) -> SimThread:
        """Start serving; returns once the URL is known."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulator did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with run_simulator(**self._options) as sim:
            self._sim = sim
            self._ready.set()
            await self._stop.wait()

    @property
    def sim(self) -> Any:
        """The simulator object (only touch it through :meth:`call`)."""
        return self._sim

    @property
    def url(self) -> str:
        """The simulator's WebSocket URL."""
        return str(self._sim.url)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args)`` on the simulator's loop (awaiting it if it is a coroutine)."""
        assert self._loop is not None

        async def runner() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self._loop).result(10)

    def inject(self, fault: Any, connection: Any = None) -> Any:
        """``sim.inject(fault, connection)``, thread-safe."""
        return self.call(self._sim.inject, fault, connection)

    def close(self) -> None:
        """Stop the simulator and join its thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> SimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
