"""`(key, id)` indexes for each sort of the ticket list (keyset pages: a cursor is a range of one). Revision 0003.

They replace the `(key)` / `(priority_rank, created_at)` ones (same leading columns); `-priority` pages read
`ix_tickets_urgent_created_id` (`-priority_rank` ascending)."""
import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = depends_on = None
URGENT = sa.text("(-priority_rank)")  # `-priority` ascending: one direction, one row comparison


def upgrade() -> None:
    op.create_index("ix_tickets_priority_created_id", "tickets", ["priority_rank", "created_at", "id"])
    op.create_index("ix_tickets_urgent_created_id", "tickets", [URGENT, "created_at", "id"])
    op.create_index("ix_tickets_created_id", "tickets", ["created_at", "id"])
    op.create_index("ix_tickets_updated_id", "tickets", ["updated_at", "id"])
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_tickets_updated_at", table_name="tickets")
    op.drop_index("ix_tickets_priority_rank_created", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_priority_rank_created", "tickets", ["priority_rank", "created_at"])
    op.create_index("ix_tickets_updated_at", "tickets", ["updated_at"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.drop_index("ix_tickets_urgent_created_id", table_name="tickets")
    op.drop_index("ix_tickets_priority_created_id", table_name="tickets")
    op.drop_index("ix_tickets_updated_id", table_name="tickets")
    op.drop_index("ix_tickets_created_id", table_name="tickets")
