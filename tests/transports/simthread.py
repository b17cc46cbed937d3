"""Loopback peers for the blocking drivers' tests, each on its own background thread.

- :class:`SimThread`: the public ``kraken_transports.simserver.SimulatorThread`` (the
  simulator on a thread with its own event loop), with ``sim`` for its server.
- :class:`RawServer`: a tiny scripted WebSocket server (blocking sockets + wsproto) for
  wire-level details the simulator does not expose (pings, fragments, close frames, HTTP
  rejections, TLS).
- :func:`blackhole`: a listening socket that never accepts nor answers.
"""

from __future__ import annotations

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

from kraken_transports.simserver import SimServer, SimulatorThread

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

    def __init__(self, sock: socket.socket, closing: threading.Event | None = None) -> None:
        self.sock = sock
        sock.settimeout(5.0)
        self.ws = WSConnection(ConnectionType.SERVER)
        self.received: list[Event] = []
        self.request: Request | None = None
        self._pending: list[Event] = []
        self.eof = False
        # Set when the server closes (the test is done with it): a hold ends then.
        self._closing = closing or threading.Event()
        self.holding = False

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
        """Keep reading (answering nothing) until the client goes away, ``timeout`` passes or
        the server closes (see :meth:`RawServer.close`)."""
        self.holding = True
        if not self._closing.is_set():  # else close() may have looked before we held
            self.next_event(CloseConnection, timeout=timeout)

    def stop_holding(self) -> None:
        """End a :meth:`hold` at once: the reading side sees the end of the stream."""
        if self.holding:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)


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
            conn = ServerConn(sock, self._stop)
            self.conns.append(conn)
            self._script(conn)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop accepting and wait for the scripts; a script holding its connection open
        (:meth:`ServerConn.hold`) stops holding, so no test waits out a hold's timeout."""
        self._stop.set()
        self._acceptor.join(2)
        self._listener.close()
        for conn in list(self.conns):
            conn.stop_holding()
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


class SimThread(SimulatorThread):
    """:class:`~kraken_transports.simserver.SimulatorThread` under the name these tests
    use, with ``sim`` for its :attr:`~kraken_transports.simserver.SimulatorThread.server`.

    Its markets run at three times Kraken's pace unless a test asks for another
    ``tick_rate``: tests wait for trades and updates, and a faster market makes them sooner.
    """

    def __init__(self, *args: Any, tick_rate: float = 60.0, **options: Any) -> None:
        super().__init__(*args, tick_rate=tick_rate, **options)

    @property
    def sim(self) -> SimServer:
        """The running simulator server."""
        return self.server
