"""Inside auth, `plk_` bearer keys are checked straight against the database.

`common.auth.get_principal` asks `app.state.api_keys.principal(key)`, which in other services is an HTTP
call to the introspection endpoint. Auth replaces it at start with this one: the same answer (and the same
lastUsedAt bookkeeping), without calling itself over HTTP.
"""

from __future__ import annotations

from typing import Any

from auth.api_key import service
from auth.api_key.schemas import IntrospectActive
from auth.config import Settings
from common.auth.jwks import InvalidToken
from common.db import Database


class LocalApiKeyIntrospector:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    async def principal(self, key: str) -> dict[str, Any]:
        async with self.database.sessionmaker() as session, session.begin():
            result = await service.introspect(session, self.settings, key)
        if not isinstance(result, IntrospectActive):
            raise InvalidToken("unknown, revoked or expired API key")
        return result.principal.model_dump(mode="json")
