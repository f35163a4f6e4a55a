"""All SQL of leads and their stage history (STYLE habit 2)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Select, func, not_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from common.api import Total
from common.db.repository import Repository, matching
from leads.lead.schemas import LeadFilters, LeadSort
from leads.models import Lead, StageChange, search_text

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


# What `q` searches: name, email and company as one text under one trigram index (ix_leads_search_trgm).
SEARCHED = (search_text(Lead.name, Lead.email, Lead.company),)


class StageMissing(Exception):
    """The stage was removed concurrently (foreign key)."""


def filter_conditions(f: LeadFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.stage is not None:
        conds.append(Lead.stage == f.stage)
    if f.source is not None:
        conds.append(Lead.source == f.source)
    if f.own_operation is not None:
        # Bare `own_operation` / `NOT own_operation` (no parameter): the planner then proves the own-operations
        # indexes' `WHERE own_operation` for the own-operations list.
        conds.append(Lead.own_operation if f.own_operation else not_(Lead.own_operation))
    if f.created_from is not None:
        conds.append(Lead.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(Lead.created_at < f.created_to)
    if f.q:
        conds.append(matching(SEARCHED, f.q)[0])  # as the list's (`search`), counted here
    return conds


def apply_filters(stmt: Select[Any], f: LeadFilters) -> Select[Any]:
    conds = filter_conditions(f)
    return stmt.where(*conds) if conds else stmt


class LeadRepository(Repository[Lead]):
    model = Lead
    violations = {"fk_leads_stage_lead_stages": StageMissing}

    async def get_with_history(self, lead_id: uuid.UUID) -> Lead | None:
        return await self.get_one(self.select().where(Lead.id == lead_id).options(selectinload(Lead.history)))

    async def list(self, f: LeadFilters, *, sort: LeadSort, limit: int, offset: int,
                   cursor: str | None = None) -> tuple[list[Lead], Total]:
        # `q` apart: searched as every list's (`search_page`).
        return await self.search_page(apply_filters(select(Lead), replace(f, q=None)), SEARCHED, f.q, limit=limit,
                                      offset=offset, order_by=[SORT[sort]], cursor=cursor, keyset=True)

    async def add_if_new_contact(self, values: dict[str, Any]) -> Lead | None:
        """Insert unless a lead with this `contact_key` exists (then None): one lead per contact."""
        stmt = (insert(Lead).values(**values).on_conflict_do_nothing(index_elements=[Lead.contact_key])
                .returning(Lead))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add_stage_change(self, change: StageChange) -> None:
        self.session.add(change)
        await self.flush()
