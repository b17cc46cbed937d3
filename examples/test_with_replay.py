"""How to test your own strategy: on a recorded capture, and against the simulator.

Run it with pytest; copy the fixtures into your own ``conftest.py``:

    python -m pytest examples/test_with_replay.py

(a) A capture (JSON Lines, as ``kraken-ws record`` writes them) replays through the
    protocol core at its recorded times: no network, no sleeps, the same book every run, so
    you can pin what your strategy decides at known moments. ``data/ethusd_book.jsonl`` is
    64 frames of a real Kraken ETH/USD book (MIT, see ``data/LICENSE-crossbook.txt``).
(b) The simulator (a fake Kraken on a loopback port, started once per test session on a
    background thread by ``kraken_transports.SimulatorThread``) runs your strategy live,
    through a real client, with faults on demand: here a corrupted checksum, to check the
    strategy stays quiet while the book resyncs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from kraken_proto import BookResync, BookUpdate, OrderBook, ProtocolError
from kraken_proto.replay import replay
from kraken_proto.simulator import CorruptChecksum
from kraken_transports import SimulatorThread, ThreadedClient

SYMBOL = "ETH/USD"


# --------------------------------------------------------------------- the strategy


def signal(book: OrderBook | None, threshold: Decimal = Decimal("0.7")) -> str | None:
    """'buy' when the best bid holds more than ``threshold`` of the quantity at the top of
    the book, 'sell' when the best ask does, else 'hold'; None unless the book is live."""
    if book is None or not book.is_live:  # no snapshot yet, or resyncing: never guess
        return None
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return "hold"
    share = bid.qty / (bid.qty + ask.qty)
    return "buy" if share > threshold else "sell" if share < 1 - threshold else "hold"


# --------------------------------------------------------------------- fixtures


@pytest.fixture
def capture() -> list[str]:
    """The recorded frames, one capture line each."""
    return (Path(__file__).parent / "data" / "ethusd_book.jsonl").read_text().splitlines()


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorThread]:
    """The simulator on a background thread, once per test session."""
    with SimulatorThread(seed=7) as sim:  # 127.0.0.1, a port the OS picks
        yield sim


@pytest.fixture
def client(simulator: SimulatorThread) -> Iterator[ThreadedClient]:
    """A blocking client on the simulator, subscribed to the book (closed afterwards)."""
    with ThreadedClient(simulator.client_config()) as client:
        client.subscribe("book", SYMBOL, depth=10, timeout=10)
        yield client


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"not within {timeout} s"
        time.sleep(0.02)


# --------------------------------------------------------------------- (a) replay


def test_the_capture_replays_clean(capture: list[str]) -> None:
    result = replay(capture)
    assert not result.of_type(BookResync) and not result.of_type(ProtocolError)
    assert len(result.of_type(BookUpdate)) == 62  # the snapshot and 61 updates, all verified


@pytest.mark.parametrize(
    ("frames", "expected"),
    [(2, None), (20, "hold"), (50, "sell"), (56, "hold"), (64, "sell")],
)
def test_signal_at_known_moments(capture: list[str], frames: int, expected: str | None) -> None:
    """The book as it stood after the first ``frames`` frames: a regression test."""
    assert signal(replay(capture[:frames]).protocol.book(SYMBOL)) == expected


# --------------------------------------------------------------------- (b) simulator


def test_signal_on_every_update(client: ThreadedClient) -> None:
    signals: list[str | None] = []
    # Callbacks run as each update is applied: client.book() is exactly as it left it.
    client.on(BookUpdate, lambda update: signals.append(signal(client.book(update.symbol))))
    wait_for(lambda: len(signals) >= 20)
    assert set(signals) <= {"buy", "sell", "hold"}


def test_no_signal_while_the_book_resyncs(
    client: ThreadedClient, simulator: SimulatorThread
) -> None:
    during: list[str | None] = []  # the signal when the resync starts
    after: list[str | None] = []  # and on every update after that

    def on_resync(event: BookResync) -> None:
        during.append(signal(client.book(event.symbol)))

    def on_update(update: BookUpdate) -> None:
        if during:
            after.append(signal(client.book(update.symbol)))

    client.on(BookResync, on_resync)
    client.on(BookUpdate, on_update)
    simulator.inject(CorruptChecksum(SYMBOL))  # the next book message fails its checksum
    wait_for(lambda: bool(during) and bool(after))
    assert during[0] is None  # quiet while resyncing
    assert after[0] in ("buy", "sell", "hold")  # and back once the fresh snapshot came
