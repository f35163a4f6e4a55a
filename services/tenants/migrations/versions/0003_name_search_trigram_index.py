"""name search index: `q` (`name ILIKE '%q%'`) read from a trigram index, not a scan of every name

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL and is a trusted extension (the database's owner may create it).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index('ix_tenants_live_name_trgm', 'tenants', ['name'], postgresql_using='gin',
                    postgresql_ops={'name': 'gin_trgm_ops'}, postgresql_where=sa.text("status <> 'DELETED'"))


def downgrade() -> None:
    op.drop_index('ix_tenants_live_name_trgm', table_name='tenants')
    # The extension stays: other objects may have come to use it.
