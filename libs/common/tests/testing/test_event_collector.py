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


async def test_an_event_delivered_twice_is_matched_once_and_both_deliveries_are_kept(kafka_bootstrap):
    """Delivery is at least once: a test counting what a service did counts events (`matching`); one counting what the
    broker carried counts deliveries."""
    topic = f"test.collector.{uuid.uuid4().hex[:8]}"
    events = [build_event("tenant.created", {"tenantId": uuid.uuid4(), "name": name, "plan": "Pro", "status": "ACTIVE"})
              for name in ("A", "B")]
    async with collect_events(kafka_bootstrap, [topic]) as seen:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for event in (*events, *events):  # e.g. re-published after a broker loss, with their ids
                await producer.send_and_wait(topic, value=orjson.dumps(event.to_kafka()), key=b"one partition")
        finally:
            await producer.stop()
        await seen.wait_for(lambda _: len(seen.deliveries(lambda e: True)) == 4, timeout=10)
    assert [e.data["name"] for e in seen.matching(lambda e: True)] == ["A", "B"]
    assert [e.id for e in seen.deliveries(lambda e: True)] == [e.id for e in (*events, *events)]
