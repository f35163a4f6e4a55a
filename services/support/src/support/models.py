"""ORM models of the support service (Alembic's target metadata)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table

PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
STATUSES = ("OPEN", "IN_PROGRESS", "WAITING", "RESOLVED", "CLOSED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        # One index per list filter / sort; a tenant's own list is the hottest path.
        Index("ix_tickets_tenant_created", "tenant_id", "created_at"),
        Index("ix_tickets_status_created", "status", "created_at"),
        Index("ix_tickets_priority_rank_created", "priority_rank", "created_at"),
        Index("ix_tickets_assignee_created", "assignee_id", "created_at",
              postgresql_where=text("assignee_id IS NOT NULL")),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_updated_at", "updated_at"),
        # `q` is a case-insensitive substring search (ILIKE '%…%'): trigram indexes serve it.
        Index("ix_tickets_subject_trgm", "subject", postgresql_using="gin",
              postgresql_ops={"subject": "gin_trgm_ops"}),
        Index("ix_tickets_description_trgm", "description", postgresql_using="gin",
              postgresql_ops={"description": "gin_trgm_ops"}),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(10))
    # Severity order for `sort=priority` (the names do not sort alphabetically); never set by code.
    priority_rank: Mapped[int] = mapped_column(
        SmallInteger,
        Computed("CASE priority WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3 "
                 "WHEN 'CRITICAL' THEN 4 END", persisted=True),
    )
    status: Mapped[str] = mapped_column(String(20))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TicketMessage(Base):
    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_ticket_created", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    author_role: Mapped[str] = mapped_column(String(30))
    body: Mapped[str] = mapped_column(Text)
    # Internal notes: written and read by the platform owner only.
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
