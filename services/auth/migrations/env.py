from auth.models import Base
from common.db.migrations import run_migrations

run_migrations(Base.metadata)
