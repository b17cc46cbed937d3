"""Tests for kraken_proto.config: defaults, validation naming the field, immutability, secrets."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import random
from types import MappingProxyType
from typing import Any

import pytest

from kraken_proto.config import (
    MIN_PING_INTERVAL,
    BackpressureConfig,
    ClientConfig,
    DropPolicy,
    GapPolicy,
    Precision,
    ReconnectConfig,
    is_loopback_url,
)
from kraken_proto.errors import ConfigurationError

KEY = "K3yWithN0Spaces+/="
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="


def expect_field(field: str, factory: Any, **kwargs: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        factory(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value


# ----------------------------------------------------------------------------- defaults


def test_client_config_defaults() -> None:
    config = ClientConfig()
    assert config.endpoint == "wss://ws.kraken.com/v2"
    assert config.auth_endpoint == "wss://ws-auth.kraken.com/v2"
    assert config.rest_url == "https://api.kraken.com"
    assert config.api_key is None
    assert config.api_secret is None
    assert config.credentials_set is False
    assert config.timeout == 10.0
    assert config.ack_timeout == 10.0
    assert config.stale_timeout == 10.0
    assert config.silent_subscription_timeout is None
    assert config.ping_interval == 20.0
    assert config.buffer_size == 65_536
    assert config.max_message_size == 8 * 1024 * 1024
    assert config.reconnect == ReconnectConfig()
    assert config.backpressure == BackpressureConfig()
    assert config.gap_policy is GapPolicy.RESYNC
    assert config.gap_buffer_size == 100
    assert dict(config.precisions) == {}
    assert isinstance(config.precisions, MappingProxyType)
    assert config.depth_headroom == 0
    assert config.resync_max_attempts == 3
    assert config.resync_window == 60.0
    assert config.max_requests_per_second == 20.0
    assert config.request_burst == 10
    assert config.allow_insecure is False
    assert isinstance(config.rng, random.Random)


def test_nested_defaults() -> None:
    reconnect = ReconnectConfig()
    assert (
        reconnect.max_attempts,
        reconnect.initial_delay,
        reconnect.max_delay,
        reconnect.backoff_multiplier,
        reconnect.jitter,
    ) == (None, 0.1, 30.0, 2.0, 0.2)
    backpressure = BackpressureConfig()
    assert (
        backpressure.max_queue_depth,
        backpressure.drop_policy,
        backpressure.max_messages_per_second,
        backpressure.coalesce_window,
    ) == (10_000, DropPolicy.OLDEST, None, 0.0)
    assert Precision(price=1, qty=8) == Precision(price=1, qty=8)


def test_enum_values() -> None:
    assert [p.value for p in DropPolicy] == ["oldest", "latest", "coalesce"]
    assert [p.value for p in GapPolicy] == ["resync", "ignore", "buffer"]


def test_each_default_instance_has_its_own_rng() -> None:
    assert ClientConfig().rng is not ClientConfig().rng


def test_valid_non_default_values_are_kept() -> None:
    rng = random.Random(7)
    config = ClientConfig(
        endpoint="ws://127.0.0.1:8765/v2",
        auth_endpoint="ws://localhost:8766/v2",
        rest_url="http://[::1]:8080",
        api_key=KEY,
        api_secret=SECRET,
        timeout=1,
        silent_subscription_timeout=5,
        ping_interval=None,
        buffer_size=1024,
        max_message_size=1024,
        reconnect=ReconnectConfig(max_attempts=0, initial_delay=2, max_delay=2, jitter=1),
        backpressure=BackpressureConfig(
            max_queue_depth=1,
            drop_policy=DropPolicy.COALESCE,
            max_messages_per_second=0.5,
            coalesce_window=0.25,
        ),
        gap_policy=GapPolicy.BUFFER,
        gap_buffer_size=1,
        precisions={"BTC/USD": Precision(price=1, qty=8)},
        depth_headroom=5,
        resync_max_attempts=1,
        resync_window=0.5,
        max_requests_per_second=0.1,
        request_burst=1,
        rng=rng,
    )
    assert config.credentials_set is True
    assert config.api_key == KEY and config.api_secret == SECRET
    assert config.timeout == 1.0 and type(config.timeout) is float
    assert config.silent_subscription_timeout == 5.0
    assert type(config.silent_subscription_timeout) is float
    assert config.ping_interval is None
    assert config.reconnect.initial_delay == 2.0 and type(config.reconnect.initial_delay) is float
    assert config.reconnect.jitter == 1.0
    assert config.backpressure.drop_policy is DropPolicy.COALESCE
    assert config.precisions["BTC/USD"] == Precision(price=1, qty=8)
    assert config.rng is rng


def test_ping_interval_has_a_floor_of_one_second() -> None:
    """Issue 9, item 4: an interval of 0.001 s once queued thousands of pings and starved
    every other request. The floor is Kraken's own heartbeat period."""
    assert MIN_PING_INTERVAL == 1.0
    assert ClientConfig(ping_interval=1).ping_interval == 1.0
    assert ClientConfig(ping_interval=None).ping_interval is None
    with pytest.raises(ConfigurationError) as caught:
        ClientConfig(ping_interval=0.001)
    assert caught.value.field == "ping_interval"
    message = str(caught.value)
    assert "must be >= 1 s" in message and "0.001" in message and "None" in message


