"""The socket driver's own private behaviour: a callback may not trade (it runs inside
``step()``), the token request on its helper thread, ``next_deadline`` while it runs.

The scenarios every driver shares are in ``test_private_scenarios.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import private_scenarios as scenarios
import pytest
from simthread import SimThread

from kraken_proto import ClientConfig, LocalProtocolError, StateChanged
from kraken_proto.http import HttpRequest
from kraken_proto.trading import CancelAll
from kraken_transports import sockets
from kraken_transports.sockets import SocketClient

KIND = "sockets"


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=21) as server:
        yield server


def test_submit_misuse(sim: SimThread) -> None:
    config = scenarios.private_config(sim)
    with pytest.raises(LocalProtocolError, match="needs api_key and api_secret"):
        SocketClient(ClientConfig(), level3=True)
    client = SocketClient(config, private=True)
    with pytest.raises(LocalProtocolError, match="needs a started client"):
        client.submit(CancelAll())
    client.connect()
    try:
        errors: list[Exception] = []

        def inside(_event: object) -> None:
            try:
                client.cancel_all()
            except LocalProtocolError as exc:
                errors.append(exc)

        remove = client.on(None, inside)
        client.wait_until(scenarios.S.SUBSCRIBED, timeout=5.0)
        remove()
        assert errors and "inside a callback" in str(errors[0])
    finally:
        client.close()


def test_token_wait_times_out_then_tokens_flow(sim: SimThread) -> None:
    scenarios.exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1000))
    client = SocketClient(scenarios.private_config(sim), private=True)
    client.connect()
    try:
        with pytest.raises(TimeoutError, match="did not become 'subscribed'"):
            client.cancel_all(timeout=0.3)
        assert client.next_deadline() is not None
        scenarios.exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1))
        assert client.cancel_all(timeout=5.0).count == 0
    finally:
        client.close()


def test_a_failing_token_fetch_is_retried(
    sim: SimThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = sockets.fetch_token_blocking  # type: ignore[attr-defined]
    calls: list[int] = []

    def flaky(request: HttpRequest, timeout: float, ssl_context: object = None) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the fetch")
        return real(request, timeout)

    monkeypatch.setattr(sockets, "fetch_token_blocking", flaky)
    client = SocketClient(scenarios.private_config(sim), private=True)
    seen: list[StateChanged] = []
    client.on(StateChanged, seen.append)
    with caplog.at_level(logging.ERROR, logger="kraken_transports"):
        client.connect()
        try:
            client.wait_until(scenarios.S.SUBSCRIBED, timeout=5.0)
        finally:
            client.close()
    assert [e.new for e in seen][:4] == ["connecting", "authenticating", "degraded", "connecting"]
    assert "token request failed: RuntimeError" in seen[2].reason
    assert len(calls) == 2
    assert "token request raised" in caplog.text
