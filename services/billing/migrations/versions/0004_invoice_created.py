"""invoices keep Stripe's `created`: only the payment of the overdue invoice or of a newer one ends a
delinquency (rows seen before have none: for them the old rule holds, any payment ends it)
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column('billing_invoices', sa.Column('stripe_created', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column('billing_invoices', 'stripe_created')
