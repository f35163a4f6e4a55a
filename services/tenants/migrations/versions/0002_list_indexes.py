"""list indexes: a page of tenants in any order the list offers is read from an index

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("status <> 'DELETED'")


def upgrade() -> None:
    op.create_index('ix_tenants_live_created', 'tenants', ['created_at', 'id'], postgresql_where=_LIVE)
    op.create_index('ix_tenants_live_plan_created', 'tenants', ['plan_id', 'created_at', 'id'],
                    postgresql_where=_LIVE)
    op.drop_index('ix_tenants_status_created', table_name='tenants')
    op.create_index('ix_tenants_status_created', 'tenants', ['status', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_tenants_status_created', table_name='tenants')
    op.create_index('ix_tenants_status_created', 'tenants', ['status', 'created_at'])
    op.drop_index('ix_tenants_live_plan_created', table_name='tenants')
    op.drop_index('ix_tenants_live_created', table_name='tenants')
