"""ORM models of the billing service (Alembic's target metadata)."""

from sqlalchemy.orm import DeclarativeBase

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
