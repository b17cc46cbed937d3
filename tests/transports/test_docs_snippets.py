"""Every Python snippet in the README and docs/ runs as written, and type-checks.

Each ```python block is a complete program. Scripts run against the simulator, as a user
would run them after pasting the environment lines that ``kraken-ws serve`` prints; blocks
that define ``test_*`` functions run under pytest. ``mypy --strict`` then checks them all
from a folder outside the repository, which proves that an editable install is visible to
a user's type checker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from simthread import SimThread

from kraken_proto.simulator import SIM_API_KEY, SIM_API_SECRET

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "tests" / "data" / "kraken-v2-real" / "btcusd_l2.jsonl"
SNIPPET_TIMEOUT = 90.0


def _snippets() -> list[tuple[str, str]]:
    """``(id, code)`` of every ```python block, indented ones (in lists) dedented."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        pattern = r"^( *)```python\n(.*?)^\1```$"
        for number, match in enumerate(re.finditer(pattern, text, re.M | re.S), start=1):
            indent = len(match.group(1))
            lines = match.group(2).splitlines()
            code = "\n".join(line[indent:] for line in lines) + "\n"
            found.append((f"{path.relative_to(REPO)}#{number}", code))
    return found


SNIPPETS = _snippets()


def _module_name(snippet_id: str) -> str:
    name = re.sub(r"\W", "_", snippet_id.lower())
    return f"test_{name}" if "def test_" in dict(SNIPPETS)[snippet_id] else f"snippet_{name}"


@pytest.fixture(scope="module")
def simulator_environment() -> Iterator[dict[str, str]]:
    """The environment ``kraken-ws serve`` tells a user to set, for one running simulator."""
    with SimThread(seed=1) as server:
        environment = dict(os.environ)
        environment.update(
            KRAKEN_WS_ENDPOINT=server.sim.url,
            KRAKEN_WS_AUTH_ENDPOINT=server.sim.auth_url,
            KRAKEN_WS_LEVEL3_ENDPOINT=server.sim.level3_url,
            KRAKEN_REST_URL=server.sim.rest_url,
            KRAKEN_API_KEY=SIM_API_KEY,
            KRAKEN_API_SECRET=SIM_API_SECRET,
        )
        yield environment


def test_the_docs_have_snippets() -> None:
    ids = [snippet_id for snippet_id, _ in SNIPPETS]
    assert sum(1 for i in ids if i.startswith("README.md")) >= 5
    assert any(i.startswith("docs/own-driver.md") for i in ids)


@pytest.mark.parametrize(("snippet_id", "code"), SNIPPETS, ids=[i for i, _ in SNIPPETS])
def test_snippet_runs_as_written(
    snippet_id: str, code: str, simulator_environment: dict[str, str], tmp_path: Path
) -> None:
    shutil.copy(CAPTURE, tmp_path / "capture.jsonl")  # what the replay examples read
    script = tmp_path / f"{_module_name(snippet_id)}.py"
    script.write_text(code)
    command = [sys.executable, script.name]
    if script.name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=simulator_environment,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
        check=False,
    )
    report = f"{snippet_id} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    assert "Traceback" not in done.stderr, report
    if script.name.startswith("test_"):
        assert re.search(r"\b[1-9]\d* passed\b", done.stdout), report
    else:
        assert done.stdout.strip(), f"{snippet_id} printed nothing\n{report}"


def test_snippets_type_check_against_the_installed_package(tmp_path: Path) -> None:
    for snippet_id, code in SNIPPETS:
        (tmp_path / f"{_module_name(snippet_id)}.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".cache"), "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
