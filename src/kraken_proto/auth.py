"""REST request signing and the WebSocket token request (KRAKEN-V2.md section 7).

The core never performs the HTTP request: it hands the driver a :class:`TokenRequest`, the
driver calls :meth:`TokenRequest.build` with its wall clock, performs the resulting
:class:`~kraken_proto.http.HttpRequest` and passes the body to
:func:`parse_token_response`. Nothing here puts the API key, the secret or a token into a
``repr`` or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from typing import Any

import msgspec

from kraken_proto.config import _check_api_key, _decode_api_secret
from kraken_proto.errors import AuthenticationError
from kraken_proto.http import HttpRequest

__all__ = [
    "AUTH_ERRORS",
    "TOKEN_PATH",
    "NonceGenerator",
    "TokenRequest",
    "is_terminal_auth_error",
    "parse_token_response",
    "redact_token",
    "sign",
]

TOKEN_PATH = "/0/private/GetWebSocketsToken"
"""URI path of the REST endpoint that issues WebSocket tokens (signed, POST)."""

AUTH_ERRORS: tuple[str, ...] = (
    "EAPI:Invalid key",
    "EAPI:Invalid signature",
    "EAPI:Invalid nonce",
    "EGeneral:Permission denied",
    "EGeneral:Temporary lockout",
    "ESession:Invalid session",
    "EAPI:Invalid token",
    "EAuth:Account temporary disabled",
    "EAuth:Account unconfirmed",
    "EAuth:Rate limit exceeded",
    "EAuth:Too many requests",
)
"""Every authentication error string Kraken documents (KRAKEN-V2.md section 7)."""

_TERMINAL_AUTH_ERRORS = frozenset(
    {
        "EAPI:Invalid key",
        "EAPI:Invalid signature",
        "EGeneral:Permission denied",
        "EAuth:Account temporary disabled",
        "EAuth:Account unconfirmed",
    }
)
_MAX_ERROR_TEXT = 200


_TOKEN_VALUE = re.compile(r'("token"\s*:\s*)"(?:[^"\\]|\\.)*"')


def redact_token(text: str) -> str:
    """``text`` with the value of every JSON ``"token"`` key replaced by ``"***"``.

    Used wherever an outgoing frame may be shown or stored (capture files, ``repr`` of a
    ``Send`` action, frame hooks), since private requests carry the WebSocket token.
    """
    if '"token"' not in text:
        return text
    return _TOKEN_VALUE.sub(r'\1"***"', text)


def sign(uri_path: str, post_data: str, nonce: int | str, api_secret: str) -> str:
    """Return the ``API-Sign`` header value for one private REST request.

    ``base64(HMAC-SHA512(key=b64decode(api_secret),
    msg=uri_path + SHA256(str(nonce) + post_data)))``, where ``post_data`` is the exact body
    sent and ``uri_path`` starts at ``/0/private/``.

    Raises:
        ConfigurationError: ``api_secret`` is not valid base64 (the value is not shown).
    """
    key = _decode_api_secret("api_secret", api_secret)
    digest = hashlib.sha256((str(nonce) + post_data).encode()).digest()
    mac = hmac.new(key, uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


class NonceGenerator:
    """Strictly increasing nonces in milliseconds, whatever the wall clock does.

    ``next(wall_time)`` returns ``max(int(wall_time * 1000), previous + 1)``: the wall time in
    ms while the clock moves forward, and one more than the last nonce when it stands still
    or steps back. Not thread-safe: give each thread its own, or serialise calls.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    @property
    def last(self) -> int:
        """The last nonce handed out (0 before the first)."""
        return self._last

    def next(self, wall_time: float) -> int:
        """Return the next nonce for ``wall_time``, seconds since the epoch (finite)."""
        if not math.isfinite(wall_time):
            raise ValueError(f"wall_time must be finite, got {wall_time!r}")
        nonce = max(int(wall_time * 1000), self._last + 1)
        self._last = nonce
        return nonce


