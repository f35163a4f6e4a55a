"""Trigram index for the tenants list's `q` (name ILIKE '%q%'): no scan of every name. Revision 0004, after 0003 (plans owned)."""
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = depends_on = None
LIVE = sa.text("status <> 'DELETED'")


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL and is trusted (the database's owner may create it). fastupdate off: a
    # pending list of new names would be read through by every search until a vacuum.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_tenants_live_name_trgm", "tenants", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"},
                    postgresql_where=LIVE)


def downgrade() -> None:
    op.drop_index("ix_tenants_live_name_trgm", table_name="tenants")  # pg_trgm stays: others may use it
