"""Ticket rules: who may do what, the status machine, and exactly one `ticket.*` event per change.

Status transitions (anything else is a 409 problem; setting the current status again is no change):

    from \\ to    OPEN  IN_PROGRESS  WAITING  RESOLVED  CLOSED
    OPEN           ·        yes        yes       yes      yes
    IN_PROGRESS   yes        ·         yes       yes      yes
    WAITING       yes       yes         ·        yes      yes
    RESOLVED      yes*       -          -         ·       yes*
    CLOSED        yes**      -          -         -        ·

    *  also allowed to the ticket's tenant users ("it is not fixed" / "done, thanks")
    ** reopen by the platform owner only

- OPEN → IN_PROGRESS/WAITING/… and IN_PROGRESS/WAITING → OPEN move freely while work goes on; a
  RESOLVED ticket is either accepted (CLOSED) or reopened (OPEN) — it cannot silently go back to work.
- CLOSED is final for customers: a tenant that needs more help opens a new ticket. The platform owner
  may reopen it (CLOSED → OPEN), e.g. when it was closed by mistake. A closed ticket is read-only:
  any other change, and any new message or note, is a 409 until it is reopened (a PUT may reopen and
  change other fields at once).

Roles:
- PLATFORM_OWNER: everything; creates tickets for any tenant (`tenantId` required in the body).
- TENANT_ADMIN / TENANT_USER (same rights): open tickets for their own tenant (the token's tenant; a
  different `tenantId` in the body is a 403), see only their tenant's tickets, edit `subject` and
  `description`, close any of them from any status, reopen a RESOLVED one. Changing `priority`
  (chosen at creation, then triaged by support), `assigneeId`, or any other status is a 403 — on
  their own tickets only; another tenant's ticket answers 404 before any rule is checked.

Events (key = ticket id, envelope tenantId = the ticket's tenant), one per change, none for a PUT that
changes nothing:
- `ticket.created` on create;
- `ticket.closed` when a PUT makes the status CLOSED (instead of `ticket.updated`, never both); it also
  carries `changes`/`previous`, since the same PUT may change other fields too;
- `ticket.updated` for every other change, with `changes` (field names) and `previous` (old values);
- `ticket.message.added` (see support.message.service).
Ticket payloads are exactly the catalogue's TicketData (ticketId, tenantId, subject, priority, status,
assigneeId, createdBy), so a subscriber can filter on priority or status from the payload alone. The
description (customer free text, up to 10k characters) is not carried: a description change is listed
in `changes` without a `previous` value.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from pydantic.alias_generators import to_camel, to_snake
from sqlalchemy.ext.asyncio import AsyncSession

from common.api import KeysetPage, PageParams
from common.auth import Principal
from common.db import utcnow
from common.errors import Conflict, Forbidden, NotFound, Unprocessable
from support.auth import tenant_scope
from support.events import outbox
from support.models import Ticket
from support.ticket.repository import TicketRepository
from support.ticket.schemas import (
    Priority,
    TicketCreate,
    TicketRead,
    TicketSort,
    TicketStatus,
    TicketUpdate,
)

S = TicketStatus
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.WAITING, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.WAITING, S.RESOLVED, S.CLOSED}),
    S.WAITING: frozenset({S.OPEN, S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset({S.OPEN}),
}
# The subset a tenant user may perform on its own tickets.
CUSTOMER_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.OPEN: frozenset({S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.CLOSED}),
    S.WAITING: frozenset({S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}
CUSTOMER_EDITABLE = frozenset({"subject", "description", "status"})


def can_transition(current: TicketStatus, target: TicketStatus, *, owner: bool) -> bool | None:
    """True if allowed, False if the table allows it but not for this role, None if never allowed."""
    if target not in TRANSITIONS[current]:
        return None
    return owner or target in CUSTOMER_TRANSITIONS[current]


def event_data(t: Ticket) -> dict[str, Any]:
    """The ticket as events carry it: exactly the catalogue's TicketData (no description text)."""
    return {"ticketId": t.id, "tenantId": t.tenant_id, "subject": t.subject, "priority": t.priority,
            "status": t.status, "assigneeId": t.assignee_id, "createdBy": t.created_by}


async def visible_ticket(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, *,
                         for_update: bool = False) -> Ticket:
    """The ticket if the caller may see it; another tenant's ticket is as unknown as a missing one.

    `for_update` locks the row: every write to a ticket takes this lock first, so one ticket's outbox
    rows are numbered in commit order and its events are published in order.
    """
    ticket = await TicketRepository(session).visible(ticket_id, tenant_id=tenant_scope(principal),
                                                     for_update=for_update)
    if ticket is None:
        raise NotFound(f"Ticket {ticket_id} not found")
    return ticket


