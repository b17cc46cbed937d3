"""Shared test helpers: where the test data lives (``tests/data``); hypothesis profiles."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from budget import PROFILE
from hypothesis import settings
from loops import IN_TEST, LOOPS, using_loop

# The suite is a gate (100% branch coverage of kraken_proto): by default hypothesis draws
# the same examples on every run, so a branch reached only by a lucky example cannot make
# CI flaky, and no timing deadline applies on a loaded machine. HYPOTHESIS_PROFILE=thorough
# draws the same way, more examples (the costly properties' thorough counts, budget.py,
# and 300 for the others); HYPOTHESIS_PROFILE=explore draws fresh examples, as many as
# thorough, to hunt for new failures.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "thorough", derandomize=True, deadline=None, print_blob=True, max_examples=300
)
settings.register_profile("explore", deadline=None, print_blob=True, max_examples=300)
settings.load_profile(PROFILE)

# Bytecode caches even where PYTHONDONTWRITEBYTECODE is set: the tests start about a
# hundred Python processes (the command line, the docs snippets, the examples) that each
# import the package, and pytest rewrites every test module in each worker; compiling all
# of it from source every time cost about 25 s of CPU per run. The caches land in the
# ignored __pycache__ folders, as they do by default.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


DATA_DIR = Path(__file__).resolve().parent / "data"
"""The test data the repository carries: real captures and documented vectors."""


def real_captures() -> list[Path]:
    """Every real Kraken capture (``kraken-v2-real/*.jsonl``), sorted by name."""
    return sorted((DATA_DIR / "kraken-v2-real").glob("*.jsonl"))


@pytest.fixture
def data_dir() -> Path:
    """The repository's test data directory (``tests/data``)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def real_capture_paths() -> dict[str, Path]:
    """The real Kraken captures by file stem (``"btcusd_l2"`` -> its path).

    Session-scoped so hypothesis tests may use it; fails (never skips) if the data is absent.
    """
    paths = {path.stem: path for path in real_captures()}
    assert paths, f"no real captures under {DATA_DIR / 'kraken-v2-real'}"
    return paths


@pytest.fixture(scope="module", params=["compiled", "python"])
def book_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests once with each L2 update loop: compiled (if built) and Python.

    ``kraken_proto.book.apply_live_update`` is the compiled loop when it was built; the
    ``python`` run swaps in the reference loop ``OrderBook._apply_update_py`` everywhere it
    is used. A test marked :data:`loops.LOOPS_IN_TEST` runs once, nothing patched: it checks
    every loop itself (``loops.with_each_loop``).
    """
    if request.param == IN_TEST:
        yield request.param
        return
    if request.param not in LOOPS:
        pytest.skip("kraken_proto._speedups is not built")
    with using_loop(LOOPS[request.param]):
        yield request.param
