"""All SQL of tickets (STYLE habit 2). `tenant_id` narrows every read to one tenant when given."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, select

from common.api import Total
from common.db.repository import Repository
from support.models import RANKS, Ticket
from support.ticket.schemas import TicketSort

_SORT: dict[TicketSort, tuple[ColumnElement[object], ...]] = {
    TicketSort.created: (Ticket.created_at.asc(),),
    TicketSort.created_desc: (Ticket.created_at.desc(),),
    TicketSort.updated: (Ticket.updated_at.asc(),),
    TicketSort.updated_desc: (Ticket.updated_at.desc(),),
    # Same priority: the oldest first (it has waited longest).
    TicketSort.priority: (Ticket.priority_rank.asc(), Ticket.created_at.asc()),
    # The most urgent first, as an ascending key: one direction, so a cursor is one row comparison (an index range).
    TicketSort.priority_desc: ((-Ticket.priority_rank).asc(), Ticket.created_at.asc()),
}


class TicketRepository(Repository[Ticket]):
    model = Ticket

    async def visible(self, ticket_id: uuid.UUID, *, tenant_id: uuid.UUID | None,
                      for_update: bool = False) -> Ticket | None:
        """The ticket, if it belongs to `tenant_id` (None: any tenant's)."""
        stmt = select(Ticket).where(Ticket.id == ticket_id)
        if tenant_id is not None:
            stmt = stmt.where(Ticket.tenant_id == tenant_id)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def list(self, *, tenant_id: uuid.UUID | None, statuses: Sequence[str], priorities: Sequence[str],
                   assignee_id: uuid.UUID | None, q: str | None, sort: TicketSort, limit: int,
                   offset: int, cursor: str | None = None) -> tuple[list[Ticket], Total]:
        stmt: Select[tuple[Ticket]] = select(Ticket)
        if tenant_id is not None:
            stmt = stmt.where(Ticket.tenant_id == tenant_id)
        if statuses:
            stmt = stmt.where(Ticket.status.in_(statuses))
        order = _SORT[sort]
        if priorities:
            ranks = sorted({RANKS[p] for p in priorities})
            stmt = stmt.where(Ticket.priority_rank.in_(ranks))
            if len(ranks) == 1 and sort in (TicketSort.priority, TicketSort.priority_desc):
                # One priority: every row has the same rank, the order is by creation (oldest first) alone, and the
                # page a range of an index `(…, priority_rank, created_at, id)` (the planner does not see that
                # `-priority_rank` is constant too). A cursor of this list is then of its own.
                order = order[1:]
        if assignee_id is not None:
            stmt = stmt.where(Ticket.assignee_id == assignee_id)
        return await self.search_page(stmt, [Ticket.subject, Ticket.description], q,  # ix_tickets_*_trgm
                                      limit=limit, offset=offset, order_by=order, cursor=cursor, keyset=True)
