"""``kraken-ws serve`` prints what a client needs, as it is to be pasted, and it works.

The command runs as a subprocess on a free loopback port; what it printed is parsed, turned
into a :class:`ClientConfig` exactly as a user would paste it, and used for a public, a
private (token fetched from the printed ``rest_url``) and a level3 connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cliproc import cli_process

from kraken_proto import ClientConfig
from kraken_proto.auth import TOKEN_PATH
from kraken_proto.config import ReconnectConfig
from kraken_proto.simulator import SIM_API_KEY, SIM_API_SECRET, FakeExchange
from kraken_transports import cli
from kraken_transports.aio import connect
from kraken_transports.simserver import (
    ENVIRONMENT_VARIABLES,
    SimServer,
    client_settings,
    connection_text,
)

REPO = Path(__file__).resolve().parents[2]
FIELDS = ("endpoint", "auth_endpoint", "level3_endpoint", "rest_url", "api_key", "api_secret")
FIELD_RE = re.compile(rf"^  ({'|'.join(FIELDS)}) +(\S+)", re.MULTILINE)
PASTE_MARK = "# paste into Python:"


def printed_fields(text: str) -> dict[str, str]:
    """The ``name value`` lines of what serve printed."""
    return dict(FIELD_RE.findall(text))


def shell_environment(text: str) -> dict[str, str]:
    """The variables a POSIX shell has after running the printed ``export`` lines."""
    exports = [line for line in text.splitlines() if line.startswith("export ")]
    assert len(exports) == len(ENVIRONMENT_VARIABLES), text
    show = [f'printf "%s=%s\\n" {name} "${name}"' for name in ENVIRONMENT_VARIABLES.values()]
    done = subprocess.run(
        ["/bin/sh", "-c", "\n".join(exports + show)],
        env={},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def pasted_config(text: str) -> ClientConfig:
    """Run the printed Python, from the paste mark on, as a user pasting it would."""
    namespace: dict[str, Any] = {}
    exec(compile(text[text.index(PASTE_MARK) :], "<pasted>", "exec"), namespace)
    config = namespace["config"]
    assert isinstance(config, ClientConfig)
    return config


async def prove_every_host(config: ClientConfig) -> None:
    """A public book, a private executions subscription and a level3 book all acknowledged."""
    # Fail fast instead of retrying forever if a URL were wrong.
    quick = dataclasses.replace(config, reconnect=ReconnectConfig(max_attempts=1))
    async with connect(quick) as public:
        acks = await public.subscribe("book", ["BTC/USD"], depth=10)
        assert [(a.channel, a.symbol) for a in acks] == [("book", "BTC/USD")]
    async with connect(quick, private=True) as private:
        # Only possible with a WebSocket token fetched from the printed rest_url.
        acks = await private.subscribe("executions", snap_orders=True)
        assert [(a.channel, a.symbol) for a in acks] == [("executions", None)]
    async with connect(quick, level3=True) as level3:
        acks = await level3.subscribe("level3", ["BTC/USD"])
        assert [(a.channel, a.symbol) for a in acks] == [("level3", "BTC/USD")]


def test_serve_prints_a_pasteable_config_that_makes_private_connections_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with cli_process("serve", "--port", "0", "--seed", "5") as process:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != ")\n":  # the end of the pasteable block
            line = process.stdout.readline()
            assert line, f"serve ended before printing its config: {''.join(lines)}"
            lines.append(line)
        text = "".join(lines)

        fields = printed_fields(text)
        assert set(fields) == set(FIELDS), text
        port = urlsplit(fields["endpoint"]).port
        assert port and port != 8765
        base = f"127.0.0.1:{port}"
        assert fields == {
            "endpoint": f"ws://{base}/v2",
            "auth_endpoint": f"ws://{base}/auth/v2",
            "level3_endpoint": f"ws://{base}/l3/v2",
            "rest_url": f"http://{base}",  # the base URL: no token path to double up
            "api_key": SIM_API_KEY,
            "api_secret": SIM_API_SECRET,
        }
        assert text.startswith(f"Kraken simulator (seed 5) listening on {base}; Ctrl-C")
        assert TOKEN_PATH in text  # said, but only as what the request adds

        # The single values, the Python block and the shell lines: the same configuration.
        config = pasted_config(text)
        assert config == ClientConfig(**fields)
        assert config.credentials_set
        environment = shell_environment(text)
        assert environment == {ENVIRONMENT_VARIABLES[name]: fields[name] for name in FIELDS}
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        assert ClientConfig.from_env() == config

        asyncio.run(asyncio.wait_for(prove_every_host(config), 30))

        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "simulator stopped" in err
    assert "Traceback" not in err


def test_printed_config_for_every_interface_and_for_a_remote_host() -> None:
    # Not bound: only the printing is exercised, nothing listens or connects.
    every = SimServer(FakeExchange(seed=0), "0.0.0.0")
    every.port = 8765
    settings = client_settings(every)
    assert settings["endpoint"] == "ws://127.0.0.1:8765/v2"  # reachable as printed
    assert settings["rest_url"] == "http://127.0.0.1:8765"
    text = connection_text(every, 0)
    assert "listening on 0.0.0.0:8765" in text
    assert "allow_insecure" not in text
    assert pasted_config(text) == ClientConfig(**settings)

    six = SimServer(FakeExchange(seed=0), "::")
    six.port = 8765
    assert client_settings(six)["auth_endpoint"] == "ws://[::1]:8765/auth/v2"
    text = connection_text(six, 0)
    assert "listening on [::]:8765" in text
    # Brackets are quoted for the shell, which would otherwise treat them as a pattern.
    assert "export KRAKEN_WS_AUTH_ENDPOINT='ws://[::1]:8765/auth/v2'" in text
    assert shell_environment(text)["KRAKEN_WS_AUTH_ENDPOINT"] == "ws://[::1]:8765/auth/v2"
    assert pasted_config(text).level3_endpoint == "ws://[::1]:8765/l3/v2"

    remote = SimServer(FakeExchange(seed=0), "192.0.2.7")  # TEST-NET-1, never reached
    remote.port = 8765
    text = connection_text(remote, 3)
    assert printed_fields(text)["level3_endpoint"] == "ws://192.0.2.7:8765/l3/v2"
    config = pasted_config(text)  # ws:// to a remote host needs allow_insecure
    assert config.allow_insecure
    assert "pass allow_insecure=True" in text  # said for from_env() too
    assert config.rest_url == "http://192.0.2.7:8765"


def test_serve_help_names_every_host_and_the_config_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for text in (
        "ws://HOST:PORT/v2",
        "public host (ws.kraken.com)",
        "ws://HOST:PORT/auth/v2",
        "private host (ws-auth.kraken.com)",
        "ws://HOST:PORT/l3/v2",
        "level3 host (ws-l3.kraken.com)",
        "http://HOST:PORT",
        "rest_url",
        "auth_endpoint",
        "level3_endpoint",
        "test API key",
        "KRAKEN_WS_ENDPOINT",
        "ClientConfig.from_env()",
        "exit code 130",
    ):
        assert text in out, text
