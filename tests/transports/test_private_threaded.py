"""The threaded driver's authenticated half against the simulator (loopback only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import private_scenarios as scenarios
import pytest
from simthread import SimThread

from kraken_proto import LocalProtocolError
from kraken_proto.config import GapPolicy
from kraken_proto.trading import CancelAll, OrderResponse
from kraken_transports.threaded import ThreadedClient

KIND = "threaded"


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=31) as server:
        yield server


def test_order_life_cycle(sim: SimThread) -> None:
    scenarios.order_life_cycle(KIND, sim)


def test_lost_response_is_an_unknown_outcome(sim: SimThread) -> None:
    scenarios.lost_response(KIND, sim)


def test_sequence_gap(sim: SimThread) -> None:
    scenarios.sequence_gap(KIND, sim, GapPolicy.BUFFER)


def test_bad_credentials_close_for_good(sim: SimThread) -> None:
    scenarios.bad_credentials(KIND, sim)


def test_level3_book(sim: SimThread) -> None:
    scenarios.level3_book(KIND, sim)


def test_dead_man_switch(sim: SimThread) -> None:
    scenarios.dead_man_switch(KIND, sim)


def test_secrets_stay_out_of_logs(sim: SimThread, caplog: pytest.LogCaptureFixture) -> None:
    scenarios.secrets_stay_out_of_logs(KIND, sim, caplog)


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


def test_waiting_for_the_connection_times_out_then_trades(sim: SimThread) -> None:
    scenarios.exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1000))
    with ThreadedClient(scenarios.private_config(sim), private=True) as client:
        with pytest.raises(TimeoutError, match="did not become 'subscribed'"):
            client.cancel_all(timeout=0.3)
        scenarios.exchange(sim, lambda ex: ex.inject_token_error("EService:Unavailable", 1))
        result = client.cancel_all_orders_after(60, wait_timeout=5.0)
        assert result.armed
        assert not client.cancel_all_orders_after(0).armed
