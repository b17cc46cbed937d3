"""The threaded driver's own private behaviour: trading from many threads at once, and
never from a callback (it runs on the IO thread).

The scenarios every driver shares are in ``test_private_scenarios.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import private_scenarios as scenarios
import pytest
from simthread import SimThread

from kraken_proto import LocalProtocolError
from kraken_proto.trading import CancelAll, OrderResponse
from kraken_transports.threaded import ThreadedClient

KIND = "threaded"


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=31) as server:
        yield server


def test_submit_from_many_threads_and_misuse(sim: SimThread) -> None:
    client = ThreadedClient(scenarios.private_config(sim), private=True)
    with pytest.raises(LocalProtocolError, match="started client"):
        client.submit(CancelAll())
    errors: list[Exception] = []

    def inside(_event: OrderResponse) -> None:
        try:
            client.cancel_all()
        except LocalProtocolError as exc:
            errors.append(exc)

    client.on(OrderResponse, inside)
    with client:
        counts: list[int] = []

        def worker() -> None:
            counts.append(client.cancel_all(timeout=5.0).count)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert counts == [0, 0, 0, 0]
        assert len(errors) == 4 and "inside a callback" in str(errors[0])
        assert client.pending_requests == 0
