"""Shared test helpers: where the test data lives (``tests/data``); hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import kraken_proto.book as book_module
import kraken_proto.books as books_module

# The suite is a gate (100% branch coverage of kraken_proto): by default hypothesis draws
# the same examples on every run, so a branch reached only by a lucky example cannot make
# CI flaky, and no timing deadline applies on a loaded machine. HYPOTHESIS_PROFILE=explore
# draws fresh examples to hunt for new failures.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
    is used.
    """
    compiled = book_module._compiled
    if request.param == "compiled" and compiled is None:
        pytest.skip("kraken_proto._speedups is not built")
    python = book_module.OrderBook._apply_update_py
    loop = compiled if compiled is not None and request.param == "compiled" else python
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(book_module, "apply_live_update", loop)
        patch.setattr(books_module, "apply_live_update", loop)
        yield request.param
