from common.db.migrations import run_migrations
from auth.models import Base

run_migrations(Base.metadata)
