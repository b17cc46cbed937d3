"""The fake exchange's REST token endpoint and its WebSocket tokens (KRAKEN-V2.md section 7).

:class:`TokenIssuer` is a sans-IO handler for ``POST /0/private/GetWebSocketsToken``: it
checks the ``API-Key`` header, verifies ``API-Sign`` with the simulator's own
:func:`~kraken_proto.simulator.verify.api_sign` (not the client's signing code), requires a
nonce that strictly increases per key, and answers with Kraken's JSON:
``{"error":[],"result":{"token":"...","expires":900}}`` or ``{"error":["EAPI:Invalid key"]}``
(``EAPI:Invalid signature``, ``EAPI:Invalid nonce``).
Every answer has HTTP status 200, as Kraken's; an unknown path gets 404.

Tokens are derived from the seed and a counter, so a run is reproducible. A token is valid
for :data:`TOKEN_TTL` seconds of driver time after it was issued; once a connection has
made a successful private subscription with it, it stays valid on that connection for as
long as the connection lives (the caller keeps that set, see :meth:`TokenIssuer.valid`).
:meth:`TokenIssuer.revoke` invalidates every token issued so far, everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Set
from urllib.parse import parse_qs

import msgspec

from kraken_proto.simulator.verify import api_sign

__all__ = [
    "INVALID_KEY",
    "INVALID_NONCE",
    "INVALID_SIGNATURE",
    "SIM_API_KEY",
    "SIM_API_SECRET",
    "TOKEN_PATH",
    "TOKEN_TTL",
    "UNKNOWN_METHOD",
    "TokenIssuer",
]

SIM_API_KEY = "rgkDvcYugZ2jGZwc/nDf4Rs+uHmr9ki/1IE4GfP0jcRjKvu99o/QXUuM"
"""The simulator's default API key (56 characters, like Kraken's). A test value, not a secret."""

SIM_API_SECRET = (
    "o/bCzMBmlameC6/x932x85UC0gpS4s0Dx9SdiQczqsxTbalOO+v2dgyBnwna8UPFjH81snB/CfXWmVEq9NzlIQ=="
)
"""The simulator's default API secret: base64 of 64 bytes. A test value, not a secret."""

TOKEN_PATH = "/0/private/GetWebSocketsToken"
"""URI path of the REST endpoint that issues WebSocket tokens (the only path served)."""

TOKEN_TTL = 900.0
"""Seconds a token stays valid unless a connection subscribed with it (``expires``)."""

INVALID_KEY = "EAPI:Invalid key"
"""The ``API-Key`` header is missing or is not the exchange's key."""
INVALID_SIGNATURE = "EAPI:Invalid signature"
"""``API-Sign`` is missing or does not match the request."""
INVALID_NONCE = "EAPI:Invalid nonce"
"""The nonce is missing, not an integer, or not above the last one of this key."""
UNKNOWN_METHOD = "EGeneral:Unknown method"
"""A path other than the token endpoint (with HTTP status 404)."""

_ENCODER = msgspec.json.Encoder()


def _answer(errors: list[str], result: dict[str, object] | None = None) -> bytes:
    body: dict[str, object] = {"error": errors}
    if result is not None:
        body["result"] = result
    return _ENCODER.encode(body)


def _nonce(body: bytes) -> tuple[str, int | None]:
    """The body as text and its nonce (``None`` when missing or not a positive integer)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "", None
    raw: object = None
    if text.lstrip().startswith("{"):
        try:
            data = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return text, None
        raw = data.get("nonce") if isinstance(data, dict) else None
    else:
        values = parse_qs(text, keep_blank_values=True).get("nonce")
        raw = values[0] if values else None
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if type(raw) is not int or raw <= 0:
        return text, None
    return text, raw


class TokenIssuer:
    """The token endpoint of one API key pair; see the module docstring.

    ``seed`` makes the tokens reproducible. Every method takes the driver's ``now``.
    The ``repr`` shows no key, secret or token.
    """

    def __init__(self, *, seed: int, api_key: str, api_secret: str, ttl: float = TOKEN_TTL) -> None:
        base64.b64decode(api_secret, validate=True)  # fail early on a malformed secret
        self._seed = seed
        self._api_key = api_key
        self._api_secret = api_secret
        self._ttl = ttl
        self._last_nonce = 0
        self._issued = 0
        self._tokens: dict[str, float] = {}
        self._failures: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"TokenIssuer(issued={self._issued}, api_key='***', api_secret='***')"

    @property
    def issued(self) -> int:
        """How many tokens have been issued."""
        return self._issued

    def inject_error(self, error: str, count: int = 1) -> None:
        """Make the next ``count`` token requests fail with ``error`` (replaces pending ones)."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._failures = (error, count)

    def revoke(self) -> None:
        """Invalidate every token issued so far, on every connection."""
        self._tokens.clear()

    def valid(self, token: object, now: float, bound: Set[str] = frozenset()) -> bool:
        """Whether ``token`` is usable at ``now`` on a connection that subscribed with ``bound``."""
        if not isinstance(token, str):
            return False
        expires = self._tokens.get(token)
        if expires is None:
            return False
        return now < expires or token in bound

    def handle(
        self, path: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> tuple[int, bytes]:
        """Answer one HTTP request: ``(status, JSON body)``; only the token path is served."""
        if path.split("?", 1)[0] != TOKEN_PATH:
            return 404, _answer([UNKNOWN_METHOD])
        if self._failures is not None:
            error, count = self._failures
            self._failures = (error, count - 1) if count > 1 else None
            return 200, _answer([error])
        lowered = {name.lower(): value for name, value in headers.items()}
        if lowered.get("api-key") != self._api_key:
            return 200, _answer([INVALID_KEY])
        text, nonce = _nonce(body)
        if nonce is None:
            return 200, _answer([INVALID_NONCE])
        expected = api_sign(TOKEN_PATH, text, nonce, self._api_secret)
        given = lowered.get("api-sign", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected.encode("ascii")):
            return 200, _answer([INVALID_SIGNATURE])
        if nonce <= self._last_nonce:
            return 200, _answer([INVALID_NONCE])
        self._last_nonce = nonce
        token = self._new_token()
        self._tokens[token] = now + self._ttl
        return 200, _answer([], {"token": token, "expires": int(self._ttl)})

    def _new_token(self) -> str:
        self._issued += 1
        digest = hashlib.sha256(f"{self._seed}:token:{self._issued}".encode()).digest()
        text = base64.b64encode(digest).decode("ascii")
        # 43 characters of letters and digits, like the tokens in Kraken's docs.
        return text.translate(str.maketrans("+/", "Xz")).rstrip("=")
