"""plans are owned here: price in minor units with its interval, and one plan.created per existing plan

Billing keeps a copy of every plan from the `plan.*` events; the plans that exist before this revision
(the seeded FREE / PRO / ENTERPRISE and any added by hand) reach it through the outbox rows written here,
published once by the relay like any other event.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

# The envelope as the outbox relay publishes it (common.events.Envelope.to_kafka), built in SQL so this
# revision does not change when the catalogue's code does.
_PUBLISH_EXISTING = sa.text("""
WITH p AS (SELECT plans.*, gen_random_uuid() AS event_id FROM plans)
INSERT INTO outbox (event_id, event_type, topic, aggregate_id, payload, headers)
SELECT p.event_id, 'plan.created', 'platform.tenants.events', p.id::text,
       jsonb_build_object(
           'id', p.event_id::text, 'event', 'plan.created',
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'tenantId', NULL, 'source', 'tenants', 'version', 1,
           'data', jsonb_build_object('planId', p.id::text, 'code', p.code, 'name', p.name, 'amount', p.amount,
                                      'currency', p.currency, 'interval', p.interval, 'active', p.active,
                                      'limits', p.limits)),
       '{}'::jsonb
FROM p ORDER BY p.sort_order, p.code
""")


def upgrade() -> None:
    op.add_column('plans', sa.Column('amount', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('plans', sa.Column('interval', sa.String(length=10), nullable=False, server_default='month'))
    op.execute("UPDATE plans SET amount = round(monthly_price * 100)::bigint")
    op.alter_column('plans', 'amount', server_default=None)
    op.alter_column('plans', 'interval', server_default=None)
    op.drop_column('plans', 'monthly_price')
    op.execute(_PUBLISH_EXISTING)


def downgrade() -> None:
    op.add_column('plans', sa.Column('monthly_price', sa.Numeric(precision=12, scale=2), nullable=False,
                                     server_default='0'))
    op.execute("UPDATE plans SET monthly_price = amount / 100.0")
    op.alter_column('plans', 'monthly_price', server_default=None)
    op.drop_column('plans', 'interval')
    op.drop_column('plans', 'amount')
