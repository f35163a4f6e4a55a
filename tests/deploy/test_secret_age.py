"""`secret_oldest_age_seconds` (SecretRotationOverdue): the time a secret was set is read, in SQL, from its
stored Fernet token, and survives a re-encryption under a new SECRETS_ENCRYPTION_KEYS key."""

from __future__ import annotations

import time
import uuid

from cryptography.fernet import Fernet, MultiFernet
from prometheus_client import REGISTRY
from sqlalchemy import Boolean, Column, Integer, MetaData, Table, Text, false, insert, literal, select

from common.db import Database
from common.observability.secret_age import KeptSecret, fernet_set_at, refresh_secret_ages

DAY = 86400


def age(name: str) -> float | None:
    return REGISTRY.get_sample_value("secret_oldest_age_seconds", {"secret": name})


async def test_ages_come_from_the_tokens_and_survive_a_key_rotation(postgres):
    name = f"t_secret_age_{uuid.uuid4().hex[:8]}"
    await postgres.create_databases([name])
    database = Database(postgres.async_url(name))
    kept = Table("kept", MetaData(), Column("id", Integer, primary_key=True), Column("token", Text),
                 Column("retired", Boolean, nullable=False))
    old_key, new_key = Fernet(Fernet.generate_key()), Fernet(Fernet.generate_key())
    now = int(time.time())
    made_100_days_ago = old_key.encrypt_at_time(b"whsec_old", now - 100 * DAY)
    # The platform moved to a new encryption key since: the token is re-encrypted, its time is kept.
    rotated = MultiFernet([new_key, old_key]).rotate(made_100_days_ago)
    assert new_key.decrypt(rotated) == b"whsec_old"
    rows = [{"token": rotated.decode(), "retired": True},
            {"token": new_key.encrypt_at_time(b"sk_live", now - 10 * DAY).decode(), "retired": False},
            {"token": new_key.encrypt_at_time(b"sk_live_2", now - 2 * DAY).decode(), "retired": False},
            {"token": None, "retired": False}]
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(kept.metadata.create_all)
            await conn.execute(insert(kept), rows)
            assert (await conn.execute(select(fernet_set_at(literal(rotated.decode()))))).scalar() == now - 100 * DAY
        await refresh_secret_ages(database, [
            KeptSecret("test_oldest", kept.c.token),
            KeptSecret("test_in_use", kept.c.token, (kept.c.retired.is_(False),), newest=True),
            KeptSecret("test_none", kept.c.token, (false(),)),
        ])
        assert 100 * DAY <= age("test_oldest") < 100 * DAY + 60
        assert 2 * DAY <= age("test_in_use") < 2 * DAY + 60
        assert age("test_none") is None
        # Once the old row is gone, the series follows; once none is kept, it disappears.
        async with database.engine.begin() as conn:
            await conn.execute(kept.delete().where(kept.c.retired))
        await refresh_secret_ages(database, [KeptSecret("test_oldest", kept.c.token)])
        assert 10 * DAY <= age("test_oldest") < 10 * DAY + 60
        async with database.engine.begin() as conn:
            await conn.execute(kept.delete())
        await refresh_secret_ages(database, [KeptSecret("test_oldest", kept.c.token)])
        assert age("test_oldest") is None
    finally:
        await database.dispose()
        await postgres.drop_databases([name])
