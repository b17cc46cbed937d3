"""Kraken's hosts (kraken_proto.host) and which channels each serves."""

from __future__ import annotations

import pytest

from kraken_proto import ClientConfig, Host, LocalProtocolError
from kraken_proto.subscriptions import (
    CHANNELS_BY_HOST,
    validate_subscription,
    validate_unsubscription,
)


def test_values_token_and_urls() -> None:
    config = ClientConfig()
    assert [(host.value, host.needs_token) for host in Host] == [
        ("public", False),
        ("auth", True),
        ("level3", True),
    ]
    assert Host.PUBLIC.url(config) == "wss://ws.kraken.com/v2"
    assert Host.AUTH.url(config) == "wss://ws-auth.kraken.com/v2"
    assert Host.LEVEL3.url(config) == "wss://ws-l3.kraken.com/v2"


def test_every_channel_has_exactly_one_host() -> None:
    channels = [c for host in Host for c in CHANNELS_BY_HOST[host]]
    assert len(channels) == len(set(channels)) == 8


@pytest.mark.parametrize("host", [Host.AUTH, "auth"])
def test_validation_takes_the_host_or_its_value(host: Host | str) -> None:
    assert validate_subscription("executions", None, {}, 0, host)[0] == (None,)
    assert validate_unsubscription("balances", None, {}, host) == (None,)
    with pytest.raises(LocalProtocolError, match="not served on this auth connection"):
        validate_subscription("book", ["BTC/USD"], {}, 0, host)
    with pytest.raises(ValueError, match="'nowhere' is not a valid Host"):
        validate_subscription("book", ["BTC/USD"], {}, 0, "nowhere")
