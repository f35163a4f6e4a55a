from __future__ import annotations

from sqlalchemy import select
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
