from common.db.base import new_metadata, utcnow
from common.db.engine import Database
from common.db.session import SessionDep, commit_each_statement

__all__ = ["Database", "SessionDep", "commit_each_statement", "new_metadata", "utcnow"]
