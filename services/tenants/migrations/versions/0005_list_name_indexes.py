"""list by name within a status or a plan from an index (keyset pages: a cursor is a range of it). Revision 0005.

Every list order and filter of `GET /api/platform/tenants` now has an index `(filter, key, id)`: a page, by
offset from the start or by cursor at any depth, reads O(page size) index entries."""
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = depends_on = None
LIVE = sa.text("status <> 'DELETED'")


def upgrade() -> None:
    # Statuses other than ACTIVE only: an ACTIVE page by name walks uq_tenants_live_name (most rows are
    # active), and a create (ACTIVE) does not write this index.
    op.create_index("ix_tenants_status_name", "tenants", ["status", sa.text("lower(name)"), "id"],
                    postgresql_where=sa.text("status <> 'ACTIVE'"))
    op.create_index("ix_tenants_live_plan_name", "tenants", ["plan_id", sa.text("lower(name)"), "id"],
                    postgresql_where=LIVE)


def downgrade() -> None:
    op.drop_index("ix_tenants_live_plan_name", table_name="tenants")
    op.drop_index("ix_tenants_status_name", table_name="tenants")
