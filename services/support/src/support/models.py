"""Table models of the support service (Alembic's target metadata)."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Computed, DateTime, Index, SmallInteger, String, Text, text
from sqlmodel import Field

from common.db.base import TableModel, new_registry
from common.messaging import inbox_table, outbox_table

PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
RANKS = {priority: rank for rank, priority in enumerate(PRIORITIES, 1)}  # `priority_rank` of each (its CASE below)
STATUSES = ("OPEN", "IN_PROGRESS", "WAITING", "RESOLVED", "CLOSED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(TableModel, registry=new_registry()):
    pass


# The ticket list's sorts (TicketRepository's _SORT) as index keys, each made afresh for the index it leads.
_SORT_KEYS = {"created": lambda: ("created_at",), "updated": lambda: ("updated_at",),
              "priority_created": lambda: ("priority_rank", "created_at"),
              "urgent_created": lambda: (text("(-priority_rank)"), "created_at")}


class Ticket(Base, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        # `(keys, id)` for each sort of the list, alone and after each equality filter (a tenant's own list, the
        # hottest path; one status; one assignee): a page, filtered or not, by offset from the start or by cursor
        # at any depth, is a range of one of them (ids break ties; `-priority` is by `-priority_rank`, ascending
        # like its dates). One priority is a range of the priority sorts' indexes (`(rank, created_at, id)`, and
        # `(rank, updated_at, id)`); more than one value of a filter, or two filters, narrow such a range.
        *(Index(f"ix_tickets_{name}_id", *keys(), "id") for name, keys in _SORT_KEYS.items()),
        *(Index(f"ix_tickets_{prefix}_{name}_id", column, *keys(), "id", **where)
          for prefix, column, where in (("tenant", "tenant_id", {}), ("status", "status", {}),
                                        ("assignee", "assignee_id", {"postgresql_where": text("assignee_id IS NOT NULL")}))
          for name, keys in _SORT_KEYS.items()),
        Index("ix_tickets_priority_updated_id", "priority_rank", "updated_at", "id"),
        # `q` is a case-insensitive substring search (ILIKE '%…%'): trigram indexes serve it.
        Index("ix_tickets_subject_trgm", "subject", postgresql_using="gin",
              postgresql_ops={"subject": "gin_trgm_ops"}),
        Index("ix_tickets_description_trgm", "description", postgresql_using="gin",
              postgresql_ops={"description": "gin_trgm_ops"}),
    )

    tenant_id: uuid.UUID
    subject: str = Field(sa_type=String(200))
    description: str = Field(sa_type=Text)
    priority: str = Field(sa_type=String(10))
    # Severity order for `sort=priority` (the names do not sort alphabetically); computed by PostgreSQL,
    # never set by code (None until the row is read back).
    priority_rank: int | None = Field(default=None, sa_column=Column(
        SmallInteger,
        Computed("CASE priority WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3 "
                 "WHEN 'CRITICAL' THEN 4 END", persisted=True),
        nullable=False,
    ))
    status: str = Field(sa_type=String(20))
    assignee_id: uuid.UUID | None = None
    created_by: uuid.UUID
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class TicketMessage(Base, table=True):
    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_ticket_created", "ticket_id", "created_at"),)

    ticket_id: uuid.UUID = Field(foreign_key="tickets.id", ondelete="CASCADE")
    author_id: uuid.UUID
    author_role: str = Field(sa_type=String(30))
    body: str = Field(sa_type=Text)
    # Internal notes: written and read by the platform owner only.
    internal: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
