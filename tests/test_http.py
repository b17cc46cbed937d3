"""The HTTP request description never shows credentials."""

from __future__ import annotations

from kraken_proto.http import HttpRequest


def test_repr_and_rich_repr_redact_headers_and_body() -> None:
    request = HttpRequest(
        method="POST",
        url="https://api.kraken.com/0/private/GetWebSocketsToken",
        headers=(("API-Key", "SECRETKEY"), ("API-Sign", "SIGNATURE")),
        body=b"nonce=1",
    )
    shown = repr(request) + repr(list(request.__rich_repr__()))
    assert "SECRETKEY" not in shown and "SIGNATURE" not in shown and "nonce" not in shown
    assert "('API-Key', '***')" in repr(request)
    assert ("url", request.url) in list(request.__rich_repr__())
