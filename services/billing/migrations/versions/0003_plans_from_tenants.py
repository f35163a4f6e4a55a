"""plans come from tenants: billing's copy follows plan.created|updated (active flag, event time); the
hand-seeded FREE / PRO / ENTERPRISE rows that were never priced are dropped (tenants publishes its plans)
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column('billing_plans', sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.alter_column('billing_plans', 'active', server_default=None)
    op.add_column('billing_plans', sa.Column('terms_at', sa.DateTime(timezone=True), nullable=True))
    # Rows that hold a Stripe price stay: the plan events bring their terms (same code) on top of them.
    op.execute("DELETE FROM billing_plans WHERE stripe_price_id IS NULL AND id IN "
               "('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000b2', "
               "'00000000-0000-4000-8000-0000000000b3')")


def downgrade() -> None:
    op.drop_column('billing_plans', 'terms_at')
    op.drop_column('billing_plans', 'active')
