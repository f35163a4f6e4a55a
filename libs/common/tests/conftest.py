"""Fixtures shared by the common library's tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import MetaData

from common.db import Database

DatabaseFactory = Callable[..., Awaitable[Database]]


@contextlib.asynccontextmanager
async def scratch_databases(postgres: Any) -> AsyncIterator[DatabaseFactory]:
    """`make(metadata, pool_size=1)`: a `Database` on an empty database of its own, `metadata`'s tables
    created; each disposed when the block ends. `pool_size=1` (the default) keeps its pool small, so every
    use gets the same connection back; a test running a relay or consumer beside its sessions wants more."""
    made: list[Database] = []

    async def make(metadata: MetaData | None = None, *, pool_size: int = 1, **options: Any) -> Database:
        name = f"t_common_{uuid.uuid4().hex[:8]}"
        await postgres.create_databases([name])
        db = Database(postgres.async_url(name), pool_size=pool_size, **options)
        made.append(db)
        if metadata is not None:
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        return db

    try:
        yield make
    finally:
        for db in made:
            await db.dispose()


@pytest.fixture
async def scratch_database(postgres: Any) -> AsyncIterator[DatabaseFactory]:
    """Factory of scratch databases (see `scratch_databases`) for one test."""
    async with scratch_databases(postgres) as make:
        yield make


@pytest.fixture(scope="module")
async def module_scratch_database(postgres: Any) -> AsyncIterator[DatabaseFactory]:
    """Factory of scratch databases (see `scratch_databases`) shared by the tests of one module."""
    async with scratch_databases(postgres) as make:
        yield make
