"""The ticket list's filters indexed with its sorts. Revision 0004.

`(tenant_id | status | assignee_id, keys, id)` for each sort (created, updated, priority, -priority): a filtered page
is a range of one (they replace the `(filter, created_at)` ones); `(priority_rank, updated_at, id)` for one priority
newest-updated first (the other sorts of one priority are ranges of the priority sorts' indexes)."""
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = depends_on = None

SORT_KEYS = {"created": ["created_at"], "updated": ["updated_at"], "priority_created": ["priority_rank", "created_at"],
             "urgent_created": [sa.text("(-priority_rank)"), "created_at"]}
FILTERS = {"tenant": ("tenant_id", None), "status": ("status", None),
           "assignee": ("assignee_id", sa.text("assignee_id IS NOT NULL"))}


def upgrade() -> None:
    for prefix, (column, where) in FILTERS.items():
        for name, keys in SORT_KEYS.items():
            op.create_index(f"ix_tickets_{prefix}_{name}_id", "tickets", [column, *keys, "id"], postgresql_where=where)
        op.drop_index(f"ix_tickets_{prefix}_created", table_name="tickets")
    op.create_index("ix_tickets_priority_updated_id", "tickets", ["priority_rank", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_priority_updated_id", table_name="tickets")
    for prefix, (column, where) in FILTERS.items():
        op.create_index(f"ix_tickets_{prefix}_created", "tickets", [column, "created_at"], postgresql_where=where)
        for name in SORT_KEYS:
            op.drop_index(f"ix_tickets_{prefix}_{name}_id", table_name="tickets")
