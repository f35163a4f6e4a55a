"""Consumption: every domain topic -> one delivery row per (event, matching ACTIVE endpoint).

Runs inside the consumer's transaction (the inbox row commits with the deliveries, the Kafka offset
only after), so a crash anywhere loses nothing and a replayed event finds its deliveries already
there (UNIQUE (event_id, endpoint_id), ON CONFLICT DO NOTHING). The deliveries are inserted already
leased to this replica, and handed to the engine right after the commit: the first attempt does
not wait for any poll.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database
from common.events import ALL_TOPICS, matches
from common.messaging import ConsumedEvent, EventConsumer
from common.messaging.consumer import AfterCommit
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.engine import DeliveryEngine, Job
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.events import is_routable, ordering_key
from webhook_dispatcher.models import inbox

CONSUMER_NAME = "webhook-dispatcher"  # the inbox's consumer name


def _occurred_at(event: ConsumedEvent) -> datetime:
    ts = event.envelope.timestamp
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # a zone-less timestamp is read as UTC


def _event_row(event: ConsumedEvent, body: bytes) -> dict[str, Any]:
    env = event.envelope
    return {
        "id": env.id, "event_type": env.event[:100], "occurred_at": _occurred_at(event), "tenant_id": env.tenant_id,
        "ordering_key": ordering_key(env), "body": body.decode(),
        "traceparent": (event.headers.get("traceparent") or None) and event.headers["traceparent"][:100],
        "tracestate": (event.headers.get("tracestate") or None) and event.headers["tracestate"][:512],
    }


async def route_events(session: AsyncSession, events: list[ConsumedEvent],
                       engine: DeliveryEngine) -> AfterCommit | None:
    events = [e for e in events if is_routable(e.envelope.event)]
    if not events:
        return None
    bodies = {e.id: orjson.dumps(e.envelope.to_webhook()) for e in events}
    rows = {e.id: _event_row(e, bodies[e.id]) for e in events}
    repo = DeliveryRepository(session)
    # Every event is kept (within the retention): recover re-sends what a paused endpoint missed.
    routes = await repo.insert_events(list(rows.values()))
    if not routes:
        return None
    lease = engine.settings.webhook_lease_seconds
    leased = engine.accepting
    deliveries: list[dict[str, Any]] = []
    for event in events:
        name = event.envelope.event
        for endpoint_id, patterns, ordered in routes:
            if not any(matches(p, name) for p in patterns):
                continue
            take = leased and not ordered  # ordered endpoints: the poller hands out the head of each key
            deliveries.append({
                "id": uuid.uuid4(), "event_id": event.id, "endpoint_id": endpoint_id, "event_type": name[:100],
                "ordering_key": rows[event.id]["ordering_key"], "leased": take,
            })
    if not deliveries:
        return None
    started = asyncio.get_running_loop().time()
    inserted = await repo.insert_deliveries(deliveries, owner=engine.owner, lease=lease)
    if not inserted:
        return None
    by_event = {e.id: e for e in events}
    jobs: list[Job] = []
    for row in inserted:
        if row.lease_owner != engine.owner:
            continue
        event = by_event[row.event_id]
        jobs.append(Job(row.id, row.endpoint_id, row.event_id, event.envelope.event, bodies[row.event_id],
                        rows[row.event_id]["occurred_at"], rows[row.event_id]["traceparent"], rows[row.event_id]["tracestate"],
                        0, 0, started + lease))
    wake = len(jobs) < len(inserted)

    async def after_commit() -> None:
        await engine.accept(jobs, wake=wake)

    return after_commit


def make_consumer(settings: Settings, database: Database, engine: DeliveryEngine) -> EventConsumer:
    async def handler(session: AsyncSession, events: list[ConsumedEvent]) -> AfterCommit | None:
        return await route_events(session, events, engine)

    return EventConsumer(settings, database, inbox, name=CONSUMER_NAME, topics=list(ALL_TOPICS),
                         handler=handler, group_id=settings.webhook_consumer_group)
