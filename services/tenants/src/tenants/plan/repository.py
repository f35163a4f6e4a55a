from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import make_transient_to_detached

from common.db.repository import Repository
from tenants.models import Plan


class PlanRepository(Repository[Plan]):
    model = Plan

    async def active_detached(self) -> list[Plan]:
        """Active plans in display order, as detached instances outside this session's identity map (for caching)."""
        rows = (await self.session.execute(select(Plan.__table__).where(Plan.active).order_by(Plan.sort_order))).mappings()
        plans = []
        for row in rows:
            plan = Plan(**row)
            make_transient_to_detached(plan)
            plans.append(plan)
        return plans

    async def list(self, *, active: bool | None = None) -> list[Plan]:
        stmt = select(Plan).order_by(Plan.sort_order, Plan.code)
        if active is not None:
            stmt = stmt.where(Plan.active == active)
        return await self.all(stmt)

    async def by_code(self, code: str, *, for_update: bool = False) -> Plan | None:
        stmt = select(Plan).where(func.lower(Plan.code) == code.lower())
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def clashing(self, *keys: str, besides: Plan | None = None) -> Plan | None:
        """A plan (other than `besides`) whose code or name is one of `keys`, in any case: tenants pick a plan
        by either, so no name may be another plan's code."""
        lowered = [k.lower() for k in keys]
        stmt = select(Plan).where(or_(func.lower(Plan.code).in_(lowered), func.lower(Plan.name).in_(lowered)))
        if besides is not None:
            stmt = stmt.where(Plan.id != besides.id)
        return await self.get_one(stmt.limit(1))

    async def next_sort_order(self) -> int:
        return int((await self.session.execute(select(func.coalesce(func.max(Plan.sort_order), 0)))).scalar_one()) + 1
