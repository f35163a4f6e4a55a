"""All SQL of login attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, literal, select, update

from auth.models import LoginAttempt
from common.db.repository import Repository


class LoginAttemptRepository(Repository[LoginAttempt]):
    model = LoginAttempt

    async def lock(self, email: str, ip: str) -> None:
        """Serialises attempts on one (email, IP) until commit, so a burst cannot outrun the count."""
        key = func.hashtextextended(literal(email) + "|" + literal(ip), 0)
        await self.session.execute(select(func.pg_advisory_xact_lock(key)))

    async def nth_latest_failure(self, n: int, since: datetime, *, ip: str,
                                 email: str | None = None) -> datetime | None:
        """When the n-th most recent counted failure happened (None: fewer than n since `since`)."""
        stmt = select(LoginAttempt.created_at).where(LoginAttempt.ip == ip, LoginAttempt.created_at > since)
        if email is not None:
            stmt = stmt.where(LoginAttempt.email == email, LoginAttempt.cleared.is_(False))
        stmt = stmt.order_by(LoginAttempt.created_at.desc()).offset(n - 1).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add_failure(self, email: str, ip: str, now: datetime) -> None:
        await self.add(LoginAttempt(id=uuid.uuid4(), email=email, ip=ip, created_at=now, updated_at=now))

    async def clear(self, email: str, ip: str) -> None:
        await self.session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.email == email, LoginAttempt.ip == ip, LoginAttempt.cleared.is_(False))
            .values(cleared=True)
        )

    async def delete_older_than(self, before: datetime) -> int:
        result = await self.session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < before))
        return result.rowcount or 0