def test_precision_bounds_inclusive() -> None:
    assert Precision(price=0, qty=18) == Precision(price=0, qty=18)


# ----------------------------------------------------------------------------- rejection

BAD_CLIENT_VALUES = [
    # URLs
    ("endpoint", 5),
    ("endpoint", "https://ws.kraken.com/v2"),
    ("endpoint", "WSS://ws.kraken.com/v2"),
    ("endpoint", "wss://"),
    ("endpoint", "wss://ws.kraken.com/v2 "),
    ("endpoint", "wss://ws.kraken.com/\nv2"),
    ("endpoint", "wss://[::1/v2"),
    ("endpoint", "wss://ws.kraken.com:notaport/v2"),
    ("endpoint", "wss://ws.kraken.com:70000/v2"),
    ("endpoint", "ws://ws.kraken.com/v2"),
    ("auth_endpoint", None),
    ("auth_endpoint", "ws://10.0.0.1/v2"),
    ("auth_endpoint", "http://ws-auth.kraken.com/v2"),
    ("rest_url", "wss://api.kraken.com"),
    ("rest_url", b"https://api.kraken.com"),
    ("rest_url", "http://api.kraken.com"),
    # durations
    ("timeout", 0),
    ("timeout", -1.0),
    ("timeout", math.nan),
    ("timeout", math.inf),
    ("timeout", "10"),
    ("timeout", True),
    ("timeout", None),
    ("timeout", 10**400),
    ("ack_timeout", 0.0),
    ("ack_timeout", -math.inf),
    ("stale_timeout", 0.0),
    ("stale_timeout", [1.0]),
    ("silent_subscription_timeout", 0.0),
    ("silent_subscription_timeout", math.nan),
    ("silent_subscription_timeout", False),
    ("ping_interval", 0.0),
    ("ping_interval", -5),
    ("ping_interval", math.inf),
    ("ping_interval", 0.001),  # below MIN_PING_INTERVAL (issue 9, item 4)
    ("ping_interval", 0.999),
    # sizes and counts
    ("buffer_size", 1023),
    ("buffer_size", 65536.0),
    ("buffer_size", True),
    ("buffer_size", None),
    ("max_message_size", 0),
    ("max_message_size", "big"),
    ("gap_buffer_size", 0),
    ("gap_buffer_size", True),
    ("depth_headroom", -1),
    ("depth_headroom", 1.5),
    ("resync_max_attempts", 0),
    ("resync_max_attempts", False),
    ("resync_window", 0.0),
    ("resync_window", math.nan),
    ("max_requests_per_second", 0.0),
    ("max_requests_per_second", None),
    ("max_requests_per_second", math.inf),
    ("request_burst", 0),
    ("request_burst", 10.0),
    # policies and nested
    ("gap_policy", "sometimes"),
    ("gap_policy", 1),
    ("gap_policy", DropPolicy.OLDEST),
    ("reconnect", None),
    ("reconnect", BackpressureConfig()),
    ("backpressure", 5),
    ("precisions", [("BTC/USD", Precision(price=1, qty=8))]),
    ("allow_insecure", 1),
    ("allow_insecure", "yes"),
    ("rng", random),
    ("rng", None),
]


