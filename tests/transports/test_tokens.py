"""kraken_transports.tokens: the token POST over aiohttp and over h11, on loopback only.

A small threaded HTTP server (``http.server``) plays the token endpoint; its routes cover
success (also a body that arrives in two pieces), Kraken errors inside a 200, proxies'
errors, oversized bodies, silence and TLS.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import aiohttp
import pytest
from simthread import CERT_PEM, tls_server_context

from kraken_proto.errors import AuthenticationError
from kraken_proto.http import HttpRequest
from kraken_transports.tokens import fetch_token_async, fetch_token_blocking, token_from_http

TOKEN = "Z3Rva2VuLW9mLXRoZS10ZXN0LXNlcnZlcg"
OK_BODY = json.dumps({"error": [], "result": {"token": TOKEN, "expires": 900}}).encode()


class Handler(BaseHTTPRequestHandler):
    """Routes by path; records what it received."""

    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.seen.append((self.path, dict(self.headers.items()), body))
        path = self.path.split("?")[0]
        if path == "/ok":
            self._reply(200, OK_BODY)
        elif path == "/split":  # the body arrives in two TCP writes
            self.send_response(200)
            self.send_header("Content-Length", str(len(OK_BODY)))
            self.end_headers()
            self.wfile.write(OK_BODY[:10])
            self.wfile.flush()
            time.sleep(0.05)
            self.wfile.write(OK_BODY[10:])
        elif path == "/continue":  # an informational 100 comes first
            self.send_response_only(100)
            self.end_headers()
            self._reply(200, OK_BODY)
        elif path == "/invalid-key":
            self._reply(200, b'{"error":["EAPI:Invalid key"]}')
        elif path == "/lockout":
            self._reply(200, b'{"error":["EGeneral:Temporary lockout"]}')
        elif path == "/html503":
            self._reply(503, b"<html>Service Unavailable</html>", "text/html")
        elif path == "/json500":
            self._reply(500, b'{"error":["EService:Unavailable"]}')
        elif path == "/garbage":
            self._reply(200, b"not json")
        elif path == "/huge":
            self._reply(200, b" " * ((1 << 20) + 10))
        elif path == "/slow":
            time.sleep(1.0)
            self._reply(200, OK_BODY)
        elif path == "/hangup":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._reply(404, b"")


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (timeouts, refused bodies) are expected here."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class Server:
    """The handler on a loopback port, served from a daemon thread (plain or TLS)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def request(self, path: str) -> HttpRequest:
        return HttpRequest(
            method="POST",
            url=self.base + path,
            headers=(("API-Key", "key"), ("Content-Type", "application/x-www-form-urlencoded")),
            body=b"nonce=1",
        )

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    Handler.seen = []
    srv = Server()
    yield srv
    srv.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def fetch_async(request: HttpRequest, timeout: float = 2.0) -> str:
    async def main() -> str:
        async with aiohttp.ClientSession() as session:
            return await fetch_token_async(session, request, timeout)

    return asyncio.run(asyncio.wait_for(main(), 10))


FETCHERS = {
    "h11": lambda request, timeout=2.0: fetch_token_blocking(request, timeout),
    "aiohttp": fetch_async,
}


# --------------------------------------------------------------------------- classification


def test_token_from_http() -> None:
    assert token_from_http(200, OK_BODY) == TOKEN
    with pytest.raises(AuthenticationError) as info:
        token_from_http(200, b'{"error":["EAPI:Invalid signature"]}')
    assert info.value.error == "EAPI:Invalid signature" and info.value.terminal
    with pytest.raises(AuthenticationError) as info:
        token_from_http(200, b"<html>")
    assert info.value.error.startswith("malformed") and not info.value.terminal
    with pytest.raises(AuthenticationError) as info:
        token_from_http(502, b"<html>Bad gateway</html>")
    assert info.value.error == "HTTP 502 from the token endpoint" and not info.value.terminal
    with pytest.raises(AuthenticationError) as info:  # a Kraken error wins over the status
        token_from_http(520, b'{"error":["EAPI:Invalid key"]}')
    assert info.value.error == "EAPI:Invalid key" and info.value.terminal


# --------------------------------------------------------------------------- both fetchers


@pytest.mark.parametrize("how", sorted(FETCHERS))
def test_success_sends_the_request_as_described(server: Server, how: str) -> None:
    assert FETCHERS[how](server.request("/ok?x=1")) == TOKEN
    assert FETCHERS[how](server.request("/split")) == TOKEN
    if how == "h11":  # aiohttp does not accept an unsolicited 100 Continue
        assert FETCHERS[how](server.request("/continue")) == TOKEN
    path, headers, body = Handler.seen[0]
    assert path == "/ok?x=1" and body == b"nonce=1"
    assert headers["API-Key"] == "key"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Content-Length"] == "7"


@pytest.mark.parametrize("how", sorted(FETCHERS))
@pytest.mark.parametrize(
    ("path", "error", "terminal"),
    [
        ("/invalid-key", "EAPI:Invalid key", True),
        ("/lockout", "EGeneral:Temporary lockout", False),
        ("/html503", "HTTP 503 from the token endpoint", False),
        ("/json500", "EService:Unavailable", False),
        ("/garbage", "malformed GetWebSocketsToken response: not JSON", False),
    ],
)
def test_answers_are_classified(
    server: Server, how: str, path: str, error: str, terminal: bool
) -> None:
    with pytest.raises(AuthenticationError) as info:
        FETCHERS[how](server.request(path))
    assert info.value.error == error and info.value.terminal is terminal


@pytest.mark.parametrize("how", sorted(FETCHERS))
def test_transport_failures_are_transient(server: Server, how: str) -> None:
    fetch = FETCHERS[how]
    for path in ("/huge", "/hangup"):
        with pytest.raises(AuthenticationError) as info:
            fetch(server.request(path))
        assert not info.value.terminal
        assert "token request failed" in info.value.error or "HTTP 0" in info.value.error
    with pytest.raises(AuthenticationError) as info:
        fetch(server.request("/slow"), 0.2)
    assert not info.value.terminal and "Timeout" in info.value.error
    refused = HttpRequest("POST", f"http://127.0.0.1:{closed_port()}/ok", (), b"")
    with pytest.raises(AuthenticationError) as info:
        fetch(refused)
    assert not info.value.terminal and info.value.error.startswith("token request failed")


def test_blocking_fetch_over_tls(tmp_path: Path) -> None:
    srv = Server(tls_server_context(tmp_path))
    try:
        trusted = ssl.create_default_context(cadata=CERT_PEM)
        assert fetch_token_blocking(srv.request("/ok"), 2.0, trusted) == TOKEN
        with pytest.raises(AuthenticationError) as info:  # the system CAs do not know it
            fetch_token_blocking(srv.request("/ok"), 2.0)
        assert not info.value.terminal and "SSL" in info.value.error
    finally:
        srv.close()


def test_blocking_fetch_with_no_time_left_does_not_connect(server: Server) -> None:
    with pytest.raises(AuthenticationError) as info:
        fetch_token_blocking(server.request("/ok"), 0.0)
    assert info.value.error.endswith("TimeoutError: no answer from the token endpoint in time")
    assert Handler.seen == []


def test_cancelling_the_async_fetch_cancels_the_request(server: Server) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            task = asyncio.ensure_future(fetch_token_async(session, server.request("/slow"), 5.0))
            while not Handler.seen:
                await asyncio.sleep(0.005)
            task.cancel()
            await asyncio.wait({task})
            assert task.cancelled()

    asyncio.run(asyncio.wait_for(main(), 10))
