"""The request's transaction, with one addition to `common.db.SessionDep`: a rejection may keep its changes.

A failed login must stay recorded and a replayed refresh token must leave its family revoked, although
the caller gets a 401. Such errors subclass `KeepChanges`; the session commits before they propagate.
The dependency closes with the endpoint (scope="function"), so the commit happens before the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import ProblemError, Unauthorized


class KeepChanges(ProblemError):
    """Marker: commit the request's changes, then answer this problem."""


class RejectedCredentials(KeepChanges, Unauthorized):
    pass


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.database.sessionmaker() as session:
        try:
            yield session
        except KeepChanges:
            await session.commit()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
