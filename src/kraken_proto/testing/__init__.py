"""Kraken in memory on a fake clock: deterministic tests of code that uses the core.

Sans-IO all the way down: no sockets, no threads, no real time. A network connects one or
more clients to Kraken in memory on one :class:`FakeClock` that the test moves
(:meth:`InMemoryKraken.advance`, :meth:`InMemoryKraken.run_until`):

- :class:`SimulatedKraken`: the simulator (:class:`~kraken_proto.simulator.FakeExchange`:
  the public, auth and level3 hosts, the token endpoint answered in memory), seeded, with
  its faults (:meth:`~SimulatedKraken.drop`, :meth:`~SimulatedKraken.stall`,
  :meth:`~SimulatedKraken.corrupt_checksum`, :meth:`~SimulatedKraken.sequence_gap`,
  :meth:`~SimulatedKraken.lose_response`, any :data:`~kraken_proto.simulator.Fault` with
  :meth:`~SimulatedKraken.inject`) and market control (:meth:`~SimulatedKraken.move_price`,
  :meth:`~SimulatedKraken.add_liquidity`, :meth:`~SimulatedKraken.halt`);
- :class:`RecordedKraken`: a recorded capture (``kraken_proto.replay``'s format) fed on its
  own timestamps, with the same API, so a test reads the same on either.

Frames travel as on a socket: queued in each direction, delivered in order, and what a
client sends while it reads a burst reaches the server after that burst. Each client is a
:class:`Peer`: :class:`ProtocolClient` wraps a :class:`~kraken_proto.KrakenProtocol`
(``kraken_transports.testing.MemoryClient`` is the same for the drivers' surface). Every
peer records its events (:attr:`Peer.events`, :meth:`Peer.of`), the frames it sent and
received (:meth:`Peer.capture`, :meth:`Peer.requests`) and rebuilds its book at any past
time (:meth:`Peer.book_at`).

Determinism: the same seed and the same calls at the same fake times give the same events,
byte for byte (pings are off and the backoff jitter seeded by :func:`deterministic_config`). The
fake clock controls every timer of both sides: heartbeats, snapshot delays, market events,
ack, response, staleness and reconnect timeouts, the dead man's switch.
"""

from kraken_proto.testing.network import (
    DEFAULT_WAIT,
    FakeClock,
    InMemoryKraken,
    Socket,
    deterministic_config,
)
from kraken_proto.testing.peers import Peer, ProtocolClient
from kraken_proto.testing.recorded import RecordedKraken
from kraken_proto.testing.simulated import SimulatedKraken, symbol_specs

__all__ = [
    "DEFAULT_WAIT",
    "FakeClock",
    "InMemoryKraken",
    "Peer",
    "ProtocolClient",
    "RecordedKraken",
    "SimulatedKraken",
    "Socket",
    "deterministic_config",
    "symbol_specs",
]
