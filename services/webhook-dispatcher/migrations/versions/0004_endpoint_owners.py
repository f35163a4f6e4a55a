"""Endpoint ownership: one replica at a time delivers to an endpoint (its limits hold across replicas);
endpoints remember when they were paused (what a resume offers to recover starts there)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_endpoint_owners',
    sa.Column('endpoint_id', sa.Uuid(), nullable=False),
    sa.Column('owner', sa.Uuid(), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'],
                            name=op.f('fk_webhook_endpoint_owners_endpoint_id_webhook_endpoints'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('endpoint_id', name=op.f('pk_webhook_endpoint_owners'))
    )
    op.add_column('webhook_endpoints', sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('webhook_endpoints', 'paused_at')
    op.drop_table('webhook_endpoint_owners')
