"""All SQL of users (STYLE habit 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import User

# pg_advisory_xact_lock key: replicas starting together seed the owner once.
OWNER_SEED_LOCK = 0x61757468_0001


class DuplicateEmail(Exception):
    pass


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_email(self, email: str) -> User | None:
        stmt = select(User).where(func.lower(User.email) == email.lower())
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, tenant_id: uuid.UUID | None, role: str | None, q: str | None,
                   limit: int, offset: int) -> tuple[list[User], int]:
        stmt = select(User)
        if tenant_id is not None:
            stmt = stmt.where(User.tenant_id == tenant_id)
        if role is not None:
            stmt = stmt.where(User.platform_role == role)
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            stmt = stmt.where(User.email.ilike(pattern, escape="\\") | User.name.ilike(pattern, escape="\\"))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(stmt.order_by(User.created_at.desc(), User.id).limit(limit).offset(offset))
        return list(rows.scalars()), total

    async def lock_active_owners(self) -> list[uuid.UUID]:
        """Locks the active owners' rows, so two concurrent demotions cannot remove the last one."""
        stmt = (select(User.id).where(User.platform_role == "PLATFORM_OWNER", User.is_active)
                .order_by(User.id).with_for_update())
        return list((await self.session.execute(stmt)).scalars())

    async def add(self, user: User) -> None:
        self.session.add(user)
        await self.flush()

    async def flush(self) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError as exc:
            if "uq_users_email_lower" in str(exc.orig):
                raise DuplicateEmail from exc
            raise

    async def lock_owner_seed(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock(OWNER_SEED_LOCK)))
