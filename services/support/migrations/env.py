from common.db.migrations import run_migrations
from support.models import Base

run_migrations(Base.metadata)
