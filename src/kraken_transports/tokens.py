"""Performing ``FetchToken``: the signed ``GetWebSocketsToken`` POST, over aiohttp or h11.

The core describes the request (:class:`~kraken_proto.auth.TokenRequest`); this module only
does the HTTP and classifies what went wrong:

- :func:`fetch_token_async` uses an aiohttp session (the asyncio driver);
- :func:`fetch_token_blocking` speaks HTTP/1.1 through h11 over a plain or TLS socket (the
  socket and threaded drivers), with one overall timeout.

Both return the token or raise :class:`~kraken_proto.errors.AuthenticationError` whose
``terminal`` flag tells the driver whether to pass ``terminal=True`` to
``KrakenProtocol.token_failed``. Error messages never contain the key, the secret, the
signature or the token.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import urllib.parse

import aiohttp
import h11

from kraken_proto.auth import parse_token_response
from kraken_proto.errors import AuthenticationError
from kraken_proto.http import HttpRequest

__all__ = ["fetch_token_async", "fetch_token_blocking", "token_from_http"]

_MAX_BODY = 1 << 20  # a token response is tiny; anything bigger is not Kraken's answer


def token_from_http(status: int, body: bytes) -> str:
    """The token from an HTTP response to ``GetWebSocketsToken``.

    Kraken answers errors inside a 200 JSON body; any other status is a transient failure
    (a proxy, an outage, rate limiting at the edge) unless the body holds a Kraken error.
    """
    try:
        return parse_token_response(body)
    except AuthenticationError as exc:
        if status == 200 or not exc.error.startswith("malformed"):
            raise
    raise AuthenticationError(f"HTTP {status} from the token endpoint", terminal=False)


async def fetch_token_async(
    session: aiohttp.ClientSession, request: HttpRequest, timeout: float
) -> str:
    """Perform ``request`` with ``session``; return the token (see :func:`token_from_http`).

    ``timeout`` bounds the whole exchange. The request runs as its own task, so a timeout
    never surfaces as a stray ``CancelledError``; cancelling the caller cancels it too.
    """
    post = asyncio.ensure_future(_post(session, request))
    post.add_done_callback(_retrieve)
    try:
        await asyncio.wait({post}, timeout=timeout)
    finally:  # also when the caller is cancelled: the request goes with it
        timed_out = not post.done()
        if timed_out:
            post.cancel()
    if timed_out:
        raise AuthenticationError(
            f"token request failed: TimeoutError: no answer within {timeout:g} s", terminal=False
        )
    if post.cancelled():  # pragma: no cover - cancelled from inside the HTTP library
        raise AuthenticationError("token request failed: it was cancelled", terminal=False)
    error = post.exception()
    if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        raise AuthenticationError(
            f"token request failed: {type(error).__name__}: {error}", terminal=False
        )
    status, body = post.result()  # re-raises any other error (AuthenticationError)
    return token_from_http(status, body)


def _retrieve(task: asyncio.Future[tuple[int, bytes]]) -> None:
    """Mark a finished request's outcome as seen (no "exception never retrieved" noise)."""
    if not task.cancelled():
        task.exception()


async def _post(session: aiohttp.ClientSession, request: HttpRequest) -> tuple[int, bytes]:
    async with session.request(
        request.method,
        request.url,
        headers=list(request.headers),
        data=request.body,
        timeout=aiohttp.ClientTimeout(total=None),
    ) as response:
        body = bytearray()
        while True:  # read(n) returns what has arrived, up to n: loop until the end
            chunk = await response.content.read(_MAX_BODY + 1 - len(body))
            if not chunk:
                return response.status, bytes(body)
            body += chunk
            if len(body) > _MAX_BODY:
                raise AuthenticationError(
                    "token request failed: the response body is too large", terminal=False
                )


def fetch_token_blocking(
    request: HttpRequest, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> str:
    """Perform ``request`` over a fresh socket with h11, blocking for at most ``timeout`` s.

    ``https://`` URLs are verified with ``ssl_context`` (default: the system's CAs).
    """
    url = urllib.parse.urlsplit(request.url)
    host = url.hostname or ""
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    deadline = time.monotonic() + timeout
    try:
        status, body = _exchange(
            host, port, secure, target, request, deadline, ssl_context, url.netloc
        )
    except (OSError, h11.ProtocolError, TimeoutError) as exc:
        raise AuthenticationError(
            f"token request failed: {type(exc).__name__}: {exc}", terminal=False
        ) from None
    return token_from_http(status, body)


def _exchange(
    host: str,
    port: int,
    secure: bool,
    target: str,
    request: HttpRequest,
    deadline: float,
    ssl_context: ssl.SSLContext | None,
    netloc: str,
) -> tuple[int, bytes]:
    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the token endpoint in time")
        return left

    sock: socket.socket = socket.create_connection((host, port), timeout=remaining())
    try:
        if secure:
            context = ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", netloc), ("Content-Length", str(len(request.body)))]
        headers += [(name, value) for name, value in request.headers]
        headers.append(("Connection", "close"))
        out = conn.send(h11.Request(method=request.method, target=target, headers=headers))
        out += conn.send(h11.Data(data=request.body)) + conn.send(h11.EndOfMessage())
        sock.settimeout(remaining())
        sock.sendall(out)
        status = 0
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                sock.settimeout(remaining())
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise AuthenticationError(
                        "token request failed: the response body is too large", terminal=False
                    )
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, bytes(body)
    finally:
        sock.close()
