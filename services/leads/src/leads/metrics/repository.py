"""Metrics SQL: everything is an aggregate over the window's leads; no lead is loaded."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, Integer, and_, cast, func, literal, select

from common.db.repository import Repository
from leads.lead.repository import filter_conditions
from leads.lead.schemas import LeadFilters
from leads.models import Lead, Stage

_converted = Lead.converted_at.is_not(None)


class MetricsRepository(Repository[Lead]):
    model = Lead

    async def totals(self, f: LeadFilters) -> Any:
        stmt = (select(func.count(Lead.id).label("leads"),
                       func.count(Lead.id).filter(~Stage.is_final).label("open"),
                       func.count(Lead.id).filter(_converted).label("converted"),
                       func.count(Lead.id).filter(Stage.is_lost).label("lost"),
                       func.avg(func.extract("epoch", Lead.converted_at - Lead.created_at))
                       .filter(_converted).label("avg_seconds"))
                .select_from(Lead).join(Stage, Stage.code == Lead.stage).where(*filter_conditions(f)))
        return (await self.session.execute(stmt)).one()

    async def value_by_currency(self, f: LeadFilters) -> list[Any]:
        stmt = (select(Lead.currency, func.sum(Lead.value).label("total"),
                       func.coalesce(func.sum(Lead.value).filter(_converted), 0).label("converted"))
                .where(*filter_conditions(f)).group_by(Lead.currency).order_by(Lead.currency))
        return list((await self.session.execute(stmt)).all())

    async def by_source(self, f: LeadFilters) -> list[Any]:
        count = func.count(Lead.id)
        stmt = (select(Lead.source, count.label("count"), func.count(Lead.id).filter(_converted).label("converted"))
                .where(*filter_conditions(f)).group_by(Lead.source).order_by(count.desc(), Lead.source))
        return list((await self.session.execute(stmt)).all())

    async def by_stage(self, f: LeadFilters) -> list[Any]:
        stmt = (select(Stage.code, Stage.name, func.count(Lead.id).label("count"),
                       func.coalesce(func.sum(Lead.value), 0).label("value"))
                .select_from(Stage)
                .outerjoin(Lead, and_(Lead.stage == Stage.code, *filter_conditions(f)))
                .group_by(Stage.id).order_by(Stage.position, Stage.code))
        return list((await self.session.execute(stmt)).all())

    async def created_per_day(self, f: LeadFilters, first: date, days: int) -> list[Any]:
        """One row per day of [first, first + days), counting leads by their UTC creation date."""
        offsets = func.generate_series(0, days - 1).table_valued("n").render_derived()
        day = (literal(first, Date) + cast(offsets.c.n, Integer)).label("day")
        created_on = cast(func.timezone("UTC", Lead.created_at), Date)
        stmt = (select(day, func.count(Lead.id).label("count"))
                .select_from(offsets)
                .outerjoin(Lead, and_(created_on == day, *filter_conditions(f)))
                .group_by(day).order_by(day))
        return list((await self.session.execute(stmt)).all())
