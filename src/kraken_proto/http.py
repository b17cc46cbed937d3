"""A plain description of an HTTP request, performed by a driver (the core has no IO)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["HttpRequest"]


class HttpRequest(msgspec.Struct, frozen=True):
    """A complete HTTP request description, performed by the driver.

    ``headers`` may contain credentials: the repr redacts their values.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own __rich_repr__ would show the raw headers to rich's pretty printer.
        return [("method", self.method), ("url", self.url), ("headers", "***"), ("body", "***")]

    def __repr__(self) -> str:
        shown = tuple((name, "***") for name, _ in self.headers)
        return f"HttpRequest(method={self.method!r}, url={self.url!r}, headers={shown!r}, body=***)"
