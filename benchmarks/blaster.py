"""A loopback WebSocket server that sends pre-encoded frames as fast as the socket takes them.

Runs in its own process, so the client under test has a core to itself. It answers the
HTTP upgrade with wsproto, waits for the client's subscribe requests, sends the ``setup``
frames (status, acks, snapshots), then every ``timed`` frame in large writes, and keeps the
socket open until the client closes it. Loopback only.

With ``rate`` (messages per second) the ``timed`` frames are paced instead: one frame per
write, on a fixed schedule (``start + i / rate``), sleeping in between (no spinning, so the
client keeps its core). A sender that fell behind the schedule catches up at no more than
twice the rate (at least half an interval between two writes), so frames never leave in
bursts; the latency benchmark relies on that.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

_CHUNK = 256 * 1024


def _frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def _encode(texts: list[bytes]) -> bytes:
    return b"".join(_frame(text) for text in texts)


def _paced(conn: socket.socket, frames: list[bytes], rate: float) -> None:
    """Send each frame in its own write at ``rate`` per second (see the module docstring)."""
    interval = 1.0 / rate
    clock = time.perf_counter
    start = last = clock()
    for i, frame in enumerate(frames):
        delay = max(start + i * interval, last + interval / 2) - clock()
        if delay > 0:
            time.sleep(delay)
        last = clock()
        conn.sendall(frame)


def _serve_one(
    listener: socket.socket,
    setup: bytes,
    timed: bytes,
    subs: int,
    paced: list[bytes] | None,
    rate: float | None,
) -> None:
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws = WSConnection(ConnectionType.SERVER)
    subscribes = 0
    sent = False
    while True:
        data = conn.recv(65536)
        if not data:
            break
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                conn.sendall(ws.send(AcceptConnection()))
            elif isinstance(event, TextMessage) and '"subscribe"' in event.data:
                subscribes += 1
            elif isinstance(event, CloseConnection):
                conn.sendall(ws.send(event.response()))
                conn.close()
                return
        if not sent and subscribes >= subs:
            sent = True
            conn.sendall(setup)
            if paced is not None and rate is not None:
                _paced(conn, paced, rate)
            else:
                for start in range(0, len(timed), _CHUNK):
                    conn.sendall(timed[start : start + _CHUNK])
    conn.close()


def _main(
    port_out: Any,
    setup: list[bytes],
    timed: list[bytes],
    subs: int,
    clients: int,
    rate: float | None = None,
) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    setup_bytes, timed_bytes = _encode(setup), _encode(timed)
    paced = [_frame(text) for text in timed] if rate is not None else None
    port_out.send(listener.getsockname()[1])
    for _ in range(clients):
        _serve_one(listener, setup_bytes, timed_bytes, subs, paced, rate)
    listener.close()


def start(
    setup: list[bytes],
    timed: list[bytes],
    subscribes: int,
    clients: int,
    rate: float | None = None,
) -> tuple[multiprocessing.Process, int]:
    """Start the server process for ``clients`` successive clients; returns it and its port.

    ``rate``: send the timed frames at this many per second instead of as fast as possible.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, not {rate!r}")
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(
        target=_main, args=(child, setup, timed, subscribes, clients, rate), daemon=True
    )
    process.start()
    port = parent.recv()
    return process, int(port)
