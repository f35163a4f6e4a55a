"""One table base per service (own MetaData, so services never share tables), one naming convention.

Table models are SQLModel models (the package the design names). A service declares its base once:

    class Base(TableModel, registry=new_registry()):
        pass

    class Tenant(Base, table=True):
        __tablename__ = "tenants"
        name: str = Field(sa_type=String(200))

and every `table=True` model inherits `id`, `created_at` and `updated_at`. Relationships are declared
with `sa_relationship_kwargs={"lazy": "raise"}` so a hidden query fails in tests (STYLE habit 6).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def new_registry() -> registry:
    """A service's own SQLAlchemy registry (and MetaData): SQLModel's default one is process-wide, and
    tests import several services into one process."""
    return registry(metadata=new_metadata())


def utcnow() -> datetime:
    return datetime.now(UTC)


class TableModel(SQLModel):
    """`id` (uuid4), `created_at`, `updated_at` (both timezone-aware, set by Python and by the server)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False,  # type: ignore[call-overload]
        sa_column_kwargs={"server_default": func.now()},
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False,  # type: ignore[call-overload]
        sa_column_kwargs={"server_default": func.now(), "onupdate": utcnow},
    )

