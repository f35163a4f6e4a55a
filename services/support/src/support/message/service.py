"""Messages and internal notes on a ticket; each adds exactly one `ticket.message.added` event.

- Anyone who can see the ticket (the owner; its tenant's users) may add a message; only the platform
  owner may add an internal note (`internal: true`) — a tenant user asking for one gets a 403.
- Internal notes are never shown to tenant users: `GET .../messages` filters them out in SQL (its
  `total` does not count them). Adding any message leaves the ticket row as it is (no `updatedAt`
  change), so a note does not even show up as activity on the ticket.
- A CLOSED ticket takes no messages or notes (409): it must be reopened first.
- The event carries the ticket's priority and status (filterable from the payload alone) and
  `internal`. The only event subscribers today are the platform owner's webhooks; any delivery of
  support events to tenant-scoped subscribers must drop `internal: true` events.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from common.auth import Principal
from common.db import utcnow
from common.errors import Conflict, Forbidden
from support.events import outbox
from support.message.repository import MessageRepository
from support.message.schemas import MessageCreate, MessageRead
from support.models import TicketMessage
from support.ticket.schemas import TicketStatus
from support.ticket.service import visible_ticket


async def add(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID,
              payload: MessageCreate) -> MessageRead:
    # Locked like every write to a ticket, so its events are published in commit order.
    ticket = await visible_ticket(session, principal, ticket_id, for_update=True)
    if payload.internal and not principal.is_owner:
        raise Forbidden("Only the platform owner writes internal notes")
    if ticket.status == TicketStatus.CLOSED:
        raise Conflict("The ticket is CLOSED; reopen it before adding messages")
    now = utcnow()
    message = TicketMessage(id=uuid.uuid4(), ticket_id=ticket.id, author_id=principal.id,
                            author_role=principal.role.value, body=payload.body, internal=payload.internal,
                            created_at=now, updated_at=now)
    await MessageRepository(session).add(message)
    data = {"ticketId": ticket.id, "tenantId": ticket.tenant_id, "messageId": message.id,
            "authorId": message.author_id, "authorRole": message.author_role, "body": message.body,
            "internal": message.internal, "priority": ticket.priority, "status": ticket.status}
    await outbox.publish(session, "ticket.message.added", data, key=ticket.id, tenant_id=ticket.tenant_id)
    return MessageRead.model_validate(message)


async def list_messages(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID,
                        page: PageParams) -> Page[MessageRead]:
    ticket = await visible_ticket(session, principal, ticket_id)
    items, total = await MessageRepository(session).list(ticket.id, include_internal=principal.is_owner,
                                                         limit=page.limit, offset=page.offset)
    return Page[MessageRead].of(items, total, page)
