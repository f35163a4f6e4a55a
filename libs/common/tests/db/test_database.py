"""The service database handle against real PostgreSQL."""

from __future__ import annotations

import uuid

from common.db import Database


async def test_every_pooled_connection_plans_each_statement_for_the_table_as_it_is_now(postgres):
    # A generic plan cached while a table was nearly empty (PostgreSQL's `auto` after five executions of
    # a prepared statement) turned the dispatcher's claim from 7 ms into 7 s once a backlog had built up.
    name = f"t_common_{uuid.uuid4().hex[:8]}"
    await postgres.create_databases([name])
    db = Database(postgres.async_url(name), pool_size=1)
    try:
        for connect in (db.engine.connect, db.autocommit.connect):
            async with connect() as conn:
                assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    finally:
        await db.dispose()
    # Opting out (a hot statement whose plan cannot degrade) gives PostgreSQL's default back.
    kept = Database(postgres.async_url(name), pool_size=1, custom_plans=False)
    try:
        async with kept.engine.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "auto"
    finally:
        await kept.dispose()
