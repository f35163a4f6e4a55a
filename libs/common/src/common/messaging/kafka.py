"""aiokafka producer/admin helpers with the settings measured on these machines (ARCHITECTURE §8)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from common.config import ServiceSettings

logger = logging.getLogger("common.kafka")


def make_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=0,
        request_timeout_ms=10_000,
    )


def make_offsets_reader(bootstrap: str, client_id: str) -> AIOKafkaConsumer:
    """A consumer outside any group, used only to read partitions' end offsets."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False,
                            request_timeout_ms=10_000)


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """(Re)create topics: a tansu restart loses them, and auto-creation picks its own partitioning."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass
            except Exception as exc:
                logger.info("create_topics %s: %s", missing, exc)
    finally:
        await admin.close()


async def wait_for_kafka(bootstrap: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)
        finally:
            await admin.close()


async def end_offsets(consumer: AIOKafkaConsumer, topic: str, partitions: int,
                      timeout: float = 5.0) -> dict[int, int]:
    """What ListOffsets answers for each partition of `topic` (a group-less consumer). A partition the
    broker does not know (a restarted tansu forgot the topic) answers 0, or is left out.

    Kafka answers the end (last offset + 1); tansu 0.6 answers the last *batch's* base offset + 1
    (seen here: records 7..13 sent as one batch, end 8). Both are 0 for an empty partition, and at least
    (lowest offset of the last batch written) + 1 otherwise: compare with that, not with the end."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]  # partitions 0..n-1: those written to
    ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
    return {tp.partition: offset for tp, offset in ends.items()}


async def true_ends(consumer: AIOKafkaConsumer, topic: str, partitions: int, timeout: float = 5.0) -> dict[int, int]:
    """The real end of each partition: the high watermark of a fetch of its last batch (see `end_offsets`:
    tansu's ListOffsets may answer less). Leaves `consumer` assigned to those partitions."""
    listed = await end_offsets(consumer, topic, partitions, timeout)
    tps = [TopicPartition(topic, p) for p, end in listed.items() if end > 0]  # 0: the partition is empty
    if not tps:
        return listed
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, listed[tp.partition] - 1)
    async with asyncio.timeout(timeout):
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(*tps, timeout_ms=200)
    return listed | {tp.partition: max(listed[tp.partition], consumer.highwater(tp) or 0) for tp in tps}
