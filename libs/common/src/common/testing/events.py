"""Watch Kafka topics from a test: wait for the events a change should have published."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from common.events import Envelope


class EventCollector:
    def __init__(self) -> None:
        self.events: list[tuple[Envelope, dict[str, str]]] = []
        self.skipped = 0  # records that are no event envelope
        self.failed: BaseException | None = None  # why it stopped reading, if it did
        self._changed = asyncio.Event()

    def _add(self, envelope: Envelope, headers: dict[str, str]) -> None:
        self.events.append((envelope, headers))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float = 15.0) -> Envelope:
        async with asyncio.timeout(timeout):
            while True:
                for envelope, _ in self.events:
                    if predicate(envelope):
                        return envelope
                if self.failed is not None:  # at once, not as a timeout that hides why
                    raise RuntimeError("the event collector stopped reading") from self.failed
                self._changed.clear()
                await self._changed.wait()

    def matching(self, predicate: Callable[[Envelope], bool]) -> list[Envelope]:
        """The events `predicate` picks, each once, in the order they first arrived. Delivery is at least once (a
        relay that finds the broker lost records sends them again, with their ids): a test that counts what a
        service did counts events, not deliveries (seen once in `make test`: a plan change's `tenant.updated`
        twice)."""
        return list({e.id: e for e in self.deliveries(predicate)}.values())

    def deliveries(self, predicate: Callable[[Envelope], bool]) -> list[Envelope]:
        """Every record of the events `predicate` picks, a redelivered one as often as it came."""
        return [e for e, _ in self.events if predicate(e)]

    def headers_of(self, event_id: uuid.UUID) -> dict[str, str]:
        return next(h for e, h in self.events if e.id == event_id)


@contextlib.asynccontextmanager
async def collect_events(bootstrap: str, topics: list[str]) -> AsyncIterator[EventCollector]:
    """Reads every partition of `topics` from the beginning, for as long as the block runs.

    No consumer group: the partitions are assigned by hand. A group costs a join (~5 s on tansu) and can
    rebalance under load; a consumer stopping mid-rebalance waits for its JoinGroup answer, which tansu may
    hold for minutes (a test hung past pytest's 120 s timeout that way, its own 15 s wait never reported)."""
    from common.messaging.kafka import ensure_topics

    await ensure_topics(bootstrap, topics)
    partitions = await _partitions(bootstrap, topics)
    collector = EventCollector()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)

    async def pump() -> None:
        try:
            async for record in consumer:
                try:
                    envelope = Envelope.model_validate(orjson.loads(record.value))
                except (orjson.JSONDecodeError, ValidationError):
                    # Not an event: e.g. the poison message a consumer's test put on a topic of the session's broker.
                    # Reading stopped at the first one, and every later test of that topic timed out waiting.
                    collector.skipped += 1
                    continue
                collector._add(envelope, {k: v.decode() for k, v in record.headers or ()})
        except Exception as exc:
            collector.failed = exc
            collector._changed.set()
            raise

    task = asyncio.create_task(pump())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()


async def _partitions(bootstrap: str, topics: list[str], timeout: float = 10.0) -> list[TopicPartition]:
    """Every partition of `topics`, once the broker lists each topic with its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                described = {t["topic"]: [p["partition"] for p in t["partitions"]]
                             for t in await admin.describe_topics(topics) if not t["error_code"]}
                if all(described.get(topic) for topic in topics):
                    return [TopicPartition(topic, p) for topic in topics for p in described[topic]]
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
