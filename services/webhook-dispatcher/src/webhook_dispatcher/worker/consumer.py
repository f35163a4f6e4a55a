"""Consumption: every domain topic -> one delivery row per (event, matching ACTIVE endpoint).

One statement per consumed batch, outside any explicit transaction (`DeliveryRepository.route`): the
inbox rows, the events and their deliveries commit together, the Kafka offset only after, so a crash
anywhere loses nothing and a replayed event finds its inbox row (and its deliveries: UNIQUE (event_id,
endpoint_id), ON CONFLICT DO NOTHING). The deliveries are inserted already leased to this replica, and
handed to the worker right after: the first attempt does not wait for any poll.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db import Database
from common.events import ALL_TOPICS, patterns_matching
from common.messaging import ConsumedEvent, EventConsumer
from common.messaging.consumer import AfterCommit
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.events import is_routable, ordering_key
from webhook_dispatcher.models import inbox
from webhook_dispatcher.worker.jobs import Job
from webhook_dispatcher.worker.worker import DeliveryWorker

CONSUMER_NAME = "webhook-dispatcher"  # the inbox's consumer name


def _occurred_at(event: ConsumedEvent) -> datetime:
    ts = event.envelope.timestamp
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # a zone-less timestamp is read as UTC


def _event_row(event: ConsumedEvent, body: bytes) -> dict[str, Any]:
    env = event.envelope
    return {
        "id": env.id, "event_type": env.event, "routable": is_routable(env.event),
        "patterns": orjson.dumps(patterns_matching(env.event)).decode(),
        "occurred_at": _occurred_at(event), "tenant_id": env.tenant_id,
        "ordering_key": ordering_key(env), "body": body.decode(),
        "traceparent": (event.headers.get("traceparent") or None) and event.headers["traceparent"][:100],
        "tracestate": (event.headers.get("tracestate") or None) and event.headers["tracestate"][:512],
    }


async def route_batch(conn: AsyncConnection, events: list[ConsumedEvent],
                      worker: DeliveryWorker) -> tuple[int, AfterCommit | None]:
    """Record a batch (distinct event ids) on an autocommit connection; returns how many events were new
    and what to run once it is written (hand the leased deliveries to the worker)."""
    bodies = {e.id: orjson.dumps(e.envelope.to_webhook()) for e in events}
    rows = {e.id: _event_row(e, bodies[e.id]) for e in events}
    lease = worker.settings.webhook_lease_seconds
    started = asyncio.get_running_loop().time()
    # Each lane is leased only what it has room for: the rest is never leased and handed back a moment later.
    routed = await DeliveryRepository(conn).route(list(rows.values()), consumer=CONSUMER_NAME,
                                                  owner=worker.owner, lease=lease, leased=worker.accepting,
                                                  room=worker.settings.webhook_queue_size,
                                                  lane_room=worker.lanes.room())
    fresh = {r.event_id for r in routed}
    inserted = [r for r in routed if r.id is not None]
    if not inserted:
        return len(fresh), None
    by_event = {e.id: e for e in events}
    jobs: list[Job] = []
    waiting: set[uuid.UUID] = set()  # endpoints with new deliveries left to the poller
    for r in inserted:
        if r.lease_owner != worker.owner:
            waiting.add(r.endpoint_id)  # ordered (the poller hands out each aggregate's head) or no room
            continue
        row = rows[r.event_id]
        jobs.append(Job(r.id, r.endpoint_id, r.event_id, by_event[r.event_id].envelope.event, bodies[r.event_id],
                        row["occurred_at"], row["traceparent"], row["tracestate"], 0, 0, started + lease))

    async def after_commit() -> None:
        # A full lane asks the poller itself once it has drained to half; the others' rows are due now.
        await worker.accept(jobs, wake=worker.lanes.park(waiting))

    return len(fresh), after_commit


def make_consumer(settings: Settings, database: Database, worker: DeliveryWorker) -> EventConsumer:
    async def writer(conn: AsyncConnection, events: list[ConsumedEvent]) -> tuple[int, AfterCommit | None]:
        return await route_batch(conn, events, worker)

    return EventConsumer(settings, database, inbox, name=CONSUMER_NAME, topics=list(ALL_TOPICS),
                         writer=writer, group_id=settings.webhook_consumer_group)
