"""The docs say what the code does: the state tables in docs/state-machine.md."""

from __future__ import annotations

import re
from pathlib import Path

from kraken_proto.state import TRANSITIONS, ConnectionState, Trigger
from kraken_proto.subscriptions import (
    SUBSCRIPTION_TRANSITIONS,
    SubscriptionStatus,
    SubscriptionTrigger,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONNECTION, SUBSCRIPTIONS = (DOCS / "state-machine.md").read_text().split("\n## Subscriptions\n")


def test_state_machine_doc_lists_exactly_the_transition_table() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", CONNECTION, flags=re.MULTILINE)
    documented = {
        (ConnectionState[old], Trigger[trigger]): ConnectionState[new] for old, trigger, new in rows
    }
    assert len(rows) == len(TRANSITIONS)
    assert documented == TRANSITIONS


def test_state_machine_doc_lists_exactly_the_subscription_table() -> None:
    rows = re.findall(
        r"^\| (`\w+`|\(none\)) \| `(\w+)` \| (`\w+`|\(forgotten\)) \|$",
        SUBSCRIPTIONS,
        flags=re.MULTILINE,
    )

    def status(cell: str) -> SubscriptionStatus | None:
        return SubscriptionStatus[cell.strip("`")] if cell.startswith("`") else None

    documented = {
        (status(old), SubscriptionTrigger[trigger]): status(new) for old, trigger, new in rows
    }
    assert len(rows) == len(SUBSCRIPTION_TRANSITIONS)
    assert documented == SUBSCRIPTION_TRANSITIONS
