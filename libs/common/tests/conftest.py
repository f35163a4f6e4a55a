"""Fixtures shared by the common library's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import MetaData

from common.db import Database


@pytest.fixture
async def scratch_database(postgres: Any) -> AsyncIterator[Callable[..., Awaitable[Database]]]:
    """Factory: a `Database` on an empty database of its own, with a pool of one connection (so every
    use gets the same connection back), `metadata`'s tables created; disposed when the test ends."""
    made: list[Database] = []

    async def make(metadata: MetaData | None = None, **options: Any) -> Database:
        name = f"t_common_{uuid.uuid4().hex[:8]}"
        await postgres.create_databases([name])
        db = Database(postgres.async_url(name), pool_size=1, **options)
        made.append(db)
        if metadata is not None:
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        return db

    yield make
    for db in made:
        await db.dispose()
