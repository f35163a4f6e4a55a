"""All SQL of platform API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, not_, or_, select, update

from auth.models import ApiKey
from common.db.repository import Repository


def _is_active(now: datetime) -> ColumnElement[bool]:
    return and_(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    async def by_public_id(self, public_id: str) -> ApiKey | None:
        return await self.get_one(select(ApiKey).where(ApiKey.public_id == public_id))

    async def successor(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self.get_one(select(ApiKey).where(ApiKey.rotated_from == key_id))

    async def list(self, *, active: bool | None, now: datetime, limit: int,
                   offset: int) -> tuple[list[ApiKey], int]:
        stmt = select(ApiKey)
        if active is not None:
            stmt = stmt.where(_is_active(now) if active else not_(_is_active(now)))
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[ApiKey.created_at.desc()])

    async def touch(self, key_id: uuid.UUID, now: datetime, unless_since: datetime) -> None:
        """Sets last_used_at unless it is already newer than `unless_since` (another replica wrote it)."""
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since))
            .values(last_used_at=now)
        )
