"""The outbox path against real PostgreSQL and the real broker: commit → Kafka, rollback → nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import orjson
import pytest
from aiokafka.partitioner import murmur2 as kafkas_murmur2
from sqlalchemy import Column, String, Table, event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase

from common.config import ServiceSettings
from common.db import commit_each_statement, new_metadata
from common.events import Envelope, build_event
from common.messaging import Outbox, OutboxRelay, inbox_table, outbox_table
from common.messaging.kafka import make_producer
from common.messaging.relay import RELAY_SESSION, murmur2
from common.testing.events import collect_events


class Base(DeclarativeBase):
    metadata = new_metadata()


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
THINGS = Table("things", Base.metadata, Column("name", String(50), primary_key=True))


@pytest.fixture(scope="module")
async def database(module_scratch_database):
    return await module_scratch_database(Base.metadata, pool_size=10)


@contextlib.asynccontextmanager
async def running_relay(database, bootstrap, source):
    settings = ServiceSettings(service_name=source, kafka_bootstrap_servers=bootstrap)
    producer = make_producer(settings)
    await producer.start()
    # The polling fallback is far off: a row that arrives within a test's wait was woken for.
    relay = OutboxRelay(database, producer, Outbox(OUTBOX, source), bootstrap=bootstrap, poll_interval=60.0)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()


def tenant_event(tenant_id: uuid.UUID, name: str = "Empresa") -> Envelope:
    return build_event("tenant.created", {"tenantId": tenant_id, "name": name, "plan": "Pro", "status": "ACTIVE"},
                       tenant_id=tenant_id)


async def test_committed_rows_reach_kafka_in_order_per_key_and_are_marked(database, kafka_bootstrap):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    tenant_id = uuid.uuid4()
    notified: list[str] = []
    async with collect_events(kafka_bootstrap, [outbox.topic]) as seen, \
            running_relay(database, kafka_bootstrap, source) as relay, database.engine.connect() as listening:
        raw = (await listening.get_raw_connection()).driver_connection
        await raw.add_listener(outbox.channel, lambda *args: notified.append(args[2]))
        async with asyncio.timeout(10):
            while not relay.is_leader:
                await asyncio.sleep(0.05)
        sent = []
        for i in range(20):
            async with database.sessionmaker() as session:
                sent.append(await outbox.add(session, tenant_event(tenant_id, f"n{i}"), key=str(tenant_id)))
                await session.commit()
        # The relay polls every 60 s: arriving sooner means each commit woke it, and the relay of the
        # committing process is woken directly, without a NOTIFY.
        await seen.wait_for(lambda e: e.id == sent[-1].id, timeout=10)
        assert notified == []
        # Rows are marked once their sends are acknowledged, just after consumers may see them.
        async with asyncio.timeout(10):
            while await unpublished_rows(database, outbox.topic):
                await asyncio.sleep(0.05)
        received = [e.id for e in seen.matching(lambda e: e.tenant_id == tenant_id)]
        assert received[: len(sent)] == [e.id for e in sent]
        headers = seen.headers_of(sent[0].id)
        assert headers["event"] == "tenant.created"
        assert "traceparent" in headers
    assert await unpublished_rows(database, outbox.topic) == 0


async def unpublished_rows(database, topic: str) -> int:
    async with database.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(OUTBOX).where(
            OUTBOX.c.topic == topic, OUTBOX.c.published_at.is_(None)))


async def test_a_change_sent_along_with_its_event_is_one_statement_all_or_nothing(database, kafka_bootstrap):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    name = uuid.uuid4().hex
    first, second = tenant_event(uuid.uuid4()), tenant_event(uuid.uuid4())
    async with collect_events(kafka_bootstrap, [outbox.topic]) as seen:
        async with running_relay(database, kafka_bootstrap, source):
            async with database.sessionmaker() as session:
                await commit_each_statement(session)  # no transaction around it: the statement is atomic
                await outbox.add(session, first, key="k", along=insert(THINGS).values(name=name))
                await session.commit()
            async with database.sessionmaker() as session:
                await commit_each_statement(session)
                with pytest.raises(IntegrityError):  # the change fails: its event is not written either
                    await outbox.add(session, second, key="k", along=insert(THINGS).values(name=name))
            await seen.wait_for(lambda e: e.id == first.id)
            await asyncio.sleep(0.3)  # room for the second (wrong) one
        assert not seen.matching(lambda e: e.id == second.id)
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(THINGS).where(THINGS.c.name == name)) == 1
        assert await session.scalar(select(func.count()).select_from(OUTBOX).where(
            OUTBOX.c.event_id.in_([first.id, second.id]))) == 1


async def test_add_many_is_one_statement_in_list_order_compiled_once_for_any_count(database):
    outbox = Outbox(OUTBOX, f"relaytest{uuid.uuid4().hex[:6]}")
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO outbox" in statement:
            statements.append((statement, context.cache_hit))

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        batches = [[tenant_event(uuid.uuid4(), f"n{i}") for i in range(count)] for count in (3, 5)]
        async with database.sessionmaker() as session, session.begin():
            for batch in batches:
                await outbox.add_many(session, [(e, "k") for e in batch])
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    # One multi-row INSERT per call (not one per row), and the second call (another row count) was not compiled
    # again: a multi-row VALUES compiled at every call was a tenth of conversations' worker CPU.
    assert len(statements) == 2
    assert statements[1][1] == statements[1][1].CACHE_HIT
    async with database.sessionmaker() as session:
        written = (await session.execute(select(OUTBOX.c.event_id).where(OUTBOX.c.topic == outbox.topic)
                                         .order_by(OUTBOX.c.seq))).scalars().all()
    assert written == [e.id for batch in batches for e in batch]


async def test_a_session_committing_each_statement_leaves_the_pool_transactional(scratch_database):
    db = await scratch_database(Base.metadata)
    async with db.sessionmaker() as session:
        await commit_each_statement(session)
        await session.execute(insert(THINGS).values(name="kept"))
        await session.rollback()  # too late: the statement committed by itself
    async with db.sessionmaker() as session:  # the same pooled connection, back in transactions
        await session.execute(insert(THINGS).values(name="undone"))
        await session.rollback()
    async with db.sessionmaker() as session:
        assert list((await session.execute(select(THINGS.c.name))).scalars()) == ["kept"]


async def test_rolled_back_change_publishes_nothing(database, kafka_bootstrap):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    ghost, real = tenant_event(uuid.uuid4()), tenant_event(uuid.uuid4())
    async with collect_events(kafka_bootstrap, [outbox.topic]) as seen:
        async with running_relay(database, kafka_bootstrap, source):
            async with database.sessionmaker() as session:
                await outbox.add(session, ghost, key="k")
                await session.rollback()
            async with database.sessionmaker() as session:
                await outbox.add(session, real, key="k")
                await session.commit()
            await seen.wait_for(lambda e: e.id == real.id)
        assert not seen.matching(lambda e: e.id == ghost.id)


async def test_rows_written_while_no_relay_runs_are_published_when_it_starts(database, kafka_bootstrap):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    event = tenant_event(uuid.uuid4())
    async with database.sessionmaker() as session:
        await outbox.add(session, event, key="k")
        await session.commit()
    async with collect_events(kafka_bootstrap, [outbox.topic]) as seen:
        async with running_relay(database, kafka_bootstrap, source):
            await seen.wait_for(lambda e: e.id == event.id)


async def test_only_one_relay_is_active_per_service(database, kafka_bootstrap):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    async with running_relay(database, kafka_bootstrap, source) as first, \
            running_relay(database, kafka_bootstrap, source) as second:
        for _ in range(100):
            if first.is_leader or second.is_leader:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert [first.is_leader, second.is_leader].count(True) == 1


async def test_the_relays_relaxed_commits_never_reach_the_services_own_transactions(kafka_bootstrap,
                                                                                     scratch_database):
    # The relay's connection commits its marks without waiting for the WAL flush; a connection with that
    # setting must never serve a service's transaction afterwards.
    db = await scratch_database(Base.metadata)
    async with running_relay(db, kafka_bootstrap, f"relaytest{uuid.uuid4().hex[:6]}") as relay:
        for _ in range(100):
            if relay.is_leader:
                break
            await asyncio.sleep(0.05)
        assert relay.is_leader
    for _ in range(3):  # whatever connection the pool hands out now
        async with db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar() == "on"


async def test_consumer_applies_each_event_once_even_when_delivered_twice(database, kafka_bootstrap,
                                                                          recording_consumer):
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    settings = ServiceSettings(service_name="t", kafka_bootstrap_servers=kafka_bootstrap)
    consumer, applied = recording_consumer(settings, database, INBOX, outbox.topic)
    event, marker = tenant_event(uuid.uuid4()), tenant_event(uuid.uuid4())
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            await consumer.assigned.wait()
        # The same event twice in the outbox (a relay crash between produce and mark does this).
        for _ in range(2):
            async with database.sessionmaker() as session:
                await session.execute(OUTBOX.insert().values(
                    event_id=uuid.uuid4(), event_type=event.event, topic=outbox.topic, aggregate_id="k",
                    payload=event.to_kafka(), headers={}))
                await session.commit()
        async with database.sessionmaker() as session:  # sent after them (same key): applied after them
            await outbox.add(session, marker, key="k")
            await session.commit()
        async with running_relay(database, kafka_bootstrap, source):
            async with asyncio.timeout(20):
                while marker.id not in applied:
                    await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert applied == [event.id, marker.id]


async def test_a_commit_notifies_the_relays_of_other_processes_after_it_is_visible(database):
    # No relay leads in this process: the commit is announced with NOTIFY, on its own connection (never
    # inside the writing transaction, where it would serialise every commit on the notify lock).
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    outbox = Outbox(OUTBOX, source)
    heard: asyncio.Queue[int] = asyncio.Queue()
    async with database.engine.connect() as listening:
        raw = (await listening.get_raw_connection()).driver_connection

        async def unpublished(*_):
            heard.put_nowait(await unpublished_rows(database, outbox.topic))

        await raw.add_listener(outbox.channel, lambda *args: asyncio.ensure_future(unpublished()))
        async with database.sessionmaker() as session:
            await outbox.add(session, tenant_event(uuid.uuid4()), key="k")
            await session.rollback()
        async with database.sessionmaker() as session:
            await outbox.add(session, tenant_event(uuid.uuid4()), key="k")
            await asyncio.sleep(0.3)
            assert heard.empty()  # nothing before the commit (nor for the rolled-back row)
            await session.commit()
        async with asyncio.timeout(5):
            assert await heard.get() == 1  # the row is visible when the notification arrives
        async with database.sessionmaker() as session:  # the next commit: announced again (a kept connection)
            await outbox.add(session, tenant_event(uuid.uuid4()), key="k")
            await session.commit()
        async with asyncio.timeout(5):
            assert await heard.get() == 2


def test_the_relay_places_each_key_in_the_partition_kafkas_own_partitioner_gives_it():
    # Same partition as the Java client and aiokafka's default partitioner: per-key order holds across a deploy
    # that changes the hashing code, and beside any other producer of the topic.
    keys = [str(uuid.uuid4()).encode() for _ in range(200)] + [bytes(range(n)) for n in range(12)] + ["ção".encode()]
    assert [murmur2(k) for k in keys] == [kafkas_murmur2(k) for k in keys]


async def test_a_relay_pass_reads_what_is_unpublished_not_every_row_marked_since_the_last_vacuum(kafka_bootstrap,
                                                                                                  scratch_database):
    """A mark leaves the row's old entry in the unpublished index until a vacuum; at ~1,200 creates/s a pass read
    as a bitmap visited the heap page of each of them (0.4 ms growing to 3.3 ms within 8 s)."""
    db = await scratch_database(Base.metadata)
    source = f"relaytest{uuid.uuid4().hex[:6]}"
    topic = Outbox(OUTBOX, source).topic
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        # The entries stay, as between vacuums; the statistics are a new table's (the planner expects a pass to find a
        # few rows, and would read those few as a bitmap).
        await raw.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        await raw.execute("INSERT INTO outbox (event_id, event_type, topic, aggregate_id, payload) "
                          "SELECT gen_random_uuid(), 'tenant.created', $1, 'k' || n, "
                          "jsonb_build_object('name', repeat('x', 300), 'n', n) FROM generate_series(1, 3000) AS n", topic)
        async with running_relay(db, kafka_bootstrap, source) as relay:
            async with asyncio.timeout(30):
                while await raw.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                    await asyncio.sleep(0.1)
            select, batch = relay._select, relay.batch_size
    async with db.engine.connect() as conn:  # a connection set up as the relay's
        raw = (await conn.get_raw_connection()).driver_connection
        for setting in RELAY_SESSION:
            await raw.execute(setting)
        for _ in range(2):  # the first read flags the entries it meets dead; a relay reads every second at most
            plan = await raw.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {select}", batch)
            plan = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]  # per the pool's json codec
        await conn.invalidate()
    assert plan["Plan"]["Actual Rows"] == 0
    assert plan["Plan"]["Shared Hit Blocks"] + plan["Plan"].get("Shared Read Blocks", 0) < 40, plan
