"""Seeding the platform owner at start: once, across replicas, never overwriting a chosen password."""

from __future__ import annotations

import asyncio
import logging
import re

from sqlalchemy import select

from auth.models import User
from auth.user import service
from auth.user.passwords import verify_password
from common.db import Database


async def _owners(database: Database, email: str) -> list[User]:
    async with database.sessionmaker() as session:
        return list((await session.execute(select(User).where(User.email == email))).scalars())


async def test_seed_generates_and_logs_a_password_once(migrated_database, caplog):
    database = Database(await migrated_database("auth", name="auth_seed_generated"))
    caplog.set_level(logging.INFO, logger="auth.user")
    try:
        async with database.sessionmaker() as session, session.begin():
            await service.seed_owner(session, "Boss@Example.com", None)
        async with database.sessionmaker() as session, session.begin():
            await service.seed_owner(session, "boss@example.com", None)
        owners = await _owners(database, "boss@example.com")
    finally:
        await database.dispose()
    logged = [r.getMessage() for r in caplog.records if "generated password" in r.getMessage()]
    assert len(logged) == 1
    password = re.search(r"generated password: (\S+)", logged[0]).group(1)
    assert len(owners) == 1 and owners[0].platform_role == "PLATFORM_OWNER" and owners[0].tenant_id is None
    assert await verify_password(owners[0].password_hash, password)


async def test_seed_keeps_an_existing_password(migrated_database):
    database = Database(await migrated_database("auth", name="auth_seed_existing"))
    try:
        async with database.sessionmaker() as session, session.begin():
            await service.seed_owner(session, "boss@example.com", "first-password")
        async with database.sessionmaker() as session, session.begin():
            await service.seed_owner(session, "boss@example.com", "second-password")
        [owner] = await _owners(database, "boss@example.com")
    finally:
        await database.dispose()
    assert await verify_password(owner.password_hash, "first-password")
    assert not await verify_password(owner.password_hash, "second-password")


async def test_replicas_seeding_together_create_one_owner(migrated_database):
    database = Database(await migrated_database("auth", name="auth_seed_race"))

    async def seed() -> None:
        async with database.sessionmaker() as session, session.begin():
            await service.seed_owner(session, "boss@example.com", "the-password")

    try:
        await asyncio.gather(*(seed() for _ in range(4)))
        assert len(await _owners(database, "boss@example.com")) == 1
    finally:
        await database.dispose()
