from common.db.migrations import run_migrations
from tenants.models import Base

run_migrations(Base.metadata)
