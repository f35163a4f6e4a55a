"""ORM models of the tenants service (Alembic's target metadata)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


class Plan(Base):
    __tablename__ = "plans"

    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    monthly_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        # Names are unique among tenants that are not deleted (a deleted name can be reused).
        Index("uq_tenants_live_name", func.lower(text("name")), unique=True,
              postgresql_where=text("status <> 'DELETED'")),
        Index("ix_tenants_status_created", "status", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(200))
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"))
    status: Mapped[str] = mapped_column(String(20), default="ACTIVE")
    contact_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    plan: Mapped[Plan] = relationship(lazy="raise")


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
