"""Every Python snippet in the README and docs/ runs as written, and type-checks.

Each ```python block is a complete program. Scripts run against the simulator, as a user
would run them after pasting the environment lines that ``kraken-ws serve`` prints; blocks
that define ``test_*`` functions run under pytest. ``mypy --strict`` then checks them all
from a folder outside the repository, which proves that an editable install is visible to
a user's type checker.

A snippet spends most of its time waiting for the simulator's data, so one test runs them
all at once, each in its own process against a simulator of its own (one snippet's orders
or dead man's switch cannot touch another's), and reports every snippet that failed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from simthread import SimThread

from kraken_proto.simulator import SIM_API_KEY, SIM_API_SECRET

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "tests" / "data" / "kraken-v2-real" / "btcusd_l2.jsonl"
SNIPPET_TIMEOUT = 90.0
AT_ONCE = 8  # snippets running at the same time (each a Python process and a simulator)


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


def _simulator_environment(server: SimThread) -> dict[str, str]:
    """The environment ``kraken-ws serve`` tells a user to set, for ``server``."""
    environment = dict(os.environ)
    environment.update(
        KRAKEN_WS_ENDPOINT=server.sim.url,
        KRAKEN_WS_AUTH_ENDPOINT=server.sim.auth_url,
        KRAKEN_WS_LEVEL3_ENDPOINT=server.sim.level3_url,
        KRAKEN_REST_URL=server.sim.rest_url,
        KRAKEN_API_KEY=SIM_API_KEY,
        KRAKEN_API_SECRET=SIM_API_SECRET,
    )
    return environment


def _run(snippet_id: str, code: str, folder: Path) -> str | None:
    """Run one snippet as written in ``folder``, against a simulator of its own; what went
    wrong, or ``None`` if it ran as it should."""
    folder.mkdir()
    shutil.copy(CAPTURE, folder / "capture.jsonl")  # what the replay examples read
    script = folder / f"{_module_name(snippet_id)}.py"
    script.write_text(code)
    command = [sys.executable, script.name]
    if script.name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    with SimThread(seed=1) as server:
        done = subprocess.run(
            command,
            cwd=folder,
            env=_simulator_environment(server),
            capture_output=True,
            text=True,
            timeout=SNIPPET_TIMEOUT,
            check=False,
        )
    report = f"{snippet_id} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    if done.returncode != 0 or "Traceback" in done.stderr:
        return report
    if script.name.startswith("test_"):
        return None if re.search(r"\b[1-9]\d* passed\b", done.stdout) else report
    return None if done.stdout.strip() else f"{snippet_id} printed nothing\n{report}"


def test_the_docs_have_snippets() -> None:
    ids = [snippet_id for snippet_id, _ in SNIPPETS]
    assert sum(1 for i in ids if i.startswith("README.md")) >= 5
    assert any(i.startswith("docs/own-driver.md") for i in ids)


def test_every_snippet_runs_as_written(tmp_path: Path) -> None:
    with ThreadPoolExecutor(AT_ONCE) as pool:
        runs = [
            pool.submit(_run, snippet_id, code, tmp_path / _module_name(snippet_id))
            for snippet_id, code in SNIPPETS
        ]
        failures = [failure for run in runs if (failure := run.result()) is not None]
    assert not failures, f"{len(failures)} of {len(runs)} snippets failed:\n\n" + "\n\n".join(
        failures
    )


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
