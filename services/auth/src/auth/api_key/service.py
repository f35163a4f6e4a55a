"""Platform API keys for machines (an n8n flow, a script): created and rotated by the owner, checked by
every service through introspection.

A key is `plk_<public id>_<secret>`: 12 hex characters that find the row, then 32 random bytes. Only the
SHA-256 of the whole key is stored; a fast hash is right for a secret with 256 bits of entropy (nothing to
brute-force), and it is compared in constant time. The full key appears only in the create and rotate
responses.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth.api_key.repository import ApiKeyRepository
from auth.api_key.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPrincipal,
    ApiKeyRead,
    ApiKeyRotate,
    IntrospectActive,
    IntrospectInactive,
    IntrospectResponse,
)
from auth.config import Settings
from auth.models import ApiKey
from common.api import Page, PageParams
from common.auth import Principal, Role
from common.db import utcnow
from common.errors import Conflict, Unauthorized, Unprocessable, found

PREFIX = "plk_"
KEY_PATTERN = re.compile(r"plk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
# lastUsedAt is a hint for people, not an audit log: at most one write per key per minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    """(public id, full key)."""
    public_id = secrets.token_hex(6)
    return public_id, f"{PREFIX}{public_id}_{secrets.token_urlsafe(32)}"


def is_active(key: ApiKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def to_read(k: ApiKey, now: datetime | None = None) -> ApiKeyRead:
    # Not a plain model_validate: `active` and `ageDays` depend on the clock, `prefix` is derived.
    now = now or utcnow()
    return ApiKeyRead(
        id=k.id, name=k.name, prefix=f"{PREFIX}{k.public_id}", role=Role(k.role), tenant_id=k.tenant_id,
        scopes=list(k.scopes), active=is_active(k, now), created_by=k.created_by, created_at=k.created_at,
        expires_at=k.expires_at, last_used_at=k.last_used_at, revoked_at=k.revoked_at,
        rotated_from=k.rotated_from, age_days=max(0, (now - k.created_at).days),
    )


def _principal(k: ApiKey) -> ApiKeyPrincipal:
    return ApiKeyPrincipal(id=k.id, role=Role(k.role), tenant_id=k.tenant_id, scopes=list(k.scopes),
                           key_id=str(k.id), name=k.name)


async def _issue(session: AsyncSession, *, name: str, role: Role, tenant_id: uuid.UUID | None, scopes: list[str],
                 expires_at: datetime | None, created_by: uuid.UUID | None,
                 rotated_from: uuid.UUID | None = None) -> ApiKeyCreated:
    public_id, key = _new_key()
    row = ApiKey(id=uuid.uuid4(), name=name, public_id=public_id, key_hash=_hash(key), role=role.value,
                 tenant_id=tenant_id, scopes=scopes, created_by=created_by, expires_at=expires_at,
                 rotated_from=rotated_from)
    await ApiKeyRepository(session).add(row)
    return ApiKeyCreated(**to_read(row).model_dump(by_alias=False), key=key)


async def _get(session: AsyncSession, key_id: uuid.UUID, *, for_update: bool = False) -> ApiKey:
    key = await ApiKeyRepository(session).get(key_id, for_update=for_update)
    return found(key, f"API key {key_id} not found")


async def create(session: AsyncSession, owner: Principal, payload: ApiKeyCreate) -> ApiKeyCreated:
    if payload.expires_at is not None and payload.expires_at <= utcnow():
        raise Unprocessable("expiresAt must be in the future")
    assert payload.role is not None  # the schema fills it in
    return await _issue(session, name=payload.name, role=payload.role, tenant_id=payload.tenant_id,
                        scopes=payload.scopes, expires_at=payload.expires_at, created_by=owner.id)


async def get(session: AsyncSession, key_id: uuid.UUID) -> ApiKeyRead:
    return to_read(await _get(session, key_id))


async def list_keys(session: AsyncSession, *, active: bool | None, page: PageParams) -> Page[ApiKeyRead]:
    now = utcnow()
    items, total = await ApiKeyRepository(session).list(active=active, now=now, limit=page.limit,
                                                        offset=page.offset)
    return Page[ApiKeyRead].of(items, total, page, read=lambda k: to_read(k, now))


async def rotate(session: AsyncSession, owner: Principal, key_id: uuid.UUID, payload: ApiKeyRotate) -> ApiKeyCreated:
    """A new key with the same name, role, scopes and lifetime; the old one is revoked now, or expires after
    the grace period (never later than it would have anyway)."""
    repo = ApiKeyRepository(session)
    old = await _get(session, key_id, for_update=True)  # two rotations of one key: the second sees the first
    now = utcnow()
    if not is_active(old, now):
        raise Conflict("This API key is revoked or expired; create a new one instead")
    if (successor := await repo.successor(old.id)) is not None:
        raise Conflict(f"This API key was already rotated; rotate its successor {successor.id} instead")
    lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
    if payload.grace_period_hours == 0:
        old.revoked_at = now
    else:
        grace_end = now + timedelta(hours=payload.grace_period_hours)
        old.expires_at = min(old.expires_at, grace_end) if old.expires_at is not None else grace_end
    old.updated_at = now
    await repo.flush()
    return await _issue(session, name=old.name, role=Role(old.role), tenant_id=old.tenant_id,
                        scopes=list(old.scopes), expires_at=now + lifetime if lifetime is not None else None,
                        created_by=owner.id, rotated_from=old.id)


async def revoke(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    key = await _get(session, key_id, for_update=True)
    if key.revoked_at is None:
        key.revoked_at = key.updated_at = utcnow()
        await ApiKeyRepository(session).flush()


async def introspect(session: AsyncSession, settings: Settings, key: str) -> IntrospectResponse:
    """What a key stands for, or inactive (unknown, revoked, expired, malformed: all look the same)."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return IntrospectInactive(active=False)
    repo = ApiKeyRepository(session)
    row = await repo.by_public_id(match.group(1))
    now = utcnow()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)) or not is_active(row, now):
        return IntrospectInactive(active=False)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await repo.touch(row.id, now, unless_since=now - LAST_USED_RESOLUTION)
    cache_seconds = settings.api_key_cache_seconds
    if row.expires_at is not None:  # a cached answer must not outlive the key
        cache_seconds = min(cache_seconds, max(0, math.floor((row.expires_at - now).total_seconds())))
    return IntrospectActive(active=True, principal=_principal(row), cache_seconds=cache_seconds)


async def me(session: AsyncSession, principal: Principal) -> ApiKeyPrincipal:
    """`/me` for a caller that presented an API key."""
    key = await ApiKeyRepository(session).get(uuid.UUID(str(principal.api_key_id)))
    if key is None or not is_active(key, utcnow()):
        raise Unauthorized("This API key is unknown, revoked or expired")
    return _principal(key)
