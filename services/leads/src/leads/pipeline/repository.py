"""Pipeline SQL: per-stage aggregates and a window-function page of leads per stage."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from common.db.repository import Repository
from leads.lead.repository import SORT, apply_filters
from leads.lead.schemas import LeadFilters, LeadSort
from leads.models import Lead


@dataclass(frozen=True)
class StageCurrencyTotal:
    stage: str
    currency: str
    count: int
    value: Decimal


class PipelineRepository(Repository[Lead]):
    model = Lead

    async def totals(self, f: LeadFilters) -> list[StageCurrencyTotal]:
        stmt = apply_filters(select(Lead.stage, Lead.currency, func.count(), func.coalesce(func.sum(Lead.value), 0)),
                             f).group_by(Lead.stage, Lead.currency)
        return [StageCurrencyTotal(*row) for row in (await self.session.execute(stmt)).all()]

    async def page_per_stage(self, f: LeadFilters, *, sort: LeadSort, limit: int, offset: int) -> list[Lead]:
        """Rows offset+1 .. offset+limit of every stage, in `sort` order within the stage."""
        rn = func.row_number().over(partition_by=Lead.stage, order_by=[SORT[sort], Lead.id]).label("rn")
        ranked = apply_filters(select(Lead.id, rn), f).subquery()
        stmt = (select(Lead).join(ranked, ranked.c.id == Lead.id)
                .where(ranked.c.rn > offset, ranked.c.rn <= offset + limit)
                .order_by(Lead.stage, ranked.c.rn))
        return await self.all(stmt)
