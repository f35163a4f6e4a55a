"""Platform API keys (`plk_...`) as bearer credentials: checked against the auth service's introspection
endpoint, with a short cache (positive and negative) so a busy machine client costs one call per key
per `cacheSeconds`. Revocation therefore takes effect within that window (30 s by default).

Scopes: empty means everything the key's role allows; otherwise `<service>:read` (GET/HEAD),
`<service>:write` (any method, implies read), `<service>:*` or `*`.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import httpx

from common.auth.jwks import InvalidToken, KeysUnavailable

PREFIX = "plk_"


class ApiKeyIntrospector:
    def __init__(self, url: str, *, negative_ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.url = url
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._client: httpx.AsyncClient | None = None

    async def principal(self, key: str) -> dict[str, Any]:
        digest = hashlib.sha256(key.encode()).hexdigest()  # never keep raw keys in memory
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached[0] < now:
            cached = await self._introspect(key, now)
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[digest] = cached
        if cached[1] is None:
            raise InvalidToken("unknown, revoked or expired API key")
        return cached[1]

    async def _introspect(self, key: str, now: float) -> tuple[float, dict[str, Any] | None]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        try:
            resp = await self._client.post(self.url, json={"key": key})
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"API key introspection failed: {exc}") from exc
        if not body.get("active"):
            return now + self.negative_ttl, None
        return now + float(body.get("cacheSeconds", 30)), body["principal"]


def scope_allows(scopes: frozenset[str], service: str, method: str) -> bool:
    if not scopes or "*" in scopes or f"{service}:*" in scopes or f"{service}:write" in scopes:
        return True
    return method in ("GET", "HEAD") and f"{service}:read" in scopes


def principal_claims(info: dict[str, Any]) -> dict[str, Any]:
    """Introspection answer → the claim names `get_principal` reads from a JWT."""
    return {"sub": str(uuid.UUID(str(info["id"]))), "email": info.get("email"), "role": info.get("role"),
            "tid": info.get("tenantId"), "scopes": info.get("scopes") or [], "kid": info.get("keyId")}
