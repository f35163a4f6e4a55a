"""`(key, id)` indexes for each sort of the lead list (keyset pages: a cursor is a range of one). Revision 0003.

`ix_leads_created_id` replaces `ix_leads_created_at` (same leading column)."""
import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_created_id", "leads", ["created_at", "id"])
    op.create_index("ix_leads_updated_id", "leads", ["updated_at", "id"])
    op.create_index("ix_leads_name_id", "leads", [sa.text("lower(name)"), "id"])
    op.create_index("ix_leads_value_id", "leads", ["value", "id"])
    op.drop_index("ix_leads_created_at", table_name="leads")


def downgrade() -> None:
    op.create_index("ix_leads_created_at", "leads", ["created_at"])
    op.drop_index("ix_leads_value_id", table_name="leads")
    op.drop_index("ix_leads_name_id", table_name="leads")
    op.drop_index("ix_leads_updated_id", table_name="leads")
    op.drop_index("ix_leads_created_id", table_name="leads")
