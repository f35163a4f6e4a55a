"""Watch Kafka topics from a test: wait for the events a change should have published."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
from aiokafka import AIOKafkaConsumer

from common.events import Envelope


class EventCollector:
    def __init__(self) -> None:
        self.events: list[tuple[Envelope, dict[str, str]]] = []
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
                self._changed.clear()
                await self._changed.wait()

    def matching(self, predicate: Callable[[Envelope], bool]) -> list[Envelope]:
        return [e for e, _ in self.events if predicate(e)]

    def headers_of(self, event_id: uuid.UUID) -> dict[str, str]:
        return next(h for e, h in self.events if e.id == event_id)


@contextlib.asynccontextmanager
async def collect_events(bootstrap: str, topics: list[str]) -> AsyncIterator[EventCollector]:
    """Reads `topics` from the beginning with a private consumer group, for as long as the block runs."""
    from common.messaging.kafka import ensure_topics

    await ensure_topics(bootstrap, topics)
    collector = EventCollector()
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()

    async def pump() -> None:
        async for record in consumer:
            headers = {k: v.decode() for k, v in record.headers or ()}
            collector._add(Envelope.model_validate(orjson.loads(record.value)), headers)

    task = asyncio.create_task(pump())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()