async def create(session: AsyncSession, principal: Principal, payload: TicketCreate) -> TicketRead:
    if principal.is_owner:
        if payload.tenant_id is None:
            raise Unprocessable("tenantId is required when the platform owner opens a ticket")
        tenant_id = payload.tenant_id
    else:
        assert principal.tenant_id is not None  # guaranteed by SupportCaller
        if payload.tenant_id is not None and payload.tenant_id != principal.tenant_id:
            raise Forbidden("Tenant users open tickets for their own tenant only")
        if payload.assignee_id is not None:
            raise Forbidden("Only the platform owner assigns tickets")
        tenant_id = principal.tenant_id
    now = utcnow()
    ticket = Ticket(id=uuid.uuid4(), tenant_id=tenant_id, subject=payload.subject, description=payload.description,
                    priority=payload.priority.value, status=TicketStatus.OPEN.value, assignee_id=payload.assignee_id,
                    created_by=principal.id, created_at=now, updated_at=now)
    await TicketRepository(session).add(ticket)
    await outbox.publish(session, "ticket.created", event_data(ticket), key=ticket.id, tenant_id=ticket.tenant_id)
    return TicketRead.model_validate(ticket)


async def get(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID) -> TicketRead:
    return TicketRead.model_validate(await visible_ticket(session, principal, ticket_id))


async def list_tickets(session: AsyncSession, principal: Principal, *, tenant_id: uuid.UUID | None,
                       statuses: list[TicketStatus], priorities: list[Priority], assignee_id: uuid.UUID | None,
                       q: str | None, sort: TicketSort, page: PageParams) -> KeysetPage[TicketRead]:
    scope = tenant_scope(principal)
    if scope is not None:
        if tenant_id is not None and tenant_id != scope:
            # Another tenant's tickets do not exist for a tenant user: an empty page, not a 403.
            return KeysetPage[TicketRead].of([], 0, page)
        tenant_id = scope
    items, total = await TicketRepository(session).list(
        tenant_id=tenant_id, statuses=[s.value for s in statuses], priorities=[p.value for p in priorities],
        assignee_id=assignee_id, q=q or None, sort=sort, limit=page.limit, offset=page.offset,
        cursor=page.cursor)
    return KeysetPage[TicketRead].of(items, total, page)


def _changes(ticket: Ticket, payload: TicketUpdate) -> dict[str, tuple[Any, Any]]:
    """{API field name: (previous, new)} for the fields the payload really changes."""
    changes = {}
    for name, value in payload.model_dump(exclude_unset=True).items():
        if isinstance(value, Enum):
            value = value.value
        current = getattr(ticket, name)
        if value != current:
            changes[to_camel(name)] = (current, value)
    return changes


async def update(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID,
                 payload: TicketUpdate) -> TicketRead:
    ticket = await visible_ticket(session, principal, ticket_id, for_update=True)
    changes = _changes(ticket, payload)
    if not changes:
        return TicketRead.model_validate(ticket)  # nothing changed: no event
    if not principal.is_owner:
        forbidden = sorted(set(changes) - CUSTOMER_EDITABLE)
        if forbidden:
            raise Forbidden(f"Tenant users may not change {', '.join(forbidden)}")
    current = TicketStatus(ticket.status)
    if "status" in changes:
        target = TicketStatus(changes["status"][1])
        allowed = can_transition(current, target, owner=principal.is_owner)
        if allowed is None:
            raise Conflict(f"A {current} ticket cannot become {target}; allowed: "
                           f"{', '.join(sorted(TRANSITIONS[current])) or 'none'}")
        if not allowed:
            raise Forbidden(f"Tenant users may not move a {current} ticket to {target}")
    elif current is TicketStatus.CLOSED:
        raise Conflict("The ticket is CLOSED and read-only; reopen it (status OPEN) first")

    now = utcnow()
    for name, (_, value) in changes.items():
        setattr(ticket, to_snake(name), value)
    if "status" in changes:
        ticket.closed_at = now if ticket.status == TicketStatus.CLOSED else None
    ticket.updated_at = now
    await TicketRepository(session).flush()

    # `changes` names every changed field; `previous` holds the old values of those the payload carries.
    previous = {name: old for name, (old, _) in changes.items() if name != "description"}
    data = event_data(ticket) | {"changes": sorted(changes), "previous": previous}
    name = "ticket.closed" if ticket.status == TicketStatus.CLOSED else "ticket.updated"
    await outbox.publish(session, name, data, key=ticket.id, tenant_id=ticket.tenant_id)
    return TicketRead.model_validate(ticket)
