"""The error hierarchy: who is at fault, and the context each error carries."""

from __future__ import annotations

import pytest

from kraken_proto import (
    AuthenticationError,
    BookNotLiveError,
    ConfigurationError,
    KrakenConnectionError,
    KrakenError,
    LocalProtocolError,
    NetworkError,
    ParseError,
    SubscriptionError,
)


def test_every_error_is_a_kraken_error() -> None:
    for cls in (
        AuthenticationError,
        BookNotLiveError,
        ConfigurationError,
        KrakenConnectionError,
        LocalProtocolError,
        NetworkError,
        ParseError,
        SubscriptionError,
    ):
        assert issubclass(cls, KrakenError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(NetworkError, KrakenConnectionError)


def test_errors_carry_what_is_needed_to_act() -> None:
    config = ConfigurationError("reconnect.max_delay", "must be >= initial_delay")
    assert (config.field, str(config)) == (
        "reconnect.max_delay",
        "reconnect.max_delay: must be >= initial_delay",
    )
    closed = KrakenConnectionError("closed by server", code=1008, terminal=True)
    assert (closed.code, closed.terminal) == (1008, True)
    network = NetworkError("connect timed out")
    assert (network.code, network.terminal) == (None, False)
    parse = ParseError("bad frame", payload='{"channel":')
    assert parse.payload == '{"channel":'
    refused = SubscriptionError("ticker", "XBT/USD", "Currency pair not supported XBT/USD")
    assert str(refused) == (
        "subscription ticker XBT/USD failed: Currency pair not supported XBT/USD"
    )
    assert (refused.channel, refused.symbol, refused.error) == (
        "ticker",
        "XBT/USD",
        "Currency pair not supported XBT/USD",
    )
    assert str(SubscriptionError("instrument", None, "x")) == "subscription instrument failed: x"
    auth = AuthenticationError("EAPI:Invalid key", terminal=True)
    assert (auth.error, auth.terminal, str(auth)) == ("EAPI:Invalid key", True, "EAPI:Invalid key")
    stale = BookNotLiveError("BTC/USD", "resyncing")
    assert (stale.symbol, stale.state) == ("BTC/USD", "resyncing")
    with pytest.raises(KrakenError, match="not live"):
        raise stale
