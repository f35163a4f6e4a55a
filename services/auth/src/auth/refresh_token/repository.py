"""All SQL of refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update

from auth.models import RefreshToken
from common.db.repository import Repository


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def by_hash_for_update(self, token_hash: str) -> RefreshToken | None:
        # The row lock serialises two uses of one token: the second sees it used (reuse).
        return await self.get_one(select(RefreshToken).where(RefreshToken.token_hash == token_hash)
                                  .with_for_update())

    async def revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )

    async def revoke_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )

    async def delete_expired(self, before: datetime) -> int:
        result = await self.session.execute(delete(RefreshToken).where(RefreshToken.expires_at < before))
        return result.rowcount or 0
