"""The docs say what the code does: the state table in docs/state-machine.md."""

from __future__ import annotations

import re
from pathlib import Path

from kraken_proto.state import TRANSITIONS, ConnectionState, Trigger

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_state_machine_doc_lists_exactly_the_transition_table() -> None:
    text = (DOCS / "state-machine.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", text, flags=re.MULTILINE)
    documented = {
        (ConnectionState[old], Trigger[trigger]): ConnectionState[new] for old, trigger, new in rows
    }
    assert len(rows) == len(TRANSITIONS)
    assert documented == TRANSITIONS
