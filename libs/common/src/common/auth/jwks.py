"""Verifies access tokens locally against the auth service's JWKS, with caching.

Keys are cached for `ttl` seconds; an unknown `kid` (key rotation) triggers a refetch, at most once
per `min_refetch` seconds so forged kids cannot hammer the auth service. Tokens that verified are
remembered until they expire (bounded, forgotten when the key set changes): a client sends the same
token on every call, and an RS256 check costs more than the rest of a small request's auth.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

T = TypeVar("T")


class KeysUnavailable(Exception):
    pass


class InvalidToken(Exception):
    pass


class JWKSClient:
    def __init__(self, url: str, *, issuer: str, audience: str, ttl: float = 600.0,
                 min_refetch: float = 10.0) -> None:
        self.url = url
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.min_refetch = min_refetch
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[str, list[Any]] = OrderedDict()  # token -> [claims, converted, converter]

    VERIFIED_MAX = 4096

    def set_jwks(self, jwks: dict[str, Any]) -> None:
        """Install keys directly (the auth service verifies its own tokens without HTTP)."""
        keys = {k["kid"]: RSAAlgorithm.from_jwk(json.dumps(k)) for k in jwks.get("keys", [])}
        if keys.keys() != self._keys.keys():
            self._verified.clear()  # a withdrawn key takes its tokens with it
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if (not force and age < self.ttl) or (force and age < self.min_refetch and self._keys):
                return
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    resp = await client.get(self.url)
                    resp.raise_for_status()
                    self.set_jwks(resp.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                if not self._keys:
                    raise KeysUnavailable(str(exc)) from exc
                self._fetched_at = time.monotonic()  # keep serving cached keys; retry after ttl

    async def verify(self, token: str) -> dict[str, Any]:
        return dict((await self._remembered(token))[0])

    async def verified(self, token: str, convert: Callable[[dict[str, Any]], T]) -> T:
        """`convert(claims)` of a valid token, converted once while the token is remembered: a caller's own immutable
        view of the claims (e.g. its Principal), shared by the calls that send the token. An exception of `convert`
        is raised each time (nothing remembered)."""
        entry = await self._remembered(token)
        if entry[2] is not convert:
            entry[1], entry[2] = convert(dict(entry[0])), convert
        return entry[1]  # type: ignore[no-any-return]

    async def _remembered(self, token: str) -> list[Any]:
        """The remembered [claims, converted value, its converter] of a valid token, verified now if need be."""
        entry = self._verified.get(token)
        if entry is not None:
            if entry[0]["exp"] > time.time() and time.monotonic() - self._fetched_at < self.ttl:
                self._verified.move_to_end(token)
                return entry
            del self._verified[token]
        entry = [await self._verify(token), None, None]
        self._verified[token] = entry
        if len(self._verified) > self.VERIFIED_MAX:
            self._verified.popitem(last=False)
        return entry

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str):
            raise InvalidToken("unsupported token")
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims = jwt.decode(token, key=key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer,
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        return claims
