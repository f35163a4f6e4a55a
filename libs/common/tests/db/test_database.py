"""The service database handle against real PostgreSQL."""

from __future__ import annotations


async def test_every_pooled_connection_plans_each_statement_for_the_table_as_it_is_now(scratch_database):
    # A generic plan cached while a table was nearly empty (PostgreSQL's `auto` after five executions of
    # a prepared statement) turned the dispatcher's claim from 7 ms into 7 s once a backlog had built up.
    db = await scratch_database()
    for connect in (db.engine.connect, db.autocommit.connect):
        async with connect() as conn:
            assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    # Opting out (a hot statement whose plan cannot degrade) gives PostgreSQL's default back.
    kept = await scratch_database(custom_plans=False)
    async with kept.engine.connect() as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "auto"
