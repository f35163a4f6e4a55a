from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from common.api import InputSchema, Schema
from common.validation import omitted_not_null
from support.text import LongText, Subject


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class TicketStatus(StrEnum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING = "WAITING"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class TicketCreate(InputSchema):
    tenant_id: uuid.UUID | None = Field(
        default=None, description="Required for the platform owner; tenant users may leave it out (their own "
                                  "tenant is used) and may not name another tenant")
    subject: Subject
    description: LongText
    priority: Priority = Priority.MEDIUM
    assignee_id: uuid.UUID | None = Field(default=None, description="User id of the assignee (platform owner only)")


class TicketUpdate(InputSchema):
    """Partial update: fields left out are kept; `assigneeId: null` unassigns.

    Tenant users may change `subject` and `description`, close the ticket, and reopen a RESOLVED one;
    values equal to the current ones are not changes (a full PUT of what GET returned is accepted).
    """

    subject: Subject | None = None
    description: LongText | None = None
    priority: Priority | None = None
    status: TicketStatus | None = None
    assignee_id: uuid.UUID | None = None

    _not_null = omitted_not_null("subject", "description", "priority", "status")


class TicketRead(Schema):
    id: uuid.UUID
    tenant_id: uuid.UUID
    subject: str
    description: str
    priority: Priority
    status: TicketStatus
    assignee_id: uuid.UUID | None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TicketSort(StrEnum):
    created = "createdAt"
    created_desc = "-createdAt"
    updated = "updatedAt"
    updated_desc = "-updatedAt"
    priority = "priority"
    priority_desc = "-priority"
