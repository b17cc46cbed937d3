"""The L2 update loops books run with in the tests: the compiled one (if built) and Python's.

The ``book_loop`` fixture (``conftest.py``) runs a whole module once with each. A property
test draws most of its time generating examples, so one that applies updates draws each
example once and checks it with every loop itself (:func:`with_each_loop`), and asks the
fixture to run it once (:data:`LOOPS_IN_TEST`): the same examples and assertions for each
loop as two runs, at the cost of one draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import kraken_proto.book as book_module
import kraken_proto.books as books_module

PYTHON_LOOP = book_module.OrderBook._apply_update_py

LOOPS: dict[str, Any] = (
    {"compiled": book_module._compiled, "python": PYTHON_LOOP}
    if book_module._compiled is not None
    else {"python": PYTHON_LOOP}
)
"""Every loop there is to test, by name: the compiled one (when built), then Python's."""

IN_TEST = "loops-in-test"
"""The ``book_loop`` parameter under which the fixture patches nothing (see LOOPS_IN_TEST)."""

LOOPS_IN_TEST = pytest.mark.parametrize("book_loop", [IN_TEST], indirect=True)
"""For a test of a ``book_loop`` module that checks every loop itself (or touches none):
run it once, with the loop as built, not once per loop."""


@contextmanager
def using_loop(loop: Any) -> Iterator[None]:
    """Books apply updates through ``loop`` (a value of :data:`LOOPS`) inside the block."""
    saved = book_module.apply_live_update, books_module.apply_live_update
    book_module.apply_live_update = books_module.apply_live_update = loop
    try:
        yield
    finally:
        book_module.apply_live_update, books_module.apply_live_update = saved


def with_each_loop(check: Any, *args: Any, **kwargs: Any) -> None:
    """``check(*args, **kwargs)`` once with each loop of :data:`LOOPS`."""
    for loop in LOOPS.values():
        with using_loop(loop):
            check(*args, **kwargs)
