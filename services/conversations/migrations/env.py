from common.db.migrations import run_migrations
from conversations.models import Base

run_migrations(Base.metadata)
