"""The endpoint list's filters indexed: one `status` with the order (`(kind, status, created_at, id)`), `eventType`
(GIN over `events`, `?|`) and `q` (trigram indexes on url and description, pg_trgm); endpoints not deleted. Revision
0006."""
import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = depends_on = None
LIVE = sa.text("status <> 'DELETED'")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # trusted: the database's owner may create it
    op.create_index("ix_webhook_endpoints_live_status_created_id", "webhook_endpoints",
                    ["kind", "status", "created_at", "id"], postgresql_where=LIVE)
    op.create_index("ix_webhook_endpoints_live_events", "webhook_endpoints", ["events"], postgresql_using="gin",
                    postgresql_where=LIVE)
    for column in ("url", "description"):
        # A 64 kB pending list (as tenants' name index): cheaper writes; a search reads at most those 64 kB through.
        op.create_index(f"ix_webhook_endpoints_live_{column}_trgm", "webhook_endpoints", [column],
                        postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"},
                        postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"}, postgresql_where=LIVE)


def downgrade() -> None:
    for column in ("url", "description"):
        op.drop_index(f"ix_webhook_endpoints_live_{column}_trgm", table_name="webhook_endpoints")
    op.drop_index("ix_webhook_endpoints_live_events", table_name="webhook_endpoints")
    op.drop_index("ix_webhook_endpoints_live_status_created_id", table_name="webhook_endpoints")
