"""The lead list's filters indexed with its sorts, and its search. Revision 0004.

`(stage | source, key, id)` and, for own operations, `(key, id) WHERE own_operation` for each sort key: a filtered
page is a range of one (`ix_leads_stage_created_id` and `ix_leads_source_created_id` replace the `(stage,
created_at)` and `(source)` ones). Trigram indexes on name, email and company serve `q` (pg_trgm, as tenants)."""
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = depends_on = None

KEYS = {"created": "created_at", "updated": "updated_at", "name": sa.text("lower(name)"), "value": "value"}
SEARCHED = ("name", "email", "company")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # trusted: the database's owner may create it
    for name, key in KEYS.items():
        for column in ("stage", "source"):
            op.create_index(f"ix_leads_{column}_{name}_id", "leads", [column, key, "id"])
        op.create_index(f"ix_leads_own_{name}_id", "leads", [key, "id"],
                        postgresql_where=sa.text("own_operation"))
    for column in SEARCHED:
        # A 64 kB pending list (tenants 0006): cheaper writes; a search reads at most those 64 kB through.
        op.create_index(f"ix_leads_{column}_trgm", "leads", [column], postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"},
                        postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"})
    op.drop_index("ix_leads_stage_created", table_name="leads")
    op.drop_index("ix_leads_source", table_name="leads")


def downgrade() -> None:
    op.create_index("ix_leads_source", "leads", ["source"])
    op.create_index("ix_leads_stage_created", "leads", ["stage", "created_at"])
    for column in SEARCHED:
        op.drop_index(f"ix_leads_{column}_trgm", table_name="leads")  # pg_trgm stays: others may use it
    for name in KEYS:
        op.drop_index(f"ix_leads_own_{name}_id", table_name="leads")
        for column in ("stage", "source"):
            op.drop_index(f"ix_leads_{column}_{name}_id", table_name="leads")
