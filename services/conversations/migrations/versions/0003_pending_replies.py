"""pending replies: an n8n agent's answer survives a crash between the inbound commit and the reply

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 08:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "pending_replies",
        sa.Column("id", sa.Uuid(), nullable=False),
        *(sa.Column(name, sa.DateTime(timezone=True), server_default=now, nullable=False)
          for name in ("created_at", "updated_at")),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("fallback_text", sa.Text(), nullable=True),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_replies"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE",
                                name="fk_pending_replies_agent_id_agents"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE",
                                name="fk_pending_replies_conversation_id_conversations"),
    )
    op.create_index('ix_pending_replies_lease_until', 'pending_replies', ['lease_until'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_pending_replies_lease_until', table_name='pending_replies')
    op.drop_table('pending_replies')
