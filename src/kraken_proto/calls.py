"""Subscribe and unsubscribe calls, each settled exactly once with a ``SubscriptionResult``.

A call names symbols of one channel; every symbol gets one answer (the per-symbol
``Subscribed``, ``Unsubscribed`` or ``SubscriptionFailed`` the protocol emits), and the call
settles when the last one is in. A symbol is awaited by at most one call: a later call on
the same symbol (an unsubscribe while its subscribe is unanswered) supersedes the earlier
one for that symbol, which settles it as failed, so no call is ever left open.
"""

from __future__ import annotations

from collections.abc import Sequence

from kraken_proto.events import Subscribed, SubscriptionFailed, SubscriptionResult, Unsubscribed

__all__ = ["Answer", "Calls"]

Key = tuple[str, str | None]
Answer = Subscribed | Unsubscribed | SubscriptionFailed
"""One symbol's answer to a call."""


class _Call:
    __slots__ = ("answers", "channel", "keys", "method", "req_id")

    def __init__(self, req_id: int, method: str, channel: str, keys: Sequence[Key]) -> None:
        self.req_id = req_id
        self.method = method
        self.channel = channel
        self.keys = tuple(keys)
        self.answers: dict[Key, Answer] = {}

    def result(self, now: float) -> SubscriptionResult:
        answers = tuple(self.answers[key] for key in self.keys)
        return SubscriptionResult(self.req_id, self.method, self.channel, answers, now)


class Calls:
    """The open calls, and which call awaits each ``(channel, symbol)``."""

    __slots__ = ("_awaiting", "_calls")

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}
        self._awaiting: dict[Key, _Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def open(
        self, req_id: int, method: str, channel: str, keys: Sequence[Key], now: float
    ) -> list[SubscriptionResult]:
        """Open call ``req_id`` awaiting ``keys``; return the earlier calls it settled.

        An earlier call still awaiting one of ``keys`` gets a ``SubscriptionFailed`` for it
        (kept in its result only: nothing failed on the wire).
        """
        call = _Call(req_id, method, channel, keys)
        self._calls[req_id] = call
        settled: list[SubscriptionResult] = []
        for key in call.keys:
            earlier = self._awaiting.get(key)
            self._awaiting[key] = call
            if earlier is not None:
                error = f"superseded by {method} (req_id {req_id}) before Kraken answered"
                result = self._settle_key(
                    earlier, key, SubscriptionFailed(key[0], key[1], error, None, now), now
                )
                if result is not None:
                    settled.append(result)
        return settled

    def answer(self, answer: Answer, now: float) -> SubscriptionResult | None:
        """Record one symbol's answer; the settled call's result once it is the last one.

        An answer of the other method (a late subscribe ack or refusal for a symbol now
        being unsubscribed: only a subscribe fails) or for a symbol no call awaits belongs
        to no call.
        """
        key = (answer.channel, answer.symbol)
        call = self._awaiting.get(key)
        if call is None:
            return None
        if (type(answer) is Unsubscribed) is (call.method == "subscribe"):
            return None
        del self._awaiting[key]
        return self._settle_key(call, key, answer, now)

    def settle_all(self, reason: str, now: float) -> list[SubscriptionResult]:
        """Settle every open call: each unanswered symbol fails with ``reason``."""
        results = []
        for call in list(self._calls.values()):
            for key in call.keys:
                if key not in call.answers:
                    call.answers[key] = SubscriptionFailed(key[0], key[1], reason, None, now)
            results.append(call.result(now))
        self._calls.clear()
        self._awaiting.clear()
        return results

    def _settle_key(
        self, call: _Call, key: Key, answer: Answer, now: float
    ) -> SubscriptionResult | None:
        call.answers[key] = answer
        if len(call.answers) < len(call.keys):
            return None
        del self._calls[call.req_id]
        return call.result(now)
