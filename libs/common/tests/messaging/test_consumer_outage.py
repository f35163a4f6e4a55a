"""An outage is no event's fault: while PostgreSQL is down a consumer holds its events and applies every one
once it is back -- nothing dead-lettered -- while an event its handler fails on by itself (poison) is still
dead-lettered after `max_attempts`, without holding up the others."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import Column, Table, select, text
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import Uuid

from common.config import ServiceSettings
from common.db import Database, new_metadata
from common.events import build_event
from common.messaging import EventConsumer, inbox_table
from common.observability.metrics import CONSUMER_ERRORS
from common.outage import is_outage
from common.supervise import supervise


class Base(DeclarativeBase):
    metadata = new_metadata()


INBOX = inbox_table(Base.metadata)
APPLIED = Table("applied", Base.metadata, Column("event_id", Uuid, primary_key=True))


def tenant_created():
    tenant = uuid.uuid4()
    return build_event("tenant.created", {"tenantId": tenant, "name": "E", "plan": "Pro", "status": "ACTIVE"},
                       tenant_id=tenant, source="outage")


async def produce(bootstrap, topic, envelopes):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(topic, orjson.dumps(envelope.to_kafka()), key=str(envelope.id).encode())
    finally:
        await producer.stop()


async def wait_until(predicate, timeout=60.0):
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def consuming(database, bootstrap, topic, *, poison=frozenset()):
    settings = ServiceSettings(service_name="outage", kafka_bootstrap_servers=bootstrap, kafka_fetch_max_wait_ms=20,
                               kafka_session_timeout_ms=3000)

    async def handler(session, events):
        for event in events:
            if event.id in poison:
                raise ValueError(f"no way to apply {event.id}")
            await session.execute(APPLIED.insert().values(event_id=event.id))

    consumer = EventConsumer(settings, database, INBOX, name=f"outage-{uuid.uuid4().hex[:6]}", topics=[topic],
                             handler=handler, max_attempts=3)
    task = asyncio.create_task(supervise("consumer", consumer.run, first_delay=0.2, max_delay=1.0))
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def applied_and_dead(database, consumer_name):
    async with database.engine.connect() as conn:
        applied = set((await conn.execute(select(APPLIED.c.event_id))).scalars())
        dead = set((await conn.execute(select(INBOX.c.event_id).where(
            INBOX.c.consumer == consumer_name, INBOX.c.error.is_not(None)))).scalars())
    return applied, dead


async def test_postgres_down_holds_events_and_dead_letters_none(own_postgres, kafka_bootstrap):
    await own_postgres.create_databases(["outage"])
    database = Database(own_postgres.async_url("outage"), pool_size=2)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    topic = f"test.outage.{uuid.uuid4().hex[:8]}"
    before = [tenant_created() for _ in range(5)]
    during = [tenant_created() for _ in range(20)]
    try:
        async with consuming(database, kafka_bootstrap, topic) as consumer:
            await produce(kafka_bootstrap, topic, before)
            await wait_until(lambda: _applied_count(database, len(before)))

            await asyncio.to_thread(own_postgres.stop)
            outages = CONSUMER_ERRORS.labels(consumer.name, "outage")
            seen = outages._value.get()
            await produce(kafka_bootstrap, topic, during)

            # Far more failed tries than would have dead-lettered an event (max_attempts=3).
            async def held() -> bool:
                return outages._value.get() >= seen + 3 * consumer.max_attempts

            await wait_until(held)
            await own_postgres.restart()
            await wait_until(lambda: _applied_count(database, len(before) + len(during)))
            applied, dead = await applied_and_dead(database, consumer.name)
        assert applied == {e.id for e in before + during}
        assert dead == set()
        assert CONSUMER_ERRORS.labels(consumer.name, "handler")._value.get() == 0
    finally:
        await database.dispose()


async def test_a_poison_event_is_dead_lettered_and_the_others_applied(scratch_database, kafka_bootstrap):
    database = await scratch_database(Base.metadata)
    topic = f"test.poison.{uuid.uuid4().hex[:8]}"
    events = [tenant_created() for _ in range(6)]
    poison = events[2].id
    async with consuming(database, kafka_bootstrap, topic, poison={poison}) as consumer:
        await produce(kafka_bootstrap, topic, events)

        async def settled() -> bool:
            applied, dead = await applied_and_dead(database, consumer.name)
            return len(applied) == 5 and dead == {poison}

        await wait_until(settled)
    applied, dead = await applied_and_dead(database, consumer.name)
    assert applied == {e.id for e in events} - {poison}
    assert dead == {poison}
    assert CONSUMER_ERRORS.labels(consumer.name, "handler")._value.get() >= consumer.max_attempts


async def _applied_count(database, at_least) -> bool:
    async with database.engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM applied"))).scalar_one() >= at_least


def test_outages_are_told_from_event_failures():
    import asyncpg
    from sqlalchemy import exc as sa_exc

    wrapped = sa_exc.DBAPIError("SELECT 1", {}, asyncpg.ConnectionDoesNotExistError("closed"))
    assert is_outage(wrapped)
    assert is_outage(sa_exc.TimeoutError("QueuePool limit reached"))
    assert is_outage(ConnectionRefusedError(111, "refused"))
    assert is_outage(asyncpg.CannotConnectNowError("the database system is starting up"))
    # A pooled connection left mid-statement by a server that died under it (test_api_through_a_postgres_crash).
    assert is_outage(asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"))
    assert not is_outage(ValueError("bad payload"))
    assert not is_outage(sa_exc.IntegrityError("INSERT", {}, asyncpg.UniqueViolationError("duplicate")))
