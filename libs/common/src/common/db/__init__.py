from common.db.base import ModelBase, new_metadata, utcnow
from common.db.engine import Database
from common.db.session import SessionDep

__all__ = ["Database", "ModelBase", "SessionDep", "new_metadata", "utcnow"]
