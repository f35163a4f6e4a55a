"""All SQL of users (STYLE habit 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from auth.models import User
from common.db.repository import Repository, contains

# pg_advisory_xact_lock key: replicas starting together seed the owner once.
OWNER_SEED_LOCK = 0x61757468_0001


class DuplicateEmail(Exception):
    pass


class UserRepository(Repository[User]):
    model = User
    violations = {"uq_users_email_lower": DuplicateEmail}

    async def by_email(self, email: str) -> User | None:
        return await self.get_one(select(User).where(func.lower(User.email) == email.lower()))

    async def list(self, *, tenant_id: uuid.UUID | None, role: str | None, q: str | None,
                   limit: int, offset: int) -> tuple[list[User], int]:
        stmt = select(User)
        if tenant_id is not None:
            stmt = stmt.where(User.tenant_id == tenant_id)
        if role is not None:
            stmt = stmt.where(User.platform_role == role)
        if q:
            stmt = stmt.where(contains([User.email, User.name], q))
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[User.created_at.desc()])

    async def lock_active_owners(self) -> list[uuid.UUID]:
        """Locks the active owners' rows, so two concurrent demotions cannot remove the last one."""
        stmt = (select(User.id).where(User.platform_role == "PLATFORM_OWNER", User.is_active)
                .order_by(User.id).with_for_update())
        return list((await self.session.execute(stmt)).scalars())

    async def lock_owner_seed(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock(OWNER_SEED_LOCK)))
