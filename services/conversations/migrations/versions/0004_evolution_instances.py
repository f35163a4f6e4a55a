"""evolution instances: an instance made by a channel create that then failed is adopted by the next try

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 05:30:00
"""
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "evolution_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        *(sa.Column(name, sa.DateTime(timezone=True), server_default=now, nullable=False)
          for name in ("created_at", "updated_at")),
        sa.Column("api_url", sa.String(length=500), nullable=False),
        sa.Column("instance_name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evolution_instances"),
    )
    op.create_index("uq_evolution_instances_instance", "evolution_instances", ["api_url", "instance_name"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_evolution_instances_instance", table_name="evolution_instances")
    op.drop_table("evolution_instances")
