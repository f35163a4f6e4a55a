"""`conversation.started` on Kafka → one own-operations lead per contact, however often it is delivered."""

from __future__ import annotations

import uuid

import orjson
from aiokafka import AIOKafkaProducer

from common.events import build_event

CONVERSATIONS = "platform.conversations.events"
OPERATIONS = "/api/platform/operations/leads"


def started(contact: str, name: str) -> bytes:
    envelope = build_event("conversation.started", {
        "conversationId": uuid.uuid4(), "channelId": uuid.uuid4(), "channelType": "WHATSAPP_CLOUD",
        "contact": contact, "contactName": name})
    return orjson.dumps(envelope.to_kafka())


async def test_conversation_started_creates_one_own_operations_lead_per_contact(api, events, kafka_bootstrap):
    m = uuid.uuid4().hex[:8]
    phone = f"54911{uuid.uuid4().int % 10**8:08d}"
    first = started(phone, f"Contact {m}")
    second_conversation = started(f" {phone} ", f"Same contact {m}")
    sentinel = started(f"54922{uuid.uuid4().int % 10**8:08d}", f"Sentinel {m}")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        # One key: one partition, so the sentinel is handled after the others.
        key = m.encode()
        for value in (first, first, b"not json", second_conversation, first, sentinel):
            await producer.send_and_wait(CONVERSATIONS, value=value, key=key,
                                         headers=[("event", b"conversation.started")])
    finally:
        await producer.stop()
    await events.wait_for(lambda e: e.event == "lead.created" and e.data["name"] == f"Sentinel {m}",
                          timeout=30)
    created = events.matching(lambda e: e.event == "lead.created" and m in e.data["name"])
    page = await api.list(OPERATIONS, q=m, sort="createdAt")
    assert [x["name"] for x in page["items"]] == [f"Contact {m}", f"Sentinel {m}"]
    lead = page["items"][0]
    assert lead["source"] == "whatsapp" and lead["ownOperation"] is True and lead["phone"] == phone
    assert lead["stage"] == "NEW" and lead["conversationId"] is not None and lead["createdBy"] is None
    assert sorted(e.data["name"] for e in created) == [f"Contact {m}", f"Sentinel {m}"]
    event = next(e for e in created if e.data["leadId"] == lead["id"])
    assert event.data["ownOperation"] is True and event.data["source"] == "whatsapp"
    assert (await api.list(q=m, ownOperation=False))["total"] == 0
