"""All SQL of platform API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import ApiKey


def _is_active(now: datetime) -> ColumnElement[bool]:
    return and_(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: uuid.UUID, *, for_update: bool = False) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.id == key_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_public_id(self, public_id: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.public_id == public_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def successor(self, key_id: uuid.UUID) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.rotated_from == key_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, active: bool | None, now: datetime, limit: int,
                   offset: int) -> tuple[list[ApiKey], int]:
        stmt = select(ApiKey)
        if active is not None:
            stmt = stmt.where(_is_active(now) if active else not_(_is_active(now)))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(
            stmt.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit).offset(offset))
        return list(rows.scalars()), total

    async def add(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def touch(self, key_id: uuid.UUID, now: datetime, unless_since: datetime) -> None:
        """Sets last_used_at unless it is already newer than `unless_since` (another replica wrote it)."""
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since))
            .values(last_used_at=now)
        )
