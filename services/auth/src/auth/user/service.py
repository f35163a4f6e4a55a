"""User accounts: creation, changes, and the owner seeded at start."""

from __future__ import annotations

import logging
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import User
from auth.refresh_token import service as refresh_tokens
from auth.user.passwords import hash_password
from auth.user.repository import DuplicateEmail, UserRepository
from auth.user.schemas import UserCreate, UserRead, UserUpdate, check_role_tenant
from common.api import Page, PageParams
from common.auth import Principal, Role
from common.db import utcnow
from common.errors import Conflict, Unauthorized, Unprocessable, found

logger = logging.getLogger("auth.user")


async def _get(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    user = await UserRepository(session).get(user_id, for_update=for_update)
    return found(user, f"User {user_id} not found")


async def create(session: AsyncSession, payload: UserCreate) -> UserRead:
    user = User(id=uuid.uuid4(), email=payload.email, password_hash=await hash_password(payload.password),
                platform_role=payload.platform_role.value, tenant_id=payload.tenant_id, name=payload.name,
                is_active=True)
    try:
        await UserRepository(session).add(user)
    except DuplicateEmail:
        raise Conflict(f"A user with email {payload.email!r} already exists") from None
    return UserRead.model_validate(user)


async def get(session: AsyncSession, user_id: uuid.UUID) -> UserRead:
    return UserRead.model_validate(await _get(session, user_id))


async def me(session: AsyncSession, principal: Principal) -> UserRead:
    user = await UserRepository(session).get(principal.id)
    if user is None or not user.is_active:
        raise Unauthorized("This account no longer exists or is disabled")
    return UserRead.model_validate(user)


async def list_users(session: AsyncSession, *, tenant_id: uuid.UUID | None, role: Role | None, q: str | None,
                     page: PageParams) -> Page[UserRead]:
    items, total = await UserRepository(session).list(tenant_id=tenant_id, role=role.value if role else None,
                                                      q=q, limit=page.limit, offset=page.offset)
    return Page[UserRead].of(items, total, page)


async def update(session: AsyncSession, user_id: uuid.UUID, payload: UserUpdate) -> UserRead:
    repo = UserRepository(session)
    fields = payload.model_dump(exclude_unset=True)
    user = await _get(session, user_id, for_update=True)
    role = Role(fields.get("platform_role") or user.platform_role)
    if "tenant_id" in fields:
        tenant_id = fields["tenant_id"]
    elif role is Role.PLATFORM_OWNER:
        tenant_id = None  # promotion to owner leaves the tenant
    else:
        tenant_id = user.tenant_id
    if problem := check_role_tenant(role, tenant_id):
        raise Unprocessable(problem)
    active = user.is_active if fields.get("is_active") is None else fields["is_active"]
    was_active_owner = user.is_active and user.platform_role == Role.PLATFORM_OWNER
    if was_active_owner and (role is not Role.PLATFORM_OWNER or not active):
        if len(await repo.lock_active_owners()) <= 1:
            raise Conflict("This is the last active PLATFORM_OWNER; it cannot be demoted or disabled")

    ends_sessions = (role != user.platform_role or tenant_id != user.tenant_id or not active
                     or fields.get("password") is not None)
    if fields.get("name") is not None:
        user.name = fields["name"]
    if fields.get("password") is not None:
        user.password_hash = await hash_password(fields["password"])
    user.platform_role, user.tenant_id, user.is_active = role.value, tenant_id, active
    user.updated_at = utcnow()
    await repo.flush()
    if ends_sessions:
        await refresh_tokens.revoke_all(session, user.id)
    return UserRead.model_validate(user)


async def seed_owner(session: AsyncSession, email: str, password: str | None) -> None:
    """Creates the platform owner unless a user with that email exists (its password is then kept).

    Without a password (unset or empty) one is generated and logged once, at creation."""
    repo = UserRepository(session)
    await repo.lock_owner_seed()
    existing = await repo.by_email(email)
    if existing is not None:
        if existing.platform_role != Role.PLATFORM_OWNER:
            logger.warning("PLATFORM_OWNER_EMAIL %s belongs to a %s; no owner was seeded", email,
                           existing.platform_role)
        return
    generated = not password
    password = password or secrets.token_urlsafe(18)
    await repo.add(User(id=uuid.uuid4(), email=email.strip().lower(), password_hash=await hash_password(password),
                        platform_role=Role.PLATFORM_OWNER.value, tenant_id=None, name="Platform owner",
                        is_active=True))
    if generated:
        logger.warning("Created platform owner %s with generated password: %s  "
                       "(shown once; set PLATFORM_OWNER_PASSWORD to choose it)", email, password)
    else:
        logger.info("Created platform owner %s", email)