@pytest.mark.parametrize(("field", "value"), BAD_CLIENT_VALUES)
def test_client_config_rejects_bad_value_naming_field(field: str, value: object) -> None:
    expect_field(field, ClientConfig, **{field: value})


BAD_RECONNECT_VALUES = [
    ("max_attempts", -1),
    ("max_attempts", 1.0),
    ("max_attempts", True),
    ("initial_delay", 0),
    ("initial_delay", -0.1),
    ("initial_delay", math.nan),
    ("initial_delay", math.inf),
    ("initial_delay", None),
    ("max_delay", 0.05),  # below the default initial_delay of 0.1
    ("max_delay", math.inf),
    ("max_delay", -1),
    ("max_delay", "30"),
    ("backoff_multiplier", 0.5),
    ("backoff_multiplier", math.nan),
    ("backoff_multiplier", False),
    ("jitter", -0.01),
    ("jitter", 1.01),
    ("jitter", math.nan),
    ("jitter", None),
]


@pytest.mark.parametrize(("field", "value"), BAD_RECONNECT_VALUES)
def test_reconnect_config_rejects_bad_value(field: str, value: object) -> None:
    expect_field(field, ReconnectConfig, **{field: value})


@pytest.mark.parametrize(("field", "value"), BAD_RECONNECT_VALUES)
def test_reconnect_errors_nested_in_client_config(field: str, value: object) -> None:
    expect_field(f"reconnect.{field}", ClientConfig, reconnect={field: value})


BAD_BACKPRESSURE_VALUES = [
    ("max_queue_depth", 0),
    ("max_queue_depth", 1.0),
    ("max_queue_depth", True),
    ("drop_policy", "newest"),
    ("drop_policy", GapPolicy.RESYNC),
    ("drop_policy", None),
    ("max_messages_per_second", 0),
    ("max_messages_per_second", -1.0),
    ("max_messages_per_second", math.inf),
    ("max_messages_per_second", math.nan),
    ("coalesce_window", -0.001),
    ("coalesce_window", math.nan),
    ("coalesce_window", None),
]


@pytest.mark.parametrize(("field", "value"), BAD_BACKPRESSURE_VALUES)
def test_backpressure_config_rejects_bad_value(field: str, value: object) -> None:
    expect_field(field, BackpressureConfig, **{field: value})


