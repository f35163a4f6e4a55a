"""All SQL of signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import SigningKey

# pg_advisory_xact_lock key: replicas starting together create one key, not one each.
KEY_CREATION_LOCK = 0x61757468_0002


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_creation(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock(KEY_CREATION_LOCK)))

    async def active(self) -> SigningKey | None:
        stmt = (select(SigningKey).where(SigningKey.retired_at.is_(None))
                .order_by(SigningKey.created_at.desc()).limit(1))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def published(self, retired_after: datetime) -> list[SigningKey]:
        """Unretired keys and those retired recently enough that tokens they signed may still be live."""
        stmt = (select(SigningKey)
                .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > retired_after))
                .order_by(SigningKey.created_at.desc()))
        return list((await self.session.execute(stmt)).scalars())

    async def add(self, key: SigningKey) -> None:
        self.session.add(key)
        await self.session.flush()
