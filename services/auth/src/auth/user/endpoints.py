from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from auth.api_key import service as api_keys
from auth.api_key.schemas import ApiKeyPrincipal
from auth.transaction import SessionDep
from auth.user import service
from auth.user.schemas import UserCreate, UserRead, UserUpdate
from common.api import Page, PageParamsDep
from common.auth import AnyCaller, PlatformOwner, Role
from common.errors import problem_responses
from common.validation import StorableText

router = APIRouter(prefix="/api/auth", tags=["users"])


@router.get("/me", response_model=UserRead | ApiKeyPrincipal, responses=problem_responses(401, 403))
async def me(session: SessionDep, principal: AnyCaller) -> UserRead | ApiKeyPrincipal:
    """The signed-in user, or for a platform API key the principal it stands for."""
    if principal.api_key_id is not None:
        return await api_keys.me(session, principal)
    return await service.me(session, principal)


@router.get("/users", response_model=Page[UserRead], responses=problem_responses(401, 403, 422))
async def list_users(
    session: SessionDep, _: PlatformOwner, page: PageParamsDep,
    tenantId: uuid.UUID | None = None,
    role: Role | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in email and name"), StorableText] = None,
) -> Page[UserRead]:
    """Users, newest first."""
    return await service.list_users(session, tenant_id=tenantId, role=role, q=q, page=page)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserRead,
             responses=problem_responses(401, 403, 409, 422))
async def create_user(session: SessionDep, _: PlatformOwner, body: UserCreate) -> UserRead:
    """Create a user; tenant roles need a `tenantId`, the owner has none."""
    return await service.create(session, body)


@router.get("/users/{user_id}", response_model=UserRead, responses=problem_responses(401, 403, 404, 422))
async def get_user(session: SessionDep, _: PlatformOwner, user_id: uuid.UUID) -> UserRead:
    return await service.get(session, user_id)


@router.patch("/users/{user_id}", response_model=UserRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_user(session: SessionDep, _: PlatformOwner, user_id: uuid.UUID, body: UserUpdate) -> UserRead:
    """Change name, active flag, password or role. A new password, role or deactivation signs the user out
    (their refresh tokens are revoked; access tokens expire within minutes)."""
    return await service.update(session, user_id, body)