@pytest.mark.parametrize(("field", "value"), BAD_BACKPRESSURE_VALUES)
def test_backpressure_errors_nested_in_client_config(field: str, value: object) -> None:
    expect_field(f"backpressure.{field}", ClientConfig, backpressure={field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", -1), ("price", 19), ("price", 1.0), ("price", True), ("qty", -1), ("qty", 19)],
)
def test_precision_rejects_bad_value(field: str, value: object) -> None:
    kwargs: dict[str, object] = {"price": 1, "qty": 8, field: value}
    expect_field(field, Precision, **kwargs)


def test_error_messages_say_what_is_wrong() -> None:
    assert "must be > 0.0, got -1.0" in str(expect_field("timeout", ClientConfig, timeout=-1))
    assert "must be finite" in str(expect_field("timeout", ClientConfig, timeout=math.inf))
    assert "use None" in str(expect_field("timeout", ClientConfig, timeout=math.inf))
    assert "must be an int, got bool" in str(
        expect_field("buffer_size", ClientConfig, buffer_size=True)
    )
    message = str(expect_field("max_delay", ReconnectConfig, initial_delay=2.0, max_delay=1.0))
    assert message == "max_delay: must be >= initial_delay (2.0), got 1.0"
    assert "allow_insecure=True" in str(
        expect_field("endpoint", ClientConfig, endpoint="ws://example.com/v2")
    )
    assert "'oldest', 'latest', 'coalesce'" in str(
        expect_field("drop_policy", BackpressureConfig, drop_policy="newest")
    )
    assert "must be <= 18, got 19" in str(expect_field("price", Precision, price=19, qty=0))


# ----------------------------------------------------------------------------- nested as data


def test_nested_configs_and_enums_accept_plain_data() -> None:
    # What a JSON/TOML loader would hand over (hence the Any: statically these are typed).
    plain: dict[str, Any] = {
        "reconnect": {"max_attempts": 3, "initial_delay": 0.5},
        "backpressure": {"drop_policy": "latest"},
        "gap_policy": "ignore",
        "precisions": {"ETH/USD": {"price": 2, "qty": 8}},
    }
    config = ClientConfig(**plain)
    assert config.reconnect == ReconnectConfig(max_attempts=3, initial_delay=0.5)
    assert config.backpressure.drop_policy is DropPolicy.LATEST
    assert config.gap_policy is GapPolicy.IGNORE
    assert config.precisions["ETH/USD"] == Precision(price=2, qty=8)


def test_unknown_nested_field_is_named() -> None:
    expect_field("reconnect.max_retries", ClientConfig, reconnect={"max_retries": 3})
    expect_field("backpressure.5", ClientConfig, backpressure={5: 1})


def test_precision_entries_validated_and_named() -> None:
    expect_field(
        "precisions['XBTUSD']", ClientConfig, precisions={"XBTUSD": Precision(price=1, qty=1)}
    )
    expect_field(
        "precisions['BTC/USD/X']", ClientConfig, precisions={"BTC/USD/X": Precision(price=1, qty=1)}
    )
    expect_field(
        "precisions['BTC /USD']", ClientConfig, precisions={"BTC /USD": Precision(price=1, qty=1)}
    )
    expect_field("precisions[7]", ClientConfig, precisions={7: Precision(price=1, qty=1)})
    expect_field("precisions['BTC/USD']", ClientConfig, precisions={"BTC/USD": (1, 8)})
    expect_field(
        "precisions['BTC/USD'].qty", ClientConfig, precisions={"BTC/USD": {"price": 1, "qty": 99}}
    )


def test_precisions_are_an_immutable_copy() -> None:
    table = {"BTC/USD": Precision(price=1, qty=8)}
    config = ClientConfig(precisions=table)
    table["ETH/USD"] = Precision(price=2, qty=8)
    assert list(config.precisions) == ["BTC/USD"]
    with pytest.raises(TypeError):
        config.precisions["ETH/USD"] = Precision(price=2, qty=8)  # type: ignore[index]


# ----------------------------------------------------------------------------- credentials


def test_credentials_both_or_neither() -> None:
    assert "api_secret is set" in str(expect_field("api_key", ClientConfig, api_secret=SECRET))
    assert "api_key is set" in str(expect_field("api_secret", ClientConfig, api_key=KEY))
    assert ClientConfig(api_key=KEY, api_secret=SECRET).credentials_set


@pytest.mark.parametrize(
    ("field", "key", "secret"),
    [
        ("api_key", 123, SECRET),
        ("api_secret", KEY, b"c2VjcmV0"),
        ("api_key", "", SECRET),
        ("api_key", "Zq9Kw with space", SECRET),
        ("api_key", "Zq9Kw\n", SECRET),
        ("api_key", "Zq9Kwé", SECRET),
        ("api_secret", KEY, ""),
        ("api_secret", KEY, "Zq9Kw base64!"),
        ("api_secret", KEY, SECRET[:-1]),
        ("api_secret", KEY, SECRET + "\n"),
        ("api_secret", KEY, "Zq9Kwé=="),
    ],
)
def test_bad_credentials_rejected_without_echoing_them(
    field: str, key: object, secret: object
) -> None:
    error = expect_field(field, ClientConfig, api_key=key, api_secret=secret)
    for shown in (key, secret):
        if isinstance(shown, str) and len(shown) > 3:
            assert shown.strip() not in str(error)


def test_repr_and_str_redact_credentials() -> None:
    config = ClientConfig(api_key=KEY, api_secret=SECRET)
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert KEY not in text
        assert SECRET not in text
        assert SECRET[:20] not in text
        assert "api_key='***'" in text
        assert "api_secret='***'" in text
    assert repr(config).startswith("ClientConfig(endpoint='wss://ws.kraken.com/v2', ")
    assert "rng=" not in repr(config)


def test_repr_shows_none_credentials_as_none() -> None:
    text = repr(ClientConfig())
    assert "api_key=None" in text
    assert "api_secret=None" in text
    assert "'***'" not in text


def test_from_env_reads_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_API_KEY", f"  {KEY}\n")
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    config = ClientConfig.from_env(timeout=3.0)
    assert config.api_key == KEY
    assert config.api_secret == SECRET
    assert config.timeout == 3.0


def test_from_env_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_API_KEY", "envkey")
    monkeypatch.setenv("KRAKEN_API_SECRET", "ZW52c2VjcmV0")
    config = ClientConfig.from_env(api_key=KEY, api_secret=SECRET)
    assert (config.api_key, config.api_secret) == (KEY, SECRET)
    public = ClientConfig.from_env(api_key=None, api_secret=None)
    assert public.credentials_set is False


def test_from_env_without_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRAKEN_API_KEY", raising=False)
    monkeypatch.setenv("KRAKEN_API_SECRET", "   ")
    config = ClientConfig.from_env()
    assert config.api_key is None and config.api_secret is None


def test_from_env_half_set_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAKEN_API_KEY", KEY)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.from_env()
    assert info.value.field == "api_secret"


# ----------------------------------------------------------------------------- immutability


@pytest.mark.parametrize(
    ("instance", "field", "value"),
    [
        (ClientConfig(), "timeout", 1.0),
        (ClientConfig(), "api_key", "x"),
        (ReconnectConfig(), "max_delay", 1.0),
        (BackpressureConfig(), "max_queue_depth", 1),
        (Precision(price=1, qty=1), "price", 2),
    ],
)
def test_configs_are_frozen(instance: object, field: str, value: object) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, field, value)


