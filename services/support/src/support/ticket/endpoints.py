from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from common.api import KeysetPage, KeysetPageParamsDep
from common.db import SessionDep
from common.db.repository import SEARCH_RULE
from common.errors import problem_responses
from support.auth import SupportCaller
from support.text import NO_NUL
from support.ticket import service
from support.ticket.schemas import Priority, TicketCreate, TicketRead, TicketSort, TicketStatus, TicketUpdate

router = APIRouter(prefix="/api/platform/support/tickets", tags=["tickets"])

SORT_HELP = ("`createdAt`, `updatedAt`: oldest first (`-createdAt`, `-updatedAt`: newest first); `-priority`: the most "
             "urgent first, `priority`: the least urgent first, in both the oldest first within a priority (it has "
             "waited longest). Tickets equal on every key come by id, as in every list: descending where the last key "
             "is (`-createdAt`, `-updatedAt`), else ascending")


@router.get("", response_model=KeysetPage[TicketRead], responses=problem_responses(401, 403, 422))
async def list_tickets(
    session: SessionDep, caller: SupportCaller, page: KeysetPageParamsDep,
    tenantId: uuid.UUID | None = None,
    status: Annotated[list[TicketStatus], Query(max_length=5, description="One or more statuses")] = [],  # noqa: B006
    priority: Annotated[list[Priority], Query(max_length=4, description="One or more priorities")] = [],  # noqa: B006
    assigneeId: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                   description=f"Search in subject and description, {SEARCH_RULE}")] = None,
    sort: Annotated[TicketSort, Query(description=SORT_HELP)] = TicketSort.created_desc,
) -> KeysetPage[TicketRead]:
    """Tickets, newest first. Tenant users see only their own tenant's tickets (a `tenantId` of another
    tenant gives an empty page). Page by `offset`, or by `cursor` (each page's `nextCursor`)."""
    return await service.list_tickets(session, caller, tenant_id=tenantId, statuses=status, priorities=priority,
                                      assignee_id=assigneeId, q=(q or "").strip() or None, sort=sort, page=page)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TicketRead,
             responses=problem_responses(401, 403, 422))
async def create_ticket(session: SessionDep, caller: SupportCaller, body: TicketCreate) -> TicketRead:
    """Open a ticket (status OPEN); emits `ticket.created`. The owner names the tenant (`tenantId`); a
    tenant user's ticket belongs to its own tenant."""
    return await service.create(session, caller, body)


@router.get("/{ticket_id}", response_model=TicketRead, responses=problem_responses(401, 403, 404, 422))
async def get_ticket(session: SessionDep, caller: SupportCaller, ticket_id: uuid.UUID) -> TicketRead:
    return await service.get(session, caller, ticket_id)


@router.put("/{ticket_id}", response_model=TicketRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_ticket(session: SessionDep, caller: SupportCaller, ticket_id: uuid.UUID,
                        body: TicketUpdate) -> TicketRead:
    """Change subject, description, priority, status or assignee; emits `ticket.updated` with the changed
    fields, or `ticket.closed` when the ticket becomes CLOSED; nothing when nothing changes.
    An invalid status transition is a 409."""
    return await service.update(session, caller, ticket_id, body)
