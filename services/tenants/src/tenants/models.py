"""Table models of the tenants service (Alembic's target metadata)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Relationship

from common.db.base import TableModel, new_registry
from common.messaging import inbox_table, outbox_table


class Base(TableModel, registry=new_registry()):
    pass


class Plan(Base, table=True):
    """What a tenant is billed for: tenants owns plans (API /api/platform/plans, events plan.*); billing keeps
    a copy of each with its Stripe price."""

    __tablename__ = "plans"

    code: str = Field(sa_type=String(50), unique=True)
    name: str = Field(sa_type=String(100), unique=True)
    amount: int = Field(default=0, sa_type=BigInteger)  # minor units (cents) per interval, as Stripe counts
    currency: str = Field(default="USD", sa_type=String(3))
    interval: str = Field(default="month", sa_type=String(10))  # day | week | month | year
    limits: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    sort_order: int = Field(default=0, sa_type=Integer)
    active: bool = True


class Tenant(Base, table=True):
    __tablename__ = "tenants"
    __table_args__ = (
        # Names are unique among tenants that are not deleted (a deleted name can be reused).
        Index("uq_tenants_live_name", func.lower(text("name")), unique=True,
              postgresql_where=text("status <> 'DELETED'")),
        # Every list order has an index that yields a page in order, so a page costs O(page size):
        # the default view (not deleted) by creation, one status by creation, one plan by creation.
        # Name order uses uq_tenants_live_name. `id` breaks ties in the list's direction (Repository), and
        # with the key makes a cursor's `(key, id) > (…)` an index range (a page by cursor costs the same at any depth).
        Index("ix_tenants_live_created", "created_at", "id", postgresql_where=text("status <> 'DELETED'")),
        Index("ix_tenants_status_created", "status", "created_at", "id"),
        Index("ix_tenants_live_plan_created", "plan_id", "created_at", "id",
              postgresql_where=text("status <> 'DELETED'")),
        # By name within one status or plan (migration 0005). Statuses other than ACTIVE only: an ACTIVE page
        # walks uq_tenants_live_name (nine rows in ten are active), and a create (ACTIVE) writes one index less.
        Index("ix_tenants_status_name", "status", func.lower(text("name")), "id",
              postgresql_where=text("status <> 'ACTIVE'")),
        Index("ix_tenants_live_plan_name", "plan_id", func.lower(text("name")), "id",
              postgresql_where=text("status <> 'DELETED'")),
        # `q` (`name ILIKE '%q%'`) of 3+ characters is looked up in trigrams instead of reading every name
        # (pg_trgm, migration 0004). New names wait in a pending list of 64 kB (migration 0006), merged into the
        # tree when it fills: a create does not insert each trigram into the tree (35 us of PostgreSQL CPU and 1 KB
        # of WAL less per create), and a search reads at most those 64 kB through (the default 4 MB list cost
        # 10 ms per page until a vacuum).
        Index("ix_tenants_live_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"},
              postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"},
              postgresql_where=text("status <> 'DELETED'")),
    )

    name: str = Field(sa_type=String(200))
    # A plan's id, checked by a trigger rather than a foreign key (migration 0007: the key locked the plan's row at
    # every create); a referenced plan cannot be deleted.
    plan_id: uuid.UUID
    status: str = Field(default="ACTIVE", sa_type=String(20))
    contact_email: str | None = Field(default=None, sa_type=String(320))
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    status_reason: str | None = Field(default=None, sa_type=String(500))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    plan: Plan = Relationship(sa_relationship_kwargs={"lazy": "raise", "primaryjoin": "Tenant.plan_id == Plan.id",
                                                      "foreign_keys": "[Tenant.plan_id]"})


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
