"""Tests for kraken_proto.auth: the documented signature, nonces, the token request, errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kraken_proto.actions import FetchToken, HttpRequest
from kraken_proto.auth import (
    AUTH_ERRORS,
    TOKEN_PATH,
    NonceGenerator,
    TokenRequest,
    is_terminal_auth_error,
    parse_token_response,
    sign,
)
from kraken_proto.errors import AuthenticationError, ConfigurationError

DATA = Path(__file__).resolve().parent / "data"
SECRET = base64.b64encode(bytes(range(64))).decode()
TOKEN = "1Dwc4lzSwNWOAwkMdqhssNNFhs1ed606d1WcF3XfEMw"


def doc_vector(vector_id: str) -> dict[str, Any]:
    vectors = json.loads((DATA / "doc-vectors.json").read_text())
    matches: list[dict[str, Any]] = [v for v in vectors if v["id"] == vector_id]
    assert len(matches) == 1
    return matches[0]


def fresh_key() -> str:
    """A key no other test has used, so its process-wide nonce sequence starts clean."""
    return "Key" + uuid.uuid4().hex


def reference_signature(path: str, body: str, nonce: int | str, secret: str) -> str:
    digest = hashlib.sha256((str(nonce) + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


# ----------------------------------------------------------------------------- sign


def test_sign_reproduces_the_documented_vector() -> None:
    vector = doc_vector("rest_sign_doc_addorder")
    given_input = vector["input"]
    signature = sign(
        given_input["uri_path"],
        given_input["post_data"],
        given_input["nonce"],
        given_input["api_secret_base64"],
    )
    assert signature == vector["expected"]
    documented = (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )
    assert signature == documented


def test_sign_accepts_an_int_nonce() -> None:
    vector = doc_vector("rest_sign_doc_addorder")["input"]
    as_int = sign(
        vector["uri_path"], vector["post_data"], int(vector["nonce"]), vector["api_secret_base64"]
    )
    assert as_int == doc_vector("rest_sign_doc_addorder")["expected"]


def test_sign_depends_on_every_input() -> None:
    base = sign("/0/private/X", "nonce=1", 1, SECRET)
    assert sign("/0/private/Y", "nonce=1", 1, SECRET) != base
    assert sign("/0/private/X", "nonce=2", 1, SECRET) != base
    assert sign("/0/private/X", "nonce=1", 2, SECRET) != base
    other_secret = base64.b64encode(bytes(range(1, 65))).decode()
    assert sign("/0/private/X", "nonce=1", 1, other_secret) != base
    assert len(base64.b64decode(base)) == 64  # SHA-512 sized


@given(
    path=st.text(min_size=1, max_size=40),
    body=st.text(max_size=80),
    nonce=st.integers(min_value=0, max_value=2**64 - 1),
    key=st.binary(min_size=1, max_size=128),
)
def test_sign_matches_reference_formula(path: str, body: str, nonce: int, key: bytes) -> None:
    secret = base64.b64encode(key).decode()
    assert sign(path, body, nonce, secret) == reference_signature(path, body, nonce, secret)


@pytest.mark.parametrize("secret", ["", "Zq9Kw base64!", SECRET[:-1], "Zq9Kwé=="])
def test_sign_rejects_a_bad_secret_without_showing_it(secret: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        sign(TOKEN_PATH, "nonce=1", 1, secret)
    assert info.value.field == "api_secret"
    if secret:
        assert secret not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


# ----------------------------------------------------------------------------- nonces


def test_nonce_is_wall_time_in_milliseconds() -> None:
    generator = NonceGenerator()
    assert generator.last == 0
    assert generator.next(1616492376.594) == 1616492376594
    assert generator.next(1616492377.0) == 1616492377000
    assert generator.last == 1616492377000


def test_nonce_strictly_increases_when_the_clock_stalls_or_steps_back() -> None:
    generator = NonceGenerator()
    assert generator.next(1000.0) == 1_000_000
    assert generator.next(1000.0) == 1_000_001
    assert generator.next(999.0) == 1_000_002
    assert generator.next(1000.0005) == 1_000_003
    assert generator.next(1001.0) == 1_001_000


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonce_rejects_non_finite_wall_time(bad: float) -> None:
    generator = NonceGenerator()
    with pytest.raises(ValueError, match="finite"):
        generator.next(bad)
    assert generator.last == 0


@given(
    st.lists(st.floats(min_value=-1e6, max_value=4e9, allow_nan=False), min_size=1, max_size=100)
)
def test_nonces_strictly_increase_property(wall_times: list[float]) -> None:
    generator = NonceGenerator()
    nonces = [generator.next(t) for t in wall_times]
    assert all(b > a for a, b in itertools.pairwise(nonces))
    assert all(n >= int(t * 1000) for n, t in zip(nonces, wall_times, strict=True))
    assert nonces[0] >= 1


# ----------------------------------------------------------------------------- TokenRequest


def test_build_produces_a_signed_token_request() -> None:
    key = fresh_key()
    request = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    http = request.build(1_700_000_000.123)
    assert isinstance(http, HttpRequest)
    assert http.method == "POST"
    assert http.url == "https://api.kraken.com/0/private/GetWebSocketsToken"
    assert http.body == b"nonce=1700000000123"
    headers = dict(http.headers)
    assert [name for name, _ in http.headers] == ["API-Key", "API-Sign", "Content-Type"]
    assert headers["API-Key"] == key
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    expected = reference_signature(TOKEN_PATH, "nonce=1700000000123", 1700000000123, SECRET)
    assert headers["API-Sign"] == expected


def test_build_strips_a_trailing_slash_and_keeps_a_prefix() -> None:
    key = fresh_key()
    assert (
        TokenRequest(rest_url="http://127.0.0.1:8080/", api_key=key, api_secret=SECRET)
        .build(1.0)
        .url
        == "http://127.0.0.1:8080/0/private/GetWebSocketsToken"
    )
    assert (
        TokenRequest(rest_url="https://proxy.test/kraken", api_key=key, api_secret=SECRET)
        .build(1.0)
        .url
        == "https://proxy.test/kraken/0/private/GetWebSocketsToken"
    )


def test_build_nonces_increase_per_key_across_requests_and_clock_steps() -> None:
    key = fresh_key()
    first = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    second = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    bodies = [
        first.build(2000.0).body,
        second.build(2000.0).body,  # same clock, another request object with the same key
        first.build(1500.0).body,  # the clock stepped back
        second.build(2000.5).body,
    ]
    nonces = [int(parse_qs(body.decode())["nonce"][0]) for body in bodies]
    assert nonces == [2_000_000, 2_000_001, 2_000_002, 2_000_500]


def test_build_nonces_are_independent_between_keys() -> None:
    a = TokenRequest(rest_url="https://api.kraken.com", api_key=fresh_key(), api_secret=SECRET)
    b = TokenRequest(rest_url="https://api.kraken.com", api_key=fresh_key(), api_secret=SECRET)
    assert a.build(3000.0).body == b"nonce=3000000"
    assert a.build(3000.0).body == b"nonce=3000001"
    assert b.build(3000.0).body == b"nonce=3000000"


def test_build_signature_verifies_for_each_request() -> None:
    key = fresh_key()
    request = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    for wall in (10.0, 10.0, 5.0):
        http = request.build(wall)
        body = http.body.decode()
        nonce = parse_qs(body)["nonce"][0]
        assert dict(http.headers)["API-Sign"] == reference_signature(
            TOKEN_PATH, body, nonce, SECRET
        )


@pytest.mark.parametrize(
    ("field", "key", "secret"),
    [
        ("api_key", "", SECRET),
        ("api_key", "Zq9Kw\r\nX-Evil: 1", SECRET),
        ("api_secret", "Key", ""),
        ("api_secret", "Key", "Zq9Kw base64!"),
    ],
)
def test_token_request_validates_credentials(field: str, key: str, secret: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=secret)
    assert info.value.field == field
    assert "Zq9Kw" not in str(info.value)


def test_token_request_redacts_key_and_secret() -> None:
    key = fresh_key()
    request = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    http = request.build(1.0)
    texts = [
        repr(request),
        str(request),
        f"{request}",
        repr([request]),
        repr(FetchToken(request=http)),
        repr(http),
        repr(request.__rich_repr__()),
    ]
    for text in texts:
        assert key not in text
        assert SECRET not in text
        assert SECRET[:16] not in text
    assert (
        repr(request)
        == "TokenRequest(rest_url='https://api.kraken.com', api_key='***', api_secret='***')"
    )
    assert request.__rich_repr__() == [
        ("rest_url", "https://api.kraken.com"),
        ("api_key", "***"),
        ("api_secret", "***"),
    ]


def test_token_request_is_frozen_and_keeps_values() -> None:
    key = fresh_key()
    request = TokenRequest(rest_url="https://api.kraken.com", api_key=key, api_secret=SECRET)
    assert (request.api_key, request.api_secret) == (key, SECRET)
    with pytest.raises(AttributeError):
        request.api_key = "other"  # type: ignore[misc]


# ----------------------------------------------------------------------------- responses


def test_parse_token_response_success() -> None:
    body = json.dumps({"error": [], "result": {"token": TOKEN, "expires": 900}})
    assert parse_token_response(body) == TOKEN
    assert parse_token_response(body.encode()) == TOKEN


def test_parse_token_response_without_error_key() -> None:
    assert parse_token_response(b'{"result":{"token":"abc"}}') == "abc"


TERMINAL = [
    "EAPI:Invalid key",
    "EAPI:Invalid signature",
    "EGeneral:Permission denied",
    "EAuth:Account temporary disabled",
    "EAuth:Account unconfirmed",
]
TRANSIENT = [
    "EAPI:Invalid nonce",
    "EGeneral:Temporary lockout",
    "EAuth:Rate limit exceeded",
    "EAuth:Too many requests",
    "ESession:Invalid session",
    "EAPI:Invalid token",
    "EService:Unavailable",
    "EService:Busy",
    "EService:Deadline elapsed",
    "EGeneral:Internal error",
    "EGeneral:Internal error:123",
    "EQuery:Unknown asset pair",
    "",
    "EAPI:Invalid keys",  # a different error that merely starts like a terminal one
]


@pytest.mark.parametrize("error", TERMINAL)
def test_terminal_errors(error: str) -> None:
    assert is_terminal_auth_error(error) is True
    assert is_terminal_auth_error(error + ":detail") is True


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_errors(error: str) -> None:
    assert is_terminal_auth_error(error) is False


def test_auth_errors_lists_every_documented_string() -> None:
    assert set(AUTH_ERRORS) == {
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
    }
    assert len(AUTH_ERRORS) == 11
    assert {e for e in AUTH_ERRORS if is_terminal_auth_error(e)} == set(TERMINAL)


@pytest.mark.parametrize("error", TERMINAL + TRANSIENT[:-2])
def test_parse_token_response_raises_classified_errors(error: str) -> None:
    body = json.dumps({"error": [error]})
    with pytest.raises(AuthenticationError) as info:
        parse_token_response(body)
    assert info.value.error == error
    assert str(info.value) == error
    assert info.value.terminal is (error in TERMINAL)


def test_parse_token_response_prefers_a_terminal_error() -> None:
    body = json.dumps({"error": ["EAPI:Invalid nonce", "EAPI:Invalid key"], "result": {}})
    with pytest.raises(AuthenticationError) as info:
        parse_token_response(body)
    assert info.value.error == "EAPI:Invalid key"
    assert info.value.terminal is True


def test_parse_token_response_reports_the_first_of_transient_errors() -> None:
    body = json.dumps({"error": ["EService:Busy", "EAPI:Invalid nonce"]})
    with pytest.raises(AuthenticationError) as info:
        parse_token_response(body)
    assert info.value.error == "EService:Busy"
    assert info.value.terminal is False


def test_parse_token_response_truncates_huge_error_text() -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_token_response(json.dumps({"error": ["EService:" + "x" * 5000]}))
    assert len(info.value.error) == 200


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"", "not JSON"),
        (b"<html>429 Too Many Requests</html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ('{"error": [], "result": {"token": "' + TOKEN, "not JSON"),
        (b"[]", "not a JSON object"),
        (b'"' + TOKEN.encode() + b'"', "not a JSON object"),
        (b'{"error": "EAPI:Invalid key"}', "'error' is not a list of strings"),
        (b'{"error": [1]}', "'error' is not a list of strings"),
        (b'{"error": []}', "no 'result' object"),
        (b'{"error": [], "result": ["' + TOKEN.encode() + b'"]}', "no 'result' object"),
        (b'{"error": [], "result": {}}', "'result.token' is not a non-empty string"),
        (b'{"error": [], "result": {"token": ""}}', "'result.token' is not a non-empty string"),
        (b'{"error": [], "result": {"token": 12345}}', "'result.token' is not a non-empty string"),
    ],
)
def test_parse_token_response_rejects_malformed_bodies(body: bytes | str, what: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_token_response(body)
    assert str(info.value) == f"malformed GetWebSocketsToken response: {what}"
    assert info.value.terminal is False
    assert TOKEN not in str(info.value)
    assert info.value.__cause__ is None


@given(st.binary(max_size=200))
def test_parse_token_response_never_raises_anything_else(body: bytes) -> None:
    try:
        token = parse_token_response(body)
    except AuthenticationError as error:
        assert isinstance(error.terminal, bool)
    else:
        assert isinstance(token, str) and token


def test_parse_token_response_errors_never_carry_the_token() -> None:
    for body in (
        {"error": ["EService:Busy"], "result": {"token": TOKEN}},
        {"error": [], "result": {"token": [TOKEN]}},
    ):
        with pytest.raises(AuthenticationError) as info:
            parse_token_response(msgspec.json.encode(body))
        assert TOKEN not in str(info.value)
        assert TOKEN not in repr(info.value)
        assert TOKEN not in info.value.error
