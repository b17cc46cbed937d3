"""Every asyncio client a test drove through :mod:`clients` is shut down after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clients import shut_down_proxies


@pytest.fixture(autouse=True)
def _aio_proxies_shut_down() -> Iterator[None]:
    yield
    shut_down_proxies()
