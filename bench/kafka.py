"""Realistic envelopes and a fast producer (settings of ARCHITECTURE §8: acks=all, no idempotence)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from common.events import build_event, format_timestamp, topic_for_source
from common.messaging.kafka import ensure_topics

TENANTS_TOPIC = topic_for_source("tenants")
Message = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def tenant_created(tenant_id: uuid.UUID | None = None, name: str = "Empresa Cliente") -> dict:
    """A `tenant.created` envelope as the tenants service publishes it (validated by the catalogue)."""
    tenant_id = tenant_id or uuid.uuid4()
    env = build_event("tenant.created", {"tenantId": tenant_id, "name": name, "plan": "Pro", "status": "ACTIVE"},
                      tenant_id=tenant_id)
    return env.to_kafka()


def tenant_updated(tenant_id: uuid.UUID | None = None) -> dict:
    tenant_id = tenant_id or uuid.uuid4()
    env = build_event("tenant.updated", {"tenantId": tenant_id, "name": "Empresa Renombrada", "plan": "Pro",
                                         "status": "ACTIVE", "changes": ["name"],
                                         "previous": {"name": "Empresa Cliente"}}, tenant_id=tenant_id)
    return env.to_kafka()


def tenant_created_batch(n: int) -> list[Message]:
    """`n` distinct `tenant.created` messages (unique event and tenant ids), keyed by tenant id.

    One envelope goes through the catalogue's validation; the rest copy its shape with fresh ids
    (building 30k pydantic envelopes would take longer than delivering them).
    """
    template = tenant_created()
    now = format_timestamp(datetime.now(UTC))
    headers = [("event", b"tenant.created")]
    out: list[Message] = []
    for i in range(n):
        tid = str(uuid.uuid4())
        env = dict(template, id=str(uuid.uuid4()), timestamp=now, tenantId=tid,
                   data=dict(template["data"], tenantId=tid, name=f"Empresa Bench {i}"))
        out.append((tid.encode(), orjson.dumps(env), headers))
    return out


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench", acks="all",
                            enable_idempotence=False, linger_ms=5, max_batch_size=256 * 1024,
                            request_timeout_ms=30_000)


async def ensure_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    await ensure_topics(bootstrap, [topic], partitions)


async def produce(producer: AIOKafkaProducer, topic: str, messages: list[Message], *, chunk: int = 2000) -> None:
    """Send everything, `chunk` messages in flight at a time, and wait for every acknowledgement."""
    for start in range(0, len(messages), chunk):
        futures = [await producer.send(topic, value, key=key, headers=headers)
                   for key, value, headers in messages[start:start + chunk]]
        await asyncio.gather(*futures)


async def produce_one(producer: AIOKafkaProducer, topic: str, envelope: dict) -> None:
    await producer.send_and_wait(topic, orjson.dumps(envelope), key=str(envelope["tenantId"]).encode(),
                                 headers=[("event", envelope["event"].encode())])
