from common.db.migrations import run_migrations
from webhook_dispatcher.models import Base

run_migrations(Base.metadata)
