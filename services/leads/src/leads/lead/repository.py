"""All SQL of leads and their stage history (STYLE habit 2)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from leads.lead.schemas import LeadFilters, LeadSort
from leads.models import Lead, StageChange

SORT = {
    LeadSort.created: Lead.created_at.asc(),
    LeadSort.created_desc: Lead.created_at.desc(),
    LeadSort.updated: Lead.updated_at.asc(),
    LeadSort.updated_desc: Lead.updated_at.desc(),
    LeadSort.name: func.lower(Lead.name).asc(),
    LeadSort.name_desc: func.lower(Lead.name).desc(),
    LeadSort.value: Lead.value.asc(),
    LeadSort.value_desc: Lead.value.desc(),
}


class StageMissing(Exception):
    """The stage was removed concurrently (foreign key)."""


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_conditions(f: LeadFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.stage is not None:
        conds.append(Lead.stage == f.stage)
    if f.source is not None:
        conds.append(Lead.source == f.source)
    if f.own_operation is not None:
        conds.append(Lead.own_operation.is_(f.own_operation))
    if f.created_from is not None:
        conds.append(Lead.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(Lead.created_at < f.created_to)
    if f.q:
        pattern = _like(f.q)
        conds.append(or_(Lead.name.ilike(pattern, escape="\\"), Lead.email.ilike(pattern, escape="\\"),
                         Lead.company.ilike(pattern, escape="\\")))
    return conds


def apply_filters(stmt: Select[Any], f: LeadFilters) -> Select[Any]:
    conds = filter_conditions(f)
    return stmt.where(*conds) if conds else stmt


class LeadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        stmt = select(Lead).where(Lead.id == lead_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, f: LeadFilters, *, sort: LeadSort, limit: int, offset: int) -> tuple[list[Lead], int]:
        stmt = apply_filters(select(Lead), f)
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(stmt.order_by(SORT[sort], Lead.id).limit(limit).offset(offset))
        return list(rows.scalars()), total

    async def add(self, lead: Lead) -> None:
        self.session.add(lead)
        await self.flush()

    async def add_if_new_contact(self, values: dict[str, Any]) -> Lead | None:
        """Insert unless a lead with this `contact_key` exists (then None): one lead per contact."""
        stmt = (insert(Lead).values(**values).on_conflict_do_nothing(index_elements=[Lead.contact_key])
                .returning(Lead))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def flush(self) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError as exc:
            if "fk_leads_stage_lead_stages" in str(exc.orig):
                raise StageMissing from exc
            raise

    async def add_stage_change(self, change: StageChange) -> None:
        self.session.add(change)
        await self.flush()

    async def history(self, lead_id: uuid.UUID) -> list[StageChange]:
        stmt = (select(StageChange).where(StageChange.lead_id == lead_id)
                .order_by(StageChange.created_at, StageChange.id))
        return list((await self.session.execute(stmt)).scalars())
