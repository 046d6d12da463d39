"""Server-side store of issued bearer tokens (expiry and revocation are decided here, never by parsing)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Callable


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenStore:
    """Issued bearer tokens with server-side expiry. ``clock`` is injectable for tests."""

    def __init__(self, lifetime: int, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._expires: dict[str, float] = {}

    def issue(self, client_id: str, scope: str, issuer: str) -> tuple[str, int]:
        now = self._clock()
        self._prune(now)
        header = _b64url(b'{"alg":"RS256","typ":"at+jwt"}')
        claims = {
            "iss": issuer,
            "client_id": client_id,
            "scope": scope.split(),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.lifetime),
            "jti": secrets.token_hex(16),
        }
        token = f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}.{_b64url(os.urandom(32))}"
        self._expires[token] = now + self.lifetime
        return token, self.lifetime

    def status(self, token: str | None) -> str:
        """``valid``, ``expired`` or ``unknown`` (missing, never issued, or revoked)."""
        if not token:
            return "unknown"
        expires = self._expires.get(token)
        if expires is None:
            return "unknown"
        return "valid" if self._clock() < expires else "expired"

    def validate(self, token: str | None) -> bool:
        return self.status(token) == "valid"

    def revoke_all(self) -> int:
        count = len(self._expires)
        self._expires.clear()
        return count

    def active(self) -> int:
        now = self._clock()
        return sum(1 for exp in self._expires.values() if exp > now)

    def _prune(self, now: float) -> None:
        # Keep the store bounded under token-refresh benchmarks; expired tokens are still reported as
        # "expired" for a grace hour so clients see the realistic error description.
        if len(self._expires) > 10_000:
            for tok in [t for t, exp in self._expires.items() if exp + 3600 < now]:
                del self._expires[tok]
