"""Shared test helpers: where the recorded Kraken data lives; hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The suite is a gate (100% branch coverage of kraken_proto): by default hypothesis draws
# the same examples on every run, so a branch reached only by a lucky example cannot make
# CI flaky, and no timing deadline applies on a loaded machine. HYPOTHESIS_PROFILE=explore
# draws fresh examples to hunt for new failures.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def shared_data_dir() -> Path:
    """``shared/data`` beside the checkout (CI lays shared/ next to its clone).

    ``KRAKEN_SHARED_DATA`` overrides the location.
    """
    override = os.environ.get("KRAKEN_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_captures() -> list[Path]:
    """Every real Kraken capture (``kraken-v2-real/*.jsonl``), sorted by name."""
    return sorted((shared_data_dir() / "kraken-v2-real").glob("*.jsonl"))


@pytest.fixture
def data_dir() -> Path:
    """The shared data directory."""
    return shared_data_dir()


@pytest.fixture(scope="session")
def real_capture_paths() -> dict[str, Path]:
    """The real Kraken captures by file stem (``"btcusd_l2"`` -> its path).

    Session-scoped so hypothesis tests may use it; fails (never skips) if the data is absent.
    """
    paths = {path.stem: path for path in real_captures()}
    assert paths, f"no real captures under {shared_data_dir() / 'kraken-v2-real'}"
    return paths
