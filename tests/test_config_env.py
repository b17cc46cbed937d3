"""``ClientConfig.from_env``: endpoints and credentials from the environment."""

from __future__ import annotations

import pytest

from kraken_proto import ClientConfig
from kraken_proto.errors import ConfigurationError

VARIABLES = (
    "KRAKEN_API_KEY",
    "KRAKEN_API_SECRET",
    "KRAKEN_WS_ENDPOINT",
    "KRAKEN_WS_AUTH_ENDPOINT",
    "KRAKEN_WS_LEVEL3_ENDPOINT",
    "KRAKEN_REST_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_endpoints_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_WS_ENDPOINT", " ws://127.0.0.1:8765/v2 ")
    monkeypatch.setenv("KRAKEN_WS_AUTH_ENDPOINT", "ws://127.0.0.1:8765/auth/v2")
    monkeypatch.setenv("KRAKEN_WS_LEVEL3_ENDPOINT", "ws://127.0.0.1:8765/level3/v2")
    monkeypatch.setenv("KRAKEN_REST_URL", "http://127.0.0.1:8765")
    config = ClientConfig.from_env()
    assert config.endpoint == "ws://127.0.0.1:8765/v2"
    assert config.auth_endpoint == "ws://127.0.0.1:8765/auth/v2"
    assert config.level3_endpoint == "ws://127.0.0.1:8765/level3/v2"
    assert config.rest_url == "http://127.0.0.1:8765"


def test_unset_or_empty_endpoints_are_krakens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_WS_ENDPOINT", "   ")
    config = ClientConfig.from_env()
    default = ClientConfig()
    assert (config.endpoint, config.auth_endpoint, config.level3_endpoint, config.rest_url) == (
        default.endpoint,
        default.auth_endpoint,
        default.level3_endpoint,
        default.rest_url,
    )


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_WS_ENDPOINT", "ws://127.0.0.1:1/v2")
    config = ClientConfig.from_env(endpoint="ws://127.0.0.1:2/v2")
    assert config.endpoint == "ws://127.0.0.1:2/v2"


def test_a_bad_endpoint_in_the_environment_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KRAKEN_WS_ENDPOINT", "http://127.0.0.1:1/v2")
    with pytest.raises(ConfigurationError, match="endpoint"):
        ClientConfig.from_env()


@pytest.mark.parametrize(
    "rest_url",
    [
        "http://127.0.0.1:8765/0/private/GetWebSocketsToken",
        "https://api.kraken.com/0/",
        "https://api.kraken.com?x=1",
        "https://api.kraken.com#token",
    ],
)
def test_a_rest_url_with_a_path_is_refused(rest_url: str) -> None:
    # A path used to be appended to (a 404 from the token endpoint, retried for ever).
    with pytest.raises(ConfigurationError, match=r"rest_url: must be the base URL alone"):
        ClientConfig(rest_url=rest_url)


@pytest.mark.parametrize("rest_url", ["https://api.kraken.com", "https://api.kraken.com/"])
def test_a_base_rest_url_is_accepted(rest_url: str) -> None:
    assert ClientConfig(rest_url=rest_url).rest_url == rest_url
