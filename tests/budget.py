"""How many examples a costly property test draws: fewer in CI, more when asked to be thorough.

``HYPOTHESIS_PROFILE`` picks the hypothesis profile (``conftest.py``): ``ci`` (the default:
the same examples every run, the suite's gate), ``thorough`` (as ``ci``, with every sized
test at its thorough count) or ``explore`` (fresh examples at the thorough counts, to hunt
for new failures). A property sized here states both counts; in CI it still draws enough
examples to reach every branch it is there for (``--cov-fail-under=100`` checks that).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
THOROUGH = PROFILE in ("thorough", "explore")
"""Whether sized tests draw their thorough number of examples."""


def examples(ci: int, thorough: int) -> int:
    """``thorough`` under the thorough and explore profiles, else ``ci``."""
    return thorough if THOROUGH else ci


def sized(ci: int, thorough: int, **options: Any) -> settings:
    """Hypothesis settings drawing ``examples(ci, thorough)`` examples, without a deadline."""
    return settings(max_examples=examples(ci, thorough), deadline=None, **options)
