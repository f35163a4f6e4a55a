"""ORM models of the support service (Alembic's target metadata)."""

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table
from sqlalchemy.orm import DeclarativeBase


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
