"""SocketClient in your own ``selectors`` loop, done right.

``SocketClient`` never blocks and never starts a thread of its own (except for DNS and the
token request): your loop waits, then calls ``step()``. Three things to get right:

- ``fileno()`` is the socket to watch, -1 while there is none (waiting to reconnect), and
  ``socket_id`` says which socket that is: a new one after every reconnect, even when the
  new socket got the old one's number. Register the socket once, and again whenever
  ``socket_id`` changes: an epoll or kqueue selector (``DefaultSelector`` on Linux and
  macOS) forgets a closed socket, so a registration kept because the number stayed the
  same would watch nothing;
- ``wants_write()``: also wait for writability while it is true (a connect in progress,
  unsent data);
- ``next_deadline()`` (on ``time.monotonic()``): wake no later than that, even without IO,
  for pings, timeouts and reconnects.

Against the simulator (the default; ``SimulatorThread`` runs it on a background thread,
with its own asyncio loop) the connection is dropped halfway through, so you see the
socket change. ``--live`` uses Kraken's public host.

    python examples/own_loop.py
    python examples/own_loop.py --live --duration 20
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import selectors
import time
from collections.abc import Callable

from kraken_proto import ClientConfig, ConnectionState, Event, StateChanged, Ticker
from kraken_proto.simulator import Drop
from kraken_transports import SimulatorThread, SocketClient


def show(client: SocketClient, event: Event) -> None:
    if isinstance(event, StateChanged):
        print(f"state: {event.old} -> {event.new}  (socket fd {client.fileno()})")
    elif isinstance(event, Ticker):
        print(f"ticker: {event.symbol} bid {event.bid} ask {event.ask}")


class Watch:
    """Keeps the client's socket registered with a selector: once per socket."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.fd, self.socket_id = -1, 0  # what is registered now (-1, 0: nothing)
        self.last_fd = -1  # the number the previous socket had

    def sync(self, client: SocketClient) -> bool:
        """(Re-)register if the socket changed, or its events did; False without a socket."""
        fd, socket_id = client.fileno(), client.socket_id
        events = selectors.EVENT_READ
        if client.wants_write():
            events |= selectors.EVENT_WRITE
        if socket_id != self.socket_id:  # another socket, perhaps under the same number
            if self.fd >= 0:
                self.selector.unregister(self.fd)
            if fd >= 0:
                self.selector.register(fd, events)
                same = ", the previous socket's number" if fd == self.last_fd else ""
                print(f"registered socket {socket_id} (fd {fd}{same})")
                self.last_fd = fd
            self.fd, self.socket_id = fd, socket_id
        elif fd >= 0 and self.selector.get_key(fd).events != events:
            self.selector.modify(fd, events)
        return fd >= 0


def run(config: ClientConfig, duration: float, fault: Callable[[], None] | None) -> None:
    client = SocketClient(config)
    client.subscribe("ticker", ["BTC/USD", "ETH/USD"], wait=False)  # sent once connected
    client.start()  # non-blocking: the socket opens during the next steps
    selector = selectors.DefaultSelector()  # your loop may watch other files too
    watch = Watch(selector)
    start = time.monotonic()
    fault_at = start + duration / 2 if fault is not None else None
    wakeups = {"io": 0, "deadline": 0}
    try:
        while (now := time.monotonic()) < start + duration:
            subscribed = client.state is ConnectionState.SUBSCRIBED
            if fault and fault_at and now >= fault_at and subscribed:  # halfway, if connected
                print("-- the simulator drops the connection --")
                fault()
                fault_at = None
            # Wake at the client's deadline at the latest (and for our own plans).
            wake = [start + duration, client.next_deadline()]
            if fault_at is not None and fault_at > now:
                wake.append(fault_at)
            timeout = max(0.0, min(t for t in wake if t is not None) - now)
            if watch.sync(client):
                ready = selector.select(timeout)
                wakeups["io" if ready else "deadline"] += 1
            else:  # no socket: waiting out a reconnect backoff
                time.sleep(timeout)
                wakeups["deadline"] += 1
            client.step()  # non-blocking: reads, timers, writes; callbacks run here
            while (event := client.poll()) is not None:
                show(client, event)
    finally:
        client.close()  # a close handshake, at most a second
        selector.close()
    stats = client.stats
    print(
        f"woke {wakeups['io']} times for IO, {wakeups['deadline']} for a deadline; "
        f"{stats.reconnects} reconnect(s), {stats.frames_in} frames in"
    )


def main(args: argparse.Namespace) -> None:
    if args.live:
        run(ClientConfig(), args.duration, None)  # Kraken's production host
        return
    with SimulatorThread() as sim:  # 127.0.0.1, a port the OS picks
        print(f"simulator listening at {sim.url}")
        run(sim.client_config(), args.duration, lambda: sim.inject(Drop()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="connect to Kraken, not the simulator")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run (default 5)")
    arguments = parser.parse_args()
    logging.basicConfig(format="log: %(name)s: %(message)s")  # the reconnect is logged
    with contextlib.suppress(KeyboardInterrupt):
        main(arguments)
