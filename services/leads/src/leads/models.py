"""ORM models of the leads service (Alembic's target metadata)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


class Stage(Base):
    """A pipeline stage. Stages are data (seeded by migration 0002), ordered by `position`.

    `is_final`: no transition leaves it. `is_won`: where convert puts a lead (exactly one such stage).
    `is_lost`: a lost lead (counted as lost in metrics, cannot be converted). Won or lost implies final.
    """

    __tablename__ = "lead_stages"
    __table_args__ = (
        CheckConstraint("NOT (is_won AND is_lost)", name="won_xor_lost"),
        CheckConstraint("is_final OR NOT (is_won OR is_lost)", name="closed_is_final"),
        Index("uq_lead_stages_won", "is_won", unique=True, postgresql_where=text("is_won")),
    )

    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    is_lost: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    is_final: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint("value >= 0", name="value_not_negative"),
        Index("ix_leads_stage_created", "stage", "created_at"),
        Index("ix_leads_created_at", "created_at"),
        Index("ix_leads_source", "source"),
    )

    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    company: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(50))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"), server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default=text("'USD'"))
    stage: Mapped[str] = mapped_column(ForeignKey("lead_stages.code", onupdate="RESTRICT", ondelete="RESTRICT"))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    own_operation: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The tenant this lead became (set on convert, when known).
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # Leads created from a conversation: the conversation, and a unique key per contact (idempotency).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    contact_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)


class StageChange(Base):
    """Stage history of a lead: one row per move (`from_stage` is null for the initial stage)."""

    __tablename__ = "lead_stage_history"
    __table_args__ = (Index("ix_lead_stage_history_lead_created", "lead_id", "created_at"),)

    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(50), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(50))
    changed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
