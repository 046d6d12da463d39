"""``Reply``: one HTTP response as the hooks' pure functions see it, whichever library (requests, aiohttp) fetched
it. The body stays bytes until someone needs text: page bodies go to the columnar decoder as they arrived."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Reply:
    """Status, body (bytes as received, or text) and headers of one response."""

    status: int
    body: bytes | str
    headers: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced, as error excerpts and the JSON fallback want it)."""
        return self.body if isinstance(self.body, str) else self.body.decode("utf-8", errors="replace")

    @property
    def raw(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else self.body.encode()

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)