# One generator per API key for the whole process, so nonces of every TokenRequest with the
# same key increase together. Keyed by a digest so the key itself is not kept here.
_NONCE_GENERATORS: dict[bytes, NonceGenerator] = {}


def _nonce_generator(api_key: str) -> NonceGenerator:
    return _NONCE_GENERATORS.setdefault(hashlib.sha256(api_key.encode()).digest(), NonceGenerator())


class TokenRequest(msgspec.Struct, frozen=True):
    """What the driver needs to fetch a WebSocket token. ``repr`` hides the key and secret.

    Attributes:
        rest_url: REST base URL, e.g. ``ClientConfig.rest_url`` (``"https://api.kraken.com"``).
        api_key: the API key (sent as the ``API-Key`` header).
        api_secret: the base64 API secret (used to sign; never sent).

    Raises:
        ConfigurationError: the key or secret is malformed (their values are not shown).
    """

    rest_url: str
    api_key: str
    api_secret: str

    def __post_init__(self) -> None:
        _check_api_key("api_key", self.api_key)
        _decode_api_secret("api_secret", self.api_secret)

    def __repr__(self) -> str:
        return f"TokenRequest(rest_url={self.rest_url!r}, api_key='***', api_secret='***')"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own __rich_repr__ would show the raw fields to rich's pretty printer.
        return [("rest_url", self.rest_url), ("api_key", "***"), ("api_secret", "***")]

    def build(self, wall_time: float) -> HttpRequest:
        """Return the signed ``POST {rest_url}/0/private/GetWebSocketsToken`` request.

        ``wall_time`` is the driver's wall clock (``time.time()``), seconds since the epoch.
        The form body is ``nonce=<n>`` with ``n`` from this key's process-wide
        :class:`NonceGenerator`, so nonces strictly increase even if the clock steps back.
        """
        nonce = _nonce_generator(self.api_key).next(wall_time)
        body = f"nonce={nonce}"
        headers = (
            ("API-Key", self.api_key),
            ("API-Sign", sign(TOKEN_PATH, body, nonce, self.api_secret)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        )
        url = self.rest_url.rstrip("/") + TOKEN_PATH
        return HttpRequest(method="POST", url=url, headers=headers, body=body.encode("ascii"))


def is_terminal_auth_error(error: str) -> bool:
    """Whether retrying cannot help after Kraken answered ``error``.

    Terminal: a bad key or signature, missing permission, a disabled or unconfirmed account
    (also with a ``:detail`` suffix). Everything else is transient: a bad nonce, a temporary
    lockout, rate limits, ``EService:*``, ``EGeneral:Internal error``, unknown errors.
    """
    return any(error == known or error.startswith(known + ":") for known in _TERMINAL_AUTH_ERRORS)


def _malformed(what: str) -> AuthenticationError:
    return AuthenticationError(f"malformed GetWebSocketsToken response: {what}", terminal=False)


def parse_token_response(body: bytes | str) -> str:
    """Return the token from a ``GetWebSocketsToken`` response body.

    Raises:
        AuthenticationError: Kraken returned errors (``error`` is the first terminal one, or
            the first; ``terminal`` per :func:`is_terminal_auth_error`), or the body is not a
            well-formed response (not terminal). The message never contains the body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise _malformed("not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("not a JSON object")
    errors = data.get("error", [])
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        raise _malformed("'error' is not a list of strings")
    if errors:
        terminal = [e for e in errors if is_terminal_auth_error(e)]
        error = (terminal or errors)[0][:_MAX_ERROR_TEXT]
        raise AuthenticationError(error, terminal=bool(terminal))
    result = data.get("result")
    if not isinstance(result, dict):
        raise _malformed("no 'result' object")
    token = result.get("token")
    if not isinstance(token, str) or not token:
        raise _malformed("'result.token' is not a non-empty string")
    return token
