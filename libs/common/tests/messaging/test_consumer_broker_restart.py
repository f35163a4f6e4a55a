"""A restarted embedded broker starts an empty log, which the relays fill again from their outboxes: a consumer
must read that new log from its start, not from the positions it had reached in the lost one."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.orm import DeclarativeBase

from common.config import ServiceSettings
from common.db import new_metadata
from common.events import build_event
from common.messaging import EventConsumer, inbox_table
from common.messaging.consumer import membership
from common.messaging.kafka import ensure_topics
from common.supervise import supervise


class Base(DeclarativeBase):
    metadata = new_metadata()


INBOX = inbox_table(Base.metadata)


@pytest.fixture
async def database(scratch_database):
    return await scratch_database(Base.metadata, pool_size=5)


async def produce(bootstrap: str, topic: str, count: int) -> list[uuid.UUID]:
    envelopes = [build_event("tenant.created", {"tenantId": (t := uuid.uuid4()), "name": "E", "plan": "Pro",
                                                "status": "ACTIVE"}, tenant_id=t) for _ in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(topic, orjson.dumps(envelope.to_kafka()), partition=0)
    finally:
        await producer.stop()
    return [e.id for e in envelopes]


async def wait_until(predicate, timeout=60.0, step=0.05):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def started(consumer: EventConsumer) -> asyncio.Task[None]:
    return asyncio.create_task(supervise("consumer", consumer.run, first_delay=0.2, max_delay=1.0))


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_after_a_broker_restart_the_new_log_is_read_from_its_start(database, broker):
    topic = f"restart.{uuid.uuid4().hex[:8]}.events"
    name = f"restart-{uuid.uuid4().hex[:6]}"
    await ensure_topics(broker.bootstrap, [topic], 1)
    # A 6 s session (a heartbeat every 2 s): the heartbeat notices the lost group after the fetches have resumed,
    # so the first fetches after the restart ask the new log for the positions reached in the old one.
    settings = ServiceSettings(service_name="restart", kafka_bootstrap_servers=broker.bootstrap,
                               kafka_fetch_max_wait_ms=20, kafka_topic_partitions=1, kafka_session_timeout_ms=6000)
    applied: list[uuid.UUID] = []
    restarted = asyncio.Event()
    held: list[object] = []  # the membership the first batch after the restart was fetched under
    old_membership: list[object] = []  # the one before the restart

    async def handler(session, events):
        if restarted.is_set():
            if held:  # the process dies before it reads on (cancelled below)
                await asyncio.Event().wait()
            # The first batch after the restart, fetched at the old positions: held until the group has been
            # joined anew, so its offsets would be committed under the new membership -- and become where the
            # next consumer of the group starts, past the new log's first records.
            held.append(membership(first._consumer))
            # On a loaded machine the heartbeat may notice the lost group first: then this batch already comes
            # from a new membership, and there is nothing to hold (the case reduces to "nothing lost" below).
            if held[0] == old_membership[0]:
                await wait_until(lambda: membership(first._consumer) not in (held[0], None)
                                 and membership(first._consumer)[0] >= 0, step=0.001)
        applied.extend(e.id for e in events)

    first = EventConsumer(settings, database, INBOX, name=name, topics=[topic], handler=handler)
    task = started(first)
    try:
        before = await produce(broker.bootstrap, topic, 20)
        await wait_until(lambda: set(before) <= set(applied))

        old_membership.append(membership(first._consumer))
        await broker.restart()
        await ensure_topics(broker.bootstrap, [topic], 1)
        restarted.set()
        after = await produce(broker.bootstrap, topic, 25)  # the new log: offsets 0-24, the old position was 20
        await wait_until(lambda: bool(held))
        await wait_until(lambda: len(applied) > 20)  # the held batch went through
    finally:
        await stopped(task)

    async def recording(session, events):
        applied.extend(e.id for e in events)

    # The service restarted: a new consumer of the group resumes from the committed offsets.
    task = started(EventConsumer(settings, database, INBOX, name=name, topics=[topic], handler=recording))
    try:
        await wait_until(lambda: set(after) <= set(applied))
    finally:
        await stopped(task)
    assert sorted(map(str, applied)) == sorted(map(str, before + after))  # each applied once (the inbox)
