from common.db.migrations import run_migrations
from leads.models import Base

run_migrations(Base.metadata)
