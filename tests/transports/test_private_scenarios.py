"""The authenticated half (tokens, private streams, trading, level3) through every driver.

Each scenario of :mod:`private_scenarios` runs once per driver against the simulator;
what only one driver does (its token request's IO, trading from many threads, callbacks
that may not block) is in ``test_private_<driver>.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import private_scenarios as scenarios
import pytest
from clients import KINDS
from simthread import SimThread

from kraken_proto.config import GapPolicy


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(seed=21) as server:
        yield server


def test_order_life_cycle(kind: str, sim: SimThread) -> None:
    scenarios.order_life_cycle(kind, sim)


def test_batches_and_a_refusal(kind: str, sim: SimThread) -> None:
    scenarios.batches_and_a_refusal(kind, sim)


def test_lost_response_is_an_unknown_outcome(kind: str, sim: SimThread) -> None:
    scenarios.lost_response(kind, sim)


def test_trading_waits_for_the_connection(kind: str, sim: SimThread) -> None:
    scenarios.waits_for_the_connection(kind, sim)


@pytest.mark.parametrize("policy", list(GapPolicy))
def test_sequence_gap(kind: str, sim: SimThread, policy: GapPolicy) -> None:
    scenarios.sequence_gap(kind, sim, policy)


def test_bad_credentials_close_for_good(kind: str, sim: SimThread) -> None:
    scenarios.bad_credentials(kind, sim)


def test_level3_book(kind: str) -> None:
    # The scenario waits for 20 level3 updates, which come at the simulator's tick rate
    # (the tests' SimThread runs at three times Kraken's pace).
    with SimThread(seed=21) as sim:
        scenarios.level3_book(kind, sim)


def test_dead_man_switch(kind: str, sim: SimThread) -> None:
    scenarios.dead_man_switch(kind, sim)


def test_secrets_stay_out_of_logs_and_frames(
    kind: str, sim: SimThread, caplog: pytest.LogCaptureFixture
) -> None:
    scenarios.secrets_stay_out_of_logs(kind, sim, caplog)
