"""Plans are reference data (seeded by migrations, changed by hand at most): every tenant create needs
one, so each process keeps the active plans for a short while instead of querying them per request."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from common.db.engine import Database
from tenants.models import Plan
from tenants.plan.repository import PlanRepository

TTL_SECONDS = 30.0  # a plan switched off by hand is still accepted for at most this long


class PlanCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._by_key: dict[str, Plan] = {}
        self._names: list[str] = []
        self._loaded_at: float | None = None

    async def active(self, source: AsyncSession | Database, value: str) -> Plan | None:
        """The active plan named or coded `value` (any case), or None. The instance is detached and shared by
        every request: read it, or `session.merge(plan, load=False)` it to relate a row to it."""
        await self._fresh(source)
        return self._by_key.get(value.lower())

    async def names(self, source: AsyncSession | Database) -> list[str]:
        """The active plans' names, in their display order."""
        await self._fresh(source)
        return self._names

    async def _fresh(self, source: AsyncSession | Database) -> None:
        if self._loaded_at is not None and time.monotonic() - self._loaded_at <= self.ttl:
            return
        if isinstance(source, Database):
            async with source.sessionmaker() as session:
                await self._load(session)
        else:
            await self._load(source)

    async def _load(self, session: AsyncSession) -> None:
        by_key: dict[str, Plan] = {}
        active = await PlanRepository(session).active_detached()
        for plan in active:
            by_key[plan.code.lower()] = plan
            by_key[plan.name.lower()] = plan
        self._by_key, self._names, self._loaded_at = by_key, [p.name for p in active], time.monotonic()

    def clear(self) -> None:
        self._loaded_at = None


plans = PlanCache()
