"""Plans are reference data (seeded by migrations, changed by hand at most): every tenant create needs
one, so each process keeps the active plans for a short while instead of querying them per request."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import Plan
from tenants.plan.repository import PlanRepository

TTL_SECONDS = 30.0  # a plan switched off by hand is still accepted for at most this long


class PlanCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._by_key: dict[str, Plan] = {}
        self._loaded_at: float | None = None

    async def active(self, session: AsyncSession, value: str) -> Plan | None:
        """The active plan named or coded `value` (any case), bound to `session`, or None."""
        if self._loaded_at is None or time.monotonic() - self._loaded_at > self.ttl:
            await self._load(session)
        cached = self._by_key.get(value.lower())
        # merge(load=False): a copy in this session without a query; the cached instance stays detached.
        return None if cached is None else await session.merge(cached, load=False)

    async def _load(self, session: AsyncSession) -> None:
        by_key: dict[str, Plan] = {}
        for plan in await PlanRepository(session).active_detached():
            by_key[plan.code.lower()] = plan
            by_key[plan.name.lower()] = plan
        self._by_key, self._loaded_at = by_key, time.monotonic()

    def clear(self) -> None:
        self._loaded_at = None


plans = PlanCache()
