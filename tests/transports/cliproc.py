"""The ``kraken-ws`` command in a child process, for tests that signal it or read it live."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def cli_process(*args: str, limit: float = 30.0) -> Iterator[subprocess.Popen[str]]:
    """``python -m kraken_transports ARGS`` with pipes, unbuffered, Ctrl-C acting as in a shell.

    Killed after ``limit`` seconds whatever happens (a test never hangs the suite), and on
    leaving the block if still running.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "kraken_transports", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    watchdog = threading.Timer(limit, process.kill)
    watchdog.start()
    try:
        yield process
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
