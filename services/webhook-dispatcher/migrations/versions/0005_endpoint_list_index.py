"""`(kind, created_at, id)` of the endpoints not deleted: the lists (newest first) by offset or cursor read a range
of it. Revision 0005."""
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_endpoints_live_created_id", "webhook_endpoints", ["kind", "created_at", "id"],
                    postgresql_where=sa.text("status <> 'DELETED'"))


def downgrade() -> None:
    op.drop_index("ix_webhook_endpoints_live_created_id", table_name="webhook_endpoints")
