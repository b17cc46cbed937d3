"""pytest fixtures for code written against kraken-ws-sdk (registered through ``pytest11``).

Active only in tests that ask for them. Importing this package imports nothing of the SDK
(pytest loads it before coverage starts; the fixtures import what they need when used):

- ``kraken_exchange``: Kraken simulated in memory on a fake clock
  (:class:`kraken_transports.testing.SimulatedKraken`), seeded; ``kraken_exchange.client()``
  gives a client with the drivers' methods. Parameters by the marker
  ``@pytest.mark.kraken(seed=0, symbols=None, **exchange_options)`` (``FakeExchange``
  options: ``tick_rate=``, ``balances=``, ``snapshot_delay=``, ...), or build several with
  the factory ``kraken_exchange_factory(**same)``.
- ``kraken_capture``: a recorded capture played in memory with the same API
  (:class:`kraken_transports.testing.RecordedKraken`), named by the marker
  ``@pytest.mark.kraken_capture("capture.jsonl")`` (relative paths from the test file's
  folder), or the factory ``kraken_capture_factory(path)``.
- ``kraken_server``: the simulator served on 127.0.0.1 for tests that need real sockets
  (:class:`kraken_transports.simserver.SimulatorThread`; ``kraken_server.client_config()``
  is the config that reaches it), built from the ``kraken`` marker's parameters and
  stopped after the test.

Every client made through the in-memory fixtures is closed after the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kraken_transports.simserver import SimulatorThread
    from kraken_transports.testing import RecordedKraken, SimulatedKraken

__all__ = [
    "kraken_capture",
    "kraken_capture_factory",
    "kraken_exchange",
    "kraken_exchange_factory",
    "kraken_server",
]

_MARKERS = (
    "kraken(seed=0, symbols=None, **exchange_options): the simulated exchange of the "
    "kraken_exchange and kraken_server fixtures",
    "kraken_capture(path): the capture the kraken_capture fixture plays",
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare this plugin's markers (so ``--strict-markers`` accepts them)."""
    for line in _MARKERS:
        config.addinivalue_line("markers", line)


def _marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("kraken")
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError("@pytest.mark.kraken takes keyword arguments only (seed=...)")
    return dict(marker.kwargs)


def _capture_path(request: pytest.FixtureRequest) -> str | os.PathLike[str]:
    marker = request.node.get_closest_marker("kraken_capture")
    path: str | os.PathLike[str]
    if marker is not None and len(marker.args) == 1 and not marker.kwargs:
        path = marker.args[0]
    elif marker is not None and not marker.args and list(marker.kwargs) == ["path"]:
        path = marker.kwargs["path"]  # kraken_capture(path=...)
    else:
        raise pytest.UsageError(
            "the kraken_capture fixture needs @pytest.mark.kraken_capture(path); "
            "or use kraken_capture_factory(path)"
        )
    return path


def _close_all(networks: list[Any]) -> None:
    """Close every in-memory client of ``networks`` (what ``close()`` does, synchronously:
    an async client's too)."""
    for network in networks:
        for peer in network.peers:
            driver = getattr(peer, "driver", None)
            if driver is not None:
                driver.close(network.now)
        network.settle()


@pytest.fixture
def kraken_exchange_factory() -> Iterator[Callable[..., SimulatedKraken]]:
    """Make in-memory simulated exchanges: ``factory(seed=0, symbols=None, **options)``."""
    from kraken_transports.testing import SimulatedKraken  # noqa: PLC0415 - only when used

    made: list[SimulatedKraken] = []

    def make(**options: Any) -> SimulatedKraken:
        network = SimulatedKraken(**options)
        made.append(network)
        return network

    yield make
    _close_all(made)


@pytest.fixture
def kraken_exchange(
    request: pytest.FixtureRequest, kraken_exchange_factory: Callable[..., SimulatedKraken]
) -> SimulatedKraken:
    """Kraken simulated in memory on a fake clock, seeded (``@pytest.mark.kraken(...)``)."""
    return kraken_exchange_factory(**_marker_options(request))


@pytest.fixture
def kraken_capture_factory(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[str | os.PathLike[str]], RecordedKraken]]:
    """Play recorded captures in memory: ``factory(path)`` (relative to the test file)."""
    from kraken_transports.testing import RecordedKraken  # noqa: PLC0415 - only when used

    made: list[RecordedKraken] = []
    folder = Path(request.path).parent

    def make(path: str | os.PathLike[str]) -> RecordedKraken:
        network = RecordedKraken(folder / path)
        made.append(network)
        return network

    yield make
    _close_all(made)


@pytest.fixture
def kraken_capture(
    request: pytest.FixtureRequest,
    kraken_capture_factory: Callable[[str | os.PathLike[str]], RecordedKraken],
) -> RecordedKraken:
    """The capture named by ``@pytest.mark.kraken_capture(path)``, played in memory."""
    return kraken_capture_factory(_capture_path(request))


@pytest.fixture
def kraken_server(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    """The simulator served on 127.0.0.1 (``@pytest.mark.kraken(...)``), stopped after."""
    from kraken_proto.testing import symbol_specs  # noqa: PLC0415 - only when used
    from kraken_transports.simserver import SimulatorThread  # noqa: PLC0415

    options = _marker_options(request)
    symbols = options.pop("symbols", None)
    if symbols is not None:
        options["symbols"] = symbol_specs(symbols)
    with SimulatorThread("127.0.0.1", **options) as server:
        yield server
