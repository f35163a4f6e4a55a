from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from auth.api_key import service
from auth.api_key.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyRotate,
    IntrospectActive,
    IntrospectRequest,
    IntrospectResponse,
)
from auth.api_key.throttle import IntrospectionThrottle
from auth.login.client_ip import client_ip
from auth.transaction import SessionDep
from common.api import Page, PageParamsDep
from common.auth import PlatformOwner, Principal
from common.errors import Forbidden, TooManyRequests, problem_responses

router = APIRouter(prefix="/api/auth/api-keys", tags=["api keys"])

# Every service asks here; the key's own 256 bits of entropy protect it, throttling the guessing.
PUBLIC_PATHS = {"/api/auth/api-keys/introspect"}


async def _signed_in_owner(principal: PlatformOwner) -> Principal:
    # A leaked key must not be able to mint its own replacements or rotate the real one away.
    if principal.api_key_id is not None:
        raise Forbidden("API keys cannot manage API keys: sign in as a platform owner")
    return principal


SignedInOwner = Annotated[Principal, Depends(_signed_in_owner)]


def _throttle(request: Request) -> IntrospectionThrottle:
    return request.app.state.introspection_throttle


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated,
             responses=problem_responses(401, 403, 422))
async def create_api_key(session: SessionDep, owner: SignedInOwner, body: ApiKeyCreate) -> ApiKeyCreated:
    """Create a key for a machine. The full `key` is in this response only: it cannot be shown again.

    Tenant roles need a `tenantId`; `scopes` narrow what the role allows (empty: everything it allows)."""
    return await service.create(session, owner, body)


@router.get("", response_model=Page[ApiKeyRead], responses=problem_responses(401, 403, 422))
async def list_api_keys(session: SessionDep, _: SignedInOwner, page: PageParamsDep,
                        active: bool | None = None) -> Page[ApiKeyRead]:
    """Keys, newest first, with their age and last use (the key itself is never shown)."""
    return await service.list_keys(session, active=active, page=page)


@router.post("/introspect", response_model=IntrospectResponse, responses=problem_responses(422, 429))
async def introspect_api_key(session: SessionDep, request: Request, response: Response,
                             throttle: Annotated[IntrospectionThrottle, Depends(_throttle)],
                             body: IntrospectRequest) -> IntrospectResponse:
    """What a key stands for: `{"active": true, "principal": {...}, "cacheSeconds": 30}`, or
    `{"active": false}` for any key that is unknown, revoked, expired or malformed.

    Public (every service calls it to accept `plk_` bearer keys). Failed introspections are throttled per
    client IP (429 with Retry-After)."""
    ip = client_ip(request)
    if wait := throttle.take(ip):
        raise TooManyRequests("Too many failed API key introspections; try again later",
                              headers={"Retry-After": str(wait)})
    response.headers["Cache-Control"] = "no-store"
    result = await service.introspect(session, request.app.state.settings, body.key)
    if isinstance(result, IntrospectActive):
        throttle.give_back(ip)
    return result


@router.get("/{key_id}", response_model=ApiKeyRead, responses=problem_responses(401, 403, 404, 422))
async def get_api_key(session: SessionDep, _: SignedInOwner, key_id: uuid.UUID) -> ApiKeyRead:
    return await service.get(session, key_id)


@router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated,
             responses=problem_responses(401, 403, 404, 409, 422))
async def rotate_api_key(session: SessionDep, owner: SignedInOwner, key_id: uuid.UUID,
                         body: ApiKeyRotate | None = None) -> ApiKeyCreated:
    """Replace a key: a new key (shown once) with the same name, role, scopes and lifetime. The old key is
    revoked now, or keeps working for `gracePeriodHours` (up to 168) while the machine is switched over."""
    return await service.rotate(session, owner, key_id, body or ApiKeyRotate())


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 403, 404, 422))
async def revoke_api_key(session: SessionDep, _: SignedInOwner, key_id: uuid.UUID) -> Response:
    """Revoke a key (idempotent). Services that cached it accept it for at most `cacheSeconds` more."""
    await service.revoke(session, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
