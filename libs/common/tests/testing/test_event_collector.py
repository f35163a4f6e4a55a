"""`common.testing.events.collect_events`: what tests read from the session's broker."""

from __future__ import annotations

import uuid

import orjson
from aiokafka import AIOKafkaProducer

from common.events import build_event
from common.testing.events import collect_events


async def test_records_that_are_no_event_are_skipped_and_reading_goes_on(kafka_bootstrap):
    """A consumer's test puts poison messages on a shared topic (leads: `b"not json"` on the conversations topic);
    a collector of that topic started later must still see the events after them."""
    topic = f"test.collector.{uuid.uuid4().hex[:8]}"
    tenant_id = uuid.uuid4()
    event = build_event("tenant.created", {"tenantId": tenant_id, "name": "Empresa", "plan": "Pro", "status": "ACTIVE"},
                        tenant_id=tenant_id)
    async with collect_events(kafka_bootstrap, [topic]) as seen:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for value in (b"not json", orjson.dumps({"no": "envelope"}), orjson.dumps(event.to_kafka())):
                await producer.send_and_wait(topic, value=value, key=b"one partition")
        finally:
            await producer.stop()
        got = await seen.wait_for(lambda e: e.id == event.id, timeout=10)
    assert got.data["name"] == "Empresa"
    assert seen.skipped == 2 and seen.failed is None
