"""Table models of the leads service (Alembic's target metadata)."""

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    literal_column,
    text,
)
from sqlmodel import Field, Relationship

from common.db.base import TableModel, new_registry
from common.db.repository import SEARCH_SEPARATOR
from common.messaging import inbox_table, outbox_table


class Base(TableModel, registry=new_registry()):
    pass


class Stage(Base, table=True):
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

    code: str = Field(sa_type=String(50), unique=True)
    name: str = Field(sa_type=String(100))
    position: int = Field(sa_type=Integer)
    is_won: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    is_lost: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    is_final: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class StageChange(Base, table=True):
    """Stage history of a lead: one row per move (`from_stage` is null for the initial stage)."""

    __tablename__ = "lead_stage_history"
    __table_args__ = (Index("ix_lead_stage_history_lead_created", "lead_id", "created_at"),)

    lead_id: uuid.UUID = Field(foreign_key="leads.id", ondelete="CASCADE")
    from_stage: str | None = Field(default=None, sa_type=String(50))
    to_stage: str = Field(sa_type=String(50))
    changed_by: uuid.UUID | None = None
    note: str | None = Field(default=None, sa_type=String(1000))


# The lead list's sort keys (LeadRepository's SORT), each made afresh for the index it leads.
_SORT_KEYS = {"created": lambda: "created_at", "updated": lambda: "updated_at", "name": lambda: text("lower(name)"),
              "value": lambda: "value"}


class Lead(Base, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint("value >= 0", name="value_not_negative"),
        # `(key, id)` for each sort of the list, alone and after each equality filter (`stage`, `source`; own
        # operations as partial indexes): a page, filtered or not, by offset from the start or by cursor at any
        # depth, is a range of one of them (ids break ties on the key). Other filters narrow such a range.
        *(Index(f"ix_leads_{name}_id", key(), "id") for name, key in _SORT_KEYS.items()),
        *(Index(f"ix_leads_{column}_{name}_id", column, key(), "id")
          for column in ("stage", "source") for name, key in _SORT_KEYS.items()),
        *(Index(f"ix_leads_own_{name}_id", key(), "id", postgresql_where=text("own_operation"))
          for name, key in _SORT_KEYS.items()),
        # `q`: one trigram index over `search_text` (below), one index scan for a search of the three columns
        # (three indexes made it a BitmapOr of three); new entries through a 64 kB pending list as tenants' name
        # index (cheaper writes, a search reads at most those 64 kB through). The expression as PostgreSQL prints
        # it back (casts and parentheses), so that the migrations test compares it (Alembic's cleanup of a
        # reflected expression keeps its nesting); the same expression as `search_text`'s to the planner.
        Index("ix_leads_search_trgm", literal_column(
            "((((name::text || '\x1f'::text) || COALESCE(email, ''::character varying)::text) || '\x1f'::text) || "
            "COALESCE(company, ''::character varying)::text)").label("search"),
            postgresql_using="gin", postgresql_ops={"search": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"}),
    )

    name: str = Field(sa_type=String(200))
    email: str | None = Field(default=None, sa_type=String(320))
    phone: str | None = Field(default=None, sa_type=String(50))
    company: str | None = Field(default=None, sa_type=String(200))
    source: str = Field(sa_type=String(50))
    value: Decimal = Field(default=Decimal("0"), sa_type=Numeric(14, 2), sa_column_kwargs={"server_default": text("0")})
    currency: str = Field(default="USD", sa_type=String(3), sa_column_kwargs={"server_default": text("'USD'")})
    stage: str = Field(sa_type=String(50), sa_column_args=[
        ForeignKey("lead_stages.code", onupdate="RESTRICT", ondelete="RESTRICT")])
    assignee_id: uuid.UUID | None = None
    notes: str | None = Field(default=None, sa_type=Text)
    own_operation: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # The tenant this lead became (set on convert, when known).
    tenant_id: uuid.UUID | None = None
    converted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_by: uuid.UUID | None = None
    # Leads created from a conversation: the conversation, and a unique key per contact (idempotency).
    conversation_id: uuid.UUID | None = None
    contact_key: str | None = Field(default=None, sa_type=String(200), unique=True)

    # Loaded only where a lead is shown with its history (LeadRepository.get_with_history).
    history: list[StageChange] = Relationship(sa_relationship_kwargs={
        "lazy": "raise", "order_by": "(StageChange.created_at, StageChange.id)", "viewonly": True})


def search_text(name: ColumnElement[str], email: ColumnElement[str | None],
                company: ColumnElement[str | None]) -> ColumnElement[str]:
    """Name, email and company as one text, SEARCH_SEPARATOR between them: what `q` searches (migration 0005)."""
    separator = literal_column(f"E'\\x{ord(SEARCH_SEPARATOR):02x}'")
    return name + separator + func.coalesce(email, literal_column("''")) + separator + func.coalesce(
        company, literal_column("''"))


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
