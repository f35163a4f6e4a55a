"""Bulk recoveries: one row per recover request; deliveries point at the recovery that scheduled them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 23:55:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_recoveries',
    sa.Column('endpoint_id', sa.Uuid(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('event_types', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('statuses', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('rate_per_second', sa.Float(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('missed', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'],
                            name=op.f('fk_webhook_recoveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_recoveries'))
    )
    op.create_index('ix_webhook_recoveries_endpoint', 'webhook_recoveries', ['endpoint_id', 'created_at'])
    op.add_column('webhook_deliveries', sa.Column('recovery_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_webhook_deliveries_recovery_id_webhook_recoveries'), 'webhook_deliveries',
                          'webhook_recoveries', ['recovery_id'], ['id'], ondelete='SET NULL')
    op.create_index('ix_webhook_deliveries_recovery', 'webhook_deliveries', ['recovery_id'],
                    postgresql_where=sa.text('recovery_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_recovery', table_name='webhook_deliveries',
                  postgresql_where=sa.text('recovery_id IS NOT NULL'))
    op.drop_constraint(op.f('fk_webhook_deliveries_recovery_id_webhook_recoveries'), 'webhook_deliveries',
                       type_='foreignkey')
    op.drop_column('webhook_deliveries', 'recovery_id')
    op.drop_index('ix_webhook_recoveries_endpoint', table_name='webhook_recoveries')
    op.drop_table('webhook_recoveries')
