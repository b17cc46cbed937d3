"""The outbox: every outgoing request, paced by the message-rate budget.

Kraken counts the messages a client sends; :class:`Outbox` lets them leave as fast as a
:class:`~kraken_proto.throttle.TokenBucket` (``max_requests_per_second``, ``request_burst``)
allows, in order, and keeps the rest for ``handle_timer``. Each request names the part
that sent it (a ``sent(req_id, now)`` callback), which learns when its request really left:
acknowledgement and response timeouts count from then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from kraken_proto.actions import Action, Send
from kraken_proto.throttle import TokenBucket
from kraken_proto.timing import NEVER

__all__ = ["Outbox", "SentCallback"]

SentCallback = Callable[[int, float], None]
"""``sent(req_id, now)``: the request ``req_id`` left at ``now``."""


class Outbox:
    """Requests waiting for the message-rate budget, oldest first."""

    __slots__ = ("_bucket", "_queue", "_ready_at")

    def __init__(self, rate: float, burst: int) -> None:
        self._bucket = TokenBucket(rate, burst)
        self._queue: deque[tuple[str, int, SentCallback]] = deque()
        self._ready_at = NEVER

    def send(
        self, text: str, req_id: int, sent: SentCallback, actions: list[Action], now: float
    ) -> None:
        """Queue request ``req_id`` (its wire ``text``) and send what the budget allows."""
        self._queue.append((text, req_id, sent))
        self.flush(actions, now)

    def flush(self, actions: list[Action], now: float) -> None:
        """Send what the message-rate budget allows; the rest waits for ``handle_timer``."""
        queue = self._queue
        bucket = self._bucket
        while queue and bucket.try_acquire(now):
            text, req_id, sent = queue.popleft()
            sent(req_id, now)
            actions.append(Send(text))
        # The bucket's next_available is later than now whenever a token is missing.
        self._ready_at = bucket.next_available(now) if queue else NEVER

    def clear(self) -> None:
        """Drop every queued request (the connection is gone)."""
        self._queue.clear()
        self._ready_at = NEVER

    def deadline(self) -> float:
        """When the next queued request can leave (``NEVER``: nothing queued)."""
        return self._ready_at
