"""All SQL of tickets (STYLE habit 2). `tenant_id` narrows every read to one tenant when given."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from support.models import Ticket
from support.ticket.schemas import TicketSort

_SORT: dict[TicketSort, tuple[ColumnElement[object], ...]] = {
    TicketSort.created: (Ticket.created_at.asc(),),
    TicketSort.created_desc: (Ticket.created_at.desc(),),
    TicketSort.updated: (Ticket.updated_at.asc(),),
    TicketSort.updated_desc: (Ticket.updated_at.desc(),),
    # Same priority: the oldest first (it has waited longest).
    TicketSort.priority: (Ticket.priority_rank.asc(), Ticket.created_at.asc()),
    TicketSort.priority_desc: (Ticket.priority_rank.desc(), Ticket.created_at.asc()),
}


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, ticket_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None,
                  for_update: bool = False) -> Ticket | None:
        stmt = select(Ticket).where(Ticket.id == ticket_id)
        if tenant_id is not None:
            stmt = stmt.where(Ticket.tenant_id == tenant_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, tenant_id: uuid.UUID | None, statuses: Sequence[str], priorities: Sequence[str],
                   assignee_id: uuid.UUID | None, q: str | None, sort: TicketSort, limit: int,
                   offset: int) -> tuple[list[Ticket], int]:
        stmt: Select[tuple[Ticket]] = select(Ticket)
        if tenant_id is not None:
            stmt = stmt.where(Ticket.tenant_id == tenant_id)
        if statuses:
            stmt = stmt.where(Ticket.status.in_(statuses))
        if priorities:
            stmt = stmt.where(Ticket.priority.in_(priorities))
        if assignee_id is not None:
            stmt = stmt.where(Ticket.assignee_id == assignee_id)
        if q:
            pattern = _like(q)
            stmt = stmt.where(or_(Ticket.subject.ilike(pattern, escape="\\"),
                                  Ticket.description.ilike(pattern, escape="\\")))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(stmt.order_by(*_SORT[sort], Ticket.id).limit(limit).offset(offset))
        return list(rows.scalars()), total

    async def add(self, ticket: Ticket) -> None:
        self.session.add(ticket)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()
