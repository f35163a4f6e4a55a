from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import Plan


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_name_or_code(self, value: str) -> Plan | None:
        v = value.lower()
        stmt = select(Plan).where(Plan.active, or_(func.lower(Plan.name) == v, func.lower(Plan.code) == v))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self) -> list[Plan]:
        return list((await self.session.execute(select(Plan).order_by(Plan.sort_order))).scalars())