def test_replace_revalidates() -> None:
    config = ClientConfig()
    assert dataclasses.replace(config, timeout=2.0).timeout == 2.0
    with pytest.raises(ConfigurationError) as info:
        dataclasses.replace(config, timeout=0.0)
    assert info.value.field == "timeout"


def test_positional_arguments_are_not_accepted() -> None:
    with pytest.raises(TypeError):
        Precision(1, 8)  # type: ignore[call-arg]


def test_equality_and_hash_ignore_rng() -> None:
    a = ClientConfig(rng=random.Random(1), precisions={"BTC/USD": Precision(price=1, qty=8)})
    b = ClientConfig(rng=random.Random(2), precisions={"BTC/USD": Precision(price=1, qty=8)})
    assert a == b
    assert hash(a) == hash(b)
    assert a != ClientConfig(rng=random.Random(1))


def test_copy_and_pickle_round_trip() -> None:
    config = ClientConfig(precisions={"BTC/USD": Precision(price=1, qty=8)}, rng=random.Random(5))
    for clone in (copy.deepcopy(config), pickle.loads(pickle.dumps(config)), copy.copy(config)):
        assert clone == config
        assert isinstance(clone.precisions, MappingProxyType)
        assert clone.precisions["BTC/USD"] == Precision(price=1, qty=8)
        assert clone.rng.random() == random.Random(5).random()


# ----------------------------------------------------------------------------- loopback


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://localhost/v2", True),
        ("ws://LOCALHOST:8080/v2", True),
        ("ws://localhost./v2", True),
        ("ws://127.0.0.1:8765/v2", True),
        ("ws://127.255.0.9/v2", True),
        ("ws://[::1]:8765/v2", True),
        ("ws://[::ffff:127.0.0.1]/v2", True),
        ("http://user@127.0.0.1/", True),
        ("ws://[::ffff:10.0.0.1]/v2", False),
        ("ws://128.0.0.1/v2", False),
        ("ws://10.0.0.1/v2", False),
        ("ws://[::2]/v2", False),
        ("ws://ws.kraken.com/v2", False),
        ("ws://localhost.evil.com/v2", False),
        ("ws://127.0.0.1.evil.com/v2", False),
        ("ws://localhost@evil.com/v2", False),
        ("ws:///v2", False),
        ("ws://[::1/v2", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_is_loopback_url(url: str, expected: bool) -> None:
    assert is_loopback_url(url) is expected


def test_insecure_urls_to_loopback_are_allowed() -> None:
    config = ClientConfig(
        endpoint="ws://127.0.0.1:8765/v2",
        auth_endpoint="ws://[::1]:8765/v2",
        rest_url="http://localhost:8080",
    )
    assert config.endpoint == "ws://127.0.0.1:8765/v2"


def test_insecure_urls_elsewhere_need_allow_insecure() -> None:
    config = ClientConfig(
        endpoint="ws://10.1.2.3/v2",
        auth_endpoint="ws://sim.internal/v2",
        rest_url="http://sim.internal",
        allow_insecure=True,
    )
    assert config.allow_insecure is True
    assert config.auth_endpoint == "ws://sim.internal/v2"
