"""Rotating refresh tokens: opaque random strings, stored as SHA-256, grouped in families.

Each use marks the token used and issues the next one in its family; presenting a used token again means
it was copied, so the whole family is revoked (OAuth 2.0 Security BCP, refresh token rotation).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import RefreshToken
from auth.refresh_token.repository import RefreshTokenRepository
from auth.transaction import RejectedCredentials
from common.db import utcnow

INVALID = "Invalid or expired refresh token"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(session: AsyncSession, user_id: uuid.UUID, *, ttl_days: int,
                family_id: uuid.UUID | None = None) -> str:
    """A new token for the user; without `family_id` it starts a new family (a login)."""
    token = secrets.token_urlsafe(32)
    await RefreshTokenRepository(session).add(RefreshToken(
        id=uuid.uuid4(), token_hash=_hash(token), family_id=family_id or uuid.uuid4(), user_id=user_id,
        expires_at=utcnow() + timedelta(days=ttl_days),
    ))
    return token


async def use(session: AsyncSession, token: str) -> RefreshToken:
    """Consumes a valid token (marks it used) and returns it; its family and user issue the next one.

    A replayed token revokes its family; the 401 keeps that change (RejectedCredentials).
    """
    repo = RefreshTokenRepository(session)
    row = await repo.by_hash_for_update(_hash(token))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise RejectedCredentials(INVALID)
    if row.used_at is not None:
        await repo.revoke_family(row.family_id, now)
        raise RejectedCredentials("Refresh token was already used; its session has been revoked")
    row.used_at = now
    return row


async def revoke_family_of(session: AsyncSession, token: str) -> None:
    """Logout: ends the session the token belongs to. Unknown tokens are ignored."""
    repo = RefreshTokenRepository(session)
    row = await repo.by_hash_for_update(_hash(token))
    if row is not None:
        await repo.revoke_family(row.family_id, utcnow())


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await RefreshTokenRepository(session).revoke_family(family_id, utcnow())


async def revoke_all(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Ends every session of a user (new password, new role, deactivation)."""
    await RefreshTokenRepository(session).revoke_user(user_id, utcnow())


async def purge_expired(session: AsyncSession) -> int:
    return await RefreshTokenRepository(session).delete_expired(utcnow() - timedelta(days=1))
