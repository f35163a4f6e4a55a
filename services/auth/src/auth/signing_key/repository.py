"""All SQL of signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select

from auth.models import SigningKey
from common.db.repository import Repository

# pg_advisory_xact_lock key: replicas starting together create one key, not one each.
KEY_CREATION_LOCK = 0x61757468_0002


class SigningKeyRepository(Repository[SigningKey]):
    model = SigningKey

    async def lock_creation(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock(KEY_CREATION_LOCK)))

    async def active(self) -> SigningKey | None:
        return await self.get_one(select(SigningKey).where(SigningKey.retired_at.is_(None))
                                  .order_by(SigningKey.created_at.desc()).limit(1))

    async def published(self, retired_after: datetime) -> list[SigningKey]:
        """Unretired keys and those retired recently enough that tokens they signed may still be live."""
        return await self.all(select(SigningKey)
                              .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > retired_after))
                              .order_by(SigningKey.created_at.desc()))
