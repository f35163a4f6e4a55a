"""Who may call an endpoint, declared per endpoint with Annotated aliases (STYLE habit 4).

Default deny: every route must depend on `get_principal` (directly or through an alias) unless it is
listed as public when the app is built; `common.testing.assert_routes_declare_auth` checks it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from common.auth import api_keys
from common.auth.jwks import InvalidToken, JWKSClient, KeysUnavailable
from common.errors import Forbidden, ProblemError, TooManyRequests, Unauthorized


class Role(StrEnum):
    PLATFORM_OWNER = "PLATFORM_OWNER"
    TENANT_ADMIN = "TENANT_ADMIN"
    TENANT_USER = "TENANT_USER"


TENANT_ROLES = frozenset({Role.TENANT_ADMIN, Role.TENANT_USER})


@dataclass(frozen=True)
class Principal:
    id: uuid.UUID
    email: str | None
    role: Role
    tenant_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    api_key_id: str | None = None  # set when the caller used a platform API key

    @property
    def is_owner(self) -> bool:
        return self.role is Role.PLATFORM_OWNER


class _RateLimiter:
    """Per-caller token bucket, in process memory (one bucket per principal id)."""

    def __init__(self) -> None:
        self.buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def allow(self, key: uuid.UUID, per_minute: int) -> float:
        """Returns 0 when allowed, else seconds until a token is available."""
        now = time.monotonic()
        rate = per_minute / 60.0
        tokens, last = self.buckets.get(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        self.buckets[key] = (tokens - 1.0, now)
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        return 0.0


_limiter = _RateLimiter()


class _BearerPrincipal(HTTPBearer):
    """`get_principal`: the caller of this request, from its bearer token (an access token or a platform API
    key); with `roles`, also refused (403) unless the caller has one of them (`require_roles`). One dependency
    with no dependencies of its own -- FastAPI solves every level on every request (a role check as a second
    level cost ~13 us of CPU per request here) -- and still an HTTPBearer, so the OpenAPI document declares the
    scheme (every instance under the one name: the class's)."""

    def __init__(self, roles: frozenset[Role] | None = None) -> None:
        super().__init__(auto_error=False, description="Access token from POST /api/auth/login")
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        # Resolved once per request, also when a route depends on two of these (FastAPI caches each one's result
        # only): the rate limit counts the request once.
        principal: Principal | None = request.scope.get(_SCOPE_PRINCIPAL)
        if principal is None:
            scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized()
            principal = request.scope[_SCOPE_PRINCIPAL] = await _principal(request, token)
        if self.roles is not None and principal.role not in self.roles:
            raise Forbidden("Your role may not use this endpoint")
        return principal


_SCOPE_PRINCIPAL = "common.principal"
get_principal = _BearerPrincipal()


def resolves_principal(call: object) -> bool:
    """Whether a dependency's `call` is `get_principal` or a `require_roles` check (the caller from the bearer token):
    what the default-deny check looks for in every route."""
    return isinstance(call, _BearerPrincipal)


def _from_claims(claims: dict[str, Any]) -> Principal:
    """The Principal of verified claims; a 401 when they do not make one."""
    try:
        return Principal(
            id=uuid.UUID(claims["sub"]),
            email=claims.get("email"),
            role=Role(claims.get("role")),
            tenant_id=uuid.UUID(claims["tid"]) if claims.get("tid") else None,
            scopes=frozenset(claims.get("scopes") or ()),
            api_key_id=claims.get("kid"),
        )
    except (KeyError, ValueError):
        raise Unauthorized("Invalid token claims") from None


async def _principal(request: Request, token: str) -> Principal:
    state = request.app.state
    try:
        if token.startswith(api_keys.PREFIX):
            principal = _from_claims(api_keys.principal_claims(await state.api_keys.principal(token)))
        else:
            jwks: JWKSClient = state.jwks
            # Built once per remembered token (a client sends the same one on every call), not per request.
            principal = await jwks.verified(token, _from_claims)
    except InvalidToken as exc:
        raise Unauthorized(f"Invalid token: {exc}") from None
    except KeysUnavailable:
        raise ProblemError("Token verification keys are unavailable", status=503) from None
    settings = state.settings
    if principal.api_key_id and not api_keys.scope_allows(principal.scopes, settings.service_name,
                                                          request.method):
        raise Forbidden(f"This API key's scopes do not allow {request.method} on {settings.service_name}")
    limit = settings.rate_limit_per_minute
    wait = _limiter.allow(principal.id, limit)
    if wait:
        raise TooManyRequests(f"Rate limit of {limit} requests per minute exceeded",
                              headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    request.state.principal = principal
    return principal


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The caller (as `get_principal`), refused with a 403 unless its role is one of `roles`."""
    return _BearerPrincipal(frozenset(roles))


AnyCaller = Annotated[Principal, Depends(get_principal)]
PlatformOwner = Annotated[Principal, Depends(require_roles(Role.PLATFORM_OWNER))]
