"""n8n: settings, flows, and the kind/trusted columns of endpoints (flows are backed by N8N_FLOW endpoints)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:11:10.243751
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('n8n_settings',
    sa.Column('singleton', sa.Boolean(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('api_key_encrypted', sa.Text(), nullable=False),
    sa.Column('api_key_hint', sa.String(length=20), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_n8n_settings')),
    sa.UniqueConstraint('singleton', name=op.f('uq_n8n_settings_singleton'))
    )
    op.create_table('n8n_flows',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=50), nullable=True),
    sa.Column('description', sa.String(length=1000), nullable=True),
    sa.Column('trigger_events', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('template', sa.String(length=50), nullable=True),
    sa.Column('workflow_id', sa.String(length=100), nullable=False),
    sa.Column('webhook_path', sa.String(length=1000), nullable=True),
    sa.Column('webhook_node', sa.String(length=200), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('endpoint_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_n8n_flows_endpoint_id_webhook_endpoints'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_n8n_flows')),
    sa.UniqueConstraint('endpoint_id', name=op.f('uq_n8n_flows_endpoint_id')),
    sa.UniqueConstraint('workflow_id', name=op.f('uq_n8n_flows_workflow_id'))
    )
    op.add_column('webhook_endpoints', sa.Column('kind', sa.String(length=20), server_default='WEBHOOK', nullable=False))
    op.add_column('webhook_endpoints', sa.Column('trusted', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_check_constraint(op.f('ck_webhook_endpoints_trusted_only_n8n'), 'webhook_endpoints',
                               "NOT trusted OR kind = 'N8N_FLOW'")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_webhook_endpoints_trusted_only_n8n'), 'webhook_endpoints', type_='check')
    op.drop_column('webhook_endpoints', 'trusted')
    op.drop_column('webhook_endpoints', 'kind')
    op.drop_table('n8n_flows')
    op.drop_table('n8n_settings')
