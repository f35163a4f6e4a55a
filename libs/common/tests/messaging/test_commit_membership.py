"""An offset commit belongs to the group membership its records were read under: sent later, under a group
joined anew on a restarted (empty) broker, it would make the new log's first records be skipped."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.messaging.consumer import commit_as, membership
from common.messaging.kafka import ensure_topics


@contextlib.asynccontextmanager
async def reading(broker, topic: str, records: int, **options):
    """A group consumer of `topic` (one partition, `records` records in it), which has read them all."""
    await ensure_topics(broker.bootstrap, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    for _ in range(records):
        await producer.send_and_wait(topic, b"old log")
    await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"group-{topic}",
                                auto_offset_reset="earliest", enable_auto_commit=False, **options)
    await consumer.start()
    try:
        got = 0
        async with asyncio.timeout(30):
            while got < records:
                got += sum(len(r) for r in (await consumer.getmany(timeout_ms=200)).values())
        yield consumer
    finally:
        await consumer.stop()


async def test_a_commit_retried_across_a_broker_restart_is_dropped_not_sent_as_the_new_member(broker):
    topic = "commit.membership"
    async with reading(broker, topic, 5, session_timeout_ms=3000, heartbeat_interval_ms=500,
                       retry_backoff_ms=50) as consumer:
        member = membership(consumer)
        tp = TopicPartition(topic, 0)

        await broker.down()
        # Begun while the broker is away: it keeps retrying until the broker is back.
        commit = asyncio.create_task(commit_as(consumer, {tp: 5}, member))
        await asyncio.sleep(0.5)  # the broker stays away this long (not a wait for anything)
        assert not commit.done()
        await broker.up()
        await ensure_topics(broker.bootstrap, [topic], 1)  # as the relay does on the new, empty broker
        assert await asyncio.wait_for(commit, 30) is False

        async with asyncio.timeout(30):  # the group joined anew on the new broker
            while membership(consumer) in (member, None) or membership(consumer)[0] < 0:
                await consumer.getmany(timeout_ms=200)
        # Late (a commit task that waited on the old coordinator): aiokafka's `commit` would send it as the
        # new member, and the new group would start reading its log at offset 5.
        assert await commit_as(consumer, {tp: 5}, member) is False
        # Offset 5 of the lost log was not committed into the new group: its reader starts at the beginning.
        assert await consumer.committed(tp) is None


async def test_a_commit_under_the_same_membership_lands(broker):
    async with reading(broker, "commit.same", 3) as consumer:
        tp = TopicPartition("commit.same", 0)
        # Read between a lost membership and the next join: never committed (a broker takes generation -1
        # with no member id as a standalone commit).
        assert await commit_as(consumer, {tp: 3}, (-1, "")) is False
        assert await consumer.committed(tp) is None
        assert await commit_as(consumer, {tp: 3}, membership(consumer)) is True
        assert await consumer.committed(tp) == 3
