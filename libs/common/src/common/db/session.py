"""The request owns the transaction: commit on success, roll back on any error (STYLE habit 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.engine import Database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


async def commit_each_statement(session: AsyncSession) -> None:
    """For a request whose only write is ONE statement: each statement of this session commits by itself,
    which spares the BEGIN and COMMIT round trips. Call it first, before anything touches the session
    (the setting applies when the session takes its connection); the pool resets it afterwards."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    session.info[COMMITS_EACH_STATEMENT] = True  # e.g. the outbox wakes its relay right after the write


COMMITS_EACH_STATEMENT = "commits_each_statement"  # Session.info key set by commit_each_statement


# scope="function": commit before the response is sent. With FastAPI's default (request scope) the client
# could see a 2xx before the commit, miss its own write on the next call, and never learn of a failed commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For an endpoint whose only write is one `Prepared` statement (`Database.run`): no session, no transaction to own.
DatabaseDep = Annotated[Database, Depends(get_database)]
