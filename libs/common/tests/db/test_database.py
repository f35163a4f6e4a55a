"""The service database handle against real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, Float, MetaData, String, Table, bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError

from common.db.engine import PoolTimeout, Prepared
from common.outage import is_outage


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



async def test_a_prepared_statement_commits_by_itself_and_fails_as_sqlalchemy_would(scratch_database):
    metadata = MetaData()
    things = Table("things", metadata, Column("name", String(20), primary_key=True), Column("doc", JSON))
    db = await scratch_database(metadata)
    add = Prepared(insert(things).values(name=bindparam("name"), doc=bindparam("doc", type_=JSON)))

    await db.run(add, {"name": "a", "doc": {"k": [1, 2]}})  # the JSON bind processor applies
    with pytest.raises(IntegrityError, match="duplicate key"):  # a 409 through the same handlers as a session's
        await db.run(add, {"name": "a", "doc": {}})
    with pytest.raises(DBAPIError, match="too long"):
        await db.run(add, {"name": "x" * 21, "doc": {}})
    with pytest.raises(ValueError, match="expected parameters"):  # a value nobody binds is an error, not dropped
        await db.run(add, {"name": "b", "doc": {}, "extra": 1})
    async with db.engine.connect() as conn:  # committed without a transaction of the caller's
        rows = (await conn.execute(select(things.c.name, things.c.doc))).all()
    assert rows == [("a", {"k": [1, 2]})]


async def test_a_prepared_statement_cancelled_mid_way_leaves_no_busy_connection_in_the_pool(scratch_database):
    db = await scratch_database()
    nap = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))
    task = asyncio.ensure_future(db.run(nap, {"seconds": 60}))
    async with db.autocommit.connect() as watcher:  # wait until PostgreSQL runs it
        for _ in range(1000):
            if (await watcher.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                              "AND query LIKE 'SELECT pg_sleep%'")).scalar():
                break
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):  # the pool hands out working connections only
        await db.run(nap, {"seconds": 0})


async def test_json_parameters_store_the_document_given_and_refuse_what_they_refused_before(scratch_database):
    metadata = MetaData()
    docs = Table("docs", metadata, Column("name", String(20), primary_key=True), Column("doc", JSONB))
    db = await scratch_database(metadata)
    add = Prepared(insert(docs).values(name=bindparam("name"), doc=bindparam("doc", type_=JSONB)))
    stored = {"plain": {"k": [1, 2.5, True], "s": "ção \u2028 \"q\""}, "null": {"a": None}, "int keys": {1: "x"},
              "big": {"n": 2**70}}
    for name, doc in stored.items():
        await db.run(add, {"name": name, "doc": doc})
    async with db.engine.connect() as conn:
        rows = dict((await conn.execute(select(docs.c.name, docs.c.doc))).all())
    assert rows == {"plain": stored["plain"], "null": {"a": None}, "int keys": {"1": "x"}, "big": {"n": 2**70}}
    # Never stored as something else: NaN is refused by PostgreSQL (not written as null), a datetime by the encoder.
    with pytest.raises(DBAPIError, match="(?i)json"):
        await db.run(add, {"name": "nan", "doc": {"x": float("nan")}})
    with pytest.raises(TypeError, match="not JSON serializable"):
        await db.run(add, {"name": "when", "doc": {"at": datetime.now(UTC)}})


async def test_prepared_statements_keep_at_most_half_the_pool_so_sessions_still_get_connections(scratch_database):
    # `run` keeps the connections it used (a checkout costs CPU), but fewer than `pool_size` of the pool's
    # 2 x `pool_size`: after a burst of statements, sessions (and a relay's connection) are not left waiting.
    db = await scratch_database(pool_size=2)
    nap = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))
    await asyncio.gather(*(db.run(nap, {"seconds": 0.05}) for _ in range(12)))

    async def session_query() -> int:
        async with db.sessionmaker() as session:
            value = (await session.execute(text("SELECT 1 FROM pg_sleep(0.2)"))).scalar_one()
            return int(value)

    async with db.engine.connect():  # e.g. a relay's
        assert await asyncio.wait_for(asyncio.gather(*(session_query() for _ in range(2))), 10) == [1, 1]


async def test_a_burst_of_prepared_statements_holds_fewer_than_pool_size_connections_while_it_runs(scratch_database):
    # 12 at once on `run`'s pool_size - 1 = 2 connections: they queue for those two, and sessions are served
    # from the rest of the pool meanwhile (before, the burst took every pooled connection and sessions waited).
    db = await scratch_database(pool_size=3)
    nap = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))
    burst = asyncio.gather(*(db.run(nap, {"seconds": 0.1}) for _ in range(12)))  # >= 0.6 s on two connections
    most = 0
    async with db.sessionmaker() as session:
        while not burst.done():
            sleeping = (await session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%' "
                "AND pid <> pg_backend_pid() AND datname = current_database()"))).scalar_one()
            most = max(most, sleeping)
            await session.commit()
            await asyncio.sleep(0.02)
    await burst
    assert most == 2


async def test_a_statement_waiting_longer_than_the_pool_timeout_for_a_connection_is_an_outage(scratch_database,
                                                                                                 monkeypatch):
    monkeypatch.setattr("common.db.engine.POOL_TIMEOUT", 0.3)
    db = await scratch_database(pool_size=2)  # `run` holds one connection at most
    nap = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))
    busy = asyncio.ensure_future(db.run(nap, {"seconds": 3}))
    await asyncio.sleep(0.1)
    with pytest.raises(PoolTimeout) as waited:
        await db.run(nap, {"seconds": 0})
    assert is_outage(waited.value)  # a 503 with Retry-After for its caller, as when the pool has none free
    await busy
    assert await db.run(nap, {"seconds": 0}) == "SELECT 1"  # the connection came back, and serves again


async def test_calls_waiting_for_a_connection_are_served_in_order_and_one_cancelled_gives_up_its_turn(
        scratch_database):
    metadata = MetaData()
    served = Table("served", metadata, Column("name", String(20)), Column("at", Float))
    db = await scratch_database(metadata, pool_size=2)  # `run` holds one connection at most
    write = Prepared(text("INSERT INTO served (name, at) SELECT :name, extract(epoch FROM clock_timestamp()) "
                          "FROM pg_sleep(0.05)").bindparams(bindparam("name", type_=String)))
    first = asyncio.ensure_future(db.run(write, {"name": "first"}))
    await asyncio.sleep(0.01)
    waiting = {name: asyncio.ensure_future(db.run(write, {"name": name})) for name in ("a", "b", "c", "d")}
    await asyncio.sleep(0.01)
    waiting["b"].cancel()
    await asyncio.gather(first, *(task for name, task in waiting.items() if name != "b"))
    async with db.engine.connect() as conn:
        order = [name for (name,) in (await conn.execute(select(served.c.name).order_by(served.c.at))).all()]
    assert order == ["first", "a", "c", "d"]
    assert await db.run(write, {"name": "after"}) == "INSERT 0 1"  # nothing was lost to the cancelled call


async def test_when_the_server_ends_the_connections_one_statement_fails_not_one_per_kept_connection(
        scratch_database, postgres):
    db = await scratch_database(pool_size=3)
    nap = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))
    await asyncio.gather(*(db.run(nap, {"seconds": 0.05}) for _ in range(3)))  # two kept now (pool_size - 1)
    admin = await postgres.connect()
    try:
        ended = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                     "WHERE datname = $1", db.engine.url.database)
    finally:
        await admin.close()
    assert ended >= 2
    with pytest.raises(Exception) as failed:
        await db.run(nap, {"seconds": 0})
    assert is_outage(failed.value)  # a 503 for its caller, as from a session
    for _ in range(3):  # the other kept connections were dropped with it: fresh ones work
        await db.run(nap, {"seconds": 0})


async def test_a_statement_with_no_plan_to_choose_is_planned_once_and_the_pool_keeps_planning_each_time(
        scratch_database):
    metadata = MetaData()
    seen = Table("seen", metadata, Column("name", String(20)), Column("mode", String(40)))
    db = await scratch_database(metadata, pool_size=2)
    # What plan_cache_mode each statement ran under, written by the statement itself.
    write = insert(seen).from_select(["name", "mode"], select(bindparam("name", type_=String),
                                                              func.current_setting(text("'plan_cache_mode'"))))
    generic, custom = Prepared(write, generic_plan=True), Prepared(write)
    await asyncio.gather(*(db.run(generic, {"name": "generic"}) for _ in range(4)))  # more than are kept
    await asyncio.gather(*(db.run(custom, {"name": "custom"}) for _ in range(4)))  # the same connection, set back
    async with db.engine.connect() as conn:
        rows = set((await conn.execute(select(seen.c.name, seen.c.mode))).all())
        # the pool's other connections plan each time
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    assert rows == {("generic", "auto"), ("custom", "force_custom_plan")}
