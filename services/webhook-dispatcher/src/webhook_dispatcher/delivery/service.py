"""Delivery log and replays: list, inspect, retry one, recover a time range (same `webhook-id`)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, NotFound, Unprocessable
from webhook_dispatcher.delivery.repository import ONE_OFF_TYPES, DeliveryRepository
from webhook_dispatcher.delivery.schemas import (
    AttemptRead,
    DeliveryDetail,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatusName,
    RecoverRequest,
    RecoverResult,
    RecoverStatus,
    RecoveryProgress,
    RecoveryRead,
)
from webhook_dispatcher.endpoint.repository import EndpointRepository
from webhook_dispatcher.models import Attempt, Delivery, DeliveryStatus, Endpoint, EndpointKind, Recovery


def to_read(d: Delivery) -> DeliveryRead:
    return DeliveryRead(id=d.id, endpointId=d.endpoint_id, eventId=d.event_id, eventType=d.event_type,
                        status=DeliveryStatusName(d.status), attempts=d.attempts, nextAttemptAt=d.next_attempt_at,
                        lastAttemptAt=d.last_attempt_at, lastStatusCode=d.last_status_code,
                        lastErrorClass=d.last_error_class, lastError=d.last_error, deliveredAt=d.delivered_at,
                        createdAt=d.created_at)


def attempt_read(a: Attempt) -> AttemptRead:
    return AttemptRead(id=a.id, number=a.number, startedAt=a.started_at, durationMs=a.duration_ms, url=a.url,
                       targetIp=a.target_ip, requestHeaders=a.request_headers, statusCode=a.status_code,
                       responseHeaders=a.response_headers, responseBody=a.response_body, success=a.success,
                       errorClass=a.error_class, error=a.error)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s:"):
            raise ValueError
        return int(raw[2:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor: not a cursor returned by this API") from None


async def _endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = await EndpointRepository(session).get(endpoint_id, kind=EndpointKind.WEBHOOK)
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return endpoint


async def list_deliveries(session: AsyncSession, endpoint_id: uuid.UUID, *, status: DeliveryStatusName | None,
                          event_type: str | None, since: datetime | None, until: datetime | None,
                          cursor: str | None, limit: int) -> DeliveryPage:
    if since is not None and until is not None and until < since:  # equal is a valid, empty window
        raise Unprocessable("until must not be before since")
    await _endpoint(session, endpoint_id)
    before = decode_cursor(cursor) if cursor else None
    rows = await DeliveryRepository(session).list_for_endpoint(
        endpoint_id, status=status, event_type=event_type, since=since, until=until, before_seq=before,
        limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(items=[to_read(d) for d in rows], nextCursor=encode_cursor(rows[-1].seq) if more else None)


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryDetail:
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id)
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    event = await repo.get_event(delivery.event_id)
    attempts = await repo.attempts_of(delivery_id)
    return DeliveryDetail(**to_read(delivery).model_dump(),
                          payload=orjson.loads(event.body) if event is not None else None,
                          attemptLog=[attempt_read(a) for a in attempts])


async def list_attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[AttemptRead]:
    repo = DeliveryRepository(session)
    if await repo.get(delivery_id) is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    return [attempt_read(a) for a in await repo.attempts_of(delivery_id)]


async def retry(session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryRead:
    """A final delivery goes out again now (same event, same `webhook-id`), with a fresh retry cycle."""
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id, for_update=True)
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    if delivery.event_type in ONE_OFF_TYPES:
        raise Conflict(f"A {delivery.event_type} message is not replayed; use /verify or /test instead")
    if delivery.status == DeliveryStatus.PENDING:
        raise Conflict("The delivery is still pending; it will be attempted when due")
    endpoint = await EndpointRepository(session).get(delivery.endpoint_id)
    if endpoint is None:
        raise Conflict("The endpoint of this delivery was deleted")
    await repo.reschedule([delivery.id])
    await repo.notify_due()
    await session.refresh(delivery)
    return to_read(delivery)


async def recover(session: AsyncSession, endpoint_id: uuid.UUID, body: RecoverRequest, *, max_count: int,
                  default_rate: float, caller: uuid.UUID | None = None) -> RecoverResult:
    """Send again what this endpoint failed or missed in a time range (by event time), paced. A dry run
    only counts (in the database: cheap whatever the outage's size)."""
    endpoint = await _endpoint(session, endpoint_id)
    statuses = body.statuses
    rate = body.ratePerSecond or default_rate
    repo = DeliveryRepository(session)
    window = {"since": body.since, "until": body.until, "event_types": body.eventTypes}
    queries = {st: (repo.recover_missed(endpoint, **window) if st is RecoverStatus.MISSED
                    else repo.recover_existing(endpoint, status=st.value, **window)) for st in statuses}
    if body.dryRun:
        found = {st: await repo.count(q) for st, q in queries.items()}
    else:
        ids = {st: await repo.ids(q) for st, q in queries.items()}
        found = {st: len(v) for st, v in ids.items()}
    failed, succeeded, missed = (found.get(st, 0) for st in RecoverStatus)
    count = failed + succeeded + missed
    if not body.dryRun and count > max_count:
        raise Unprocessable(f"{count} deliveries match; at most {max_count} can be recovered at once: narrow the "
                            "time range or the event types")
    result = RecoverResult(dryRun=body.dryRun, count=count, failed=failed, succeeded=succeeded, missed=missed,
                           ratePerSecond=rate, estimatedSeconds=round(count / rate, 3))
    if body.dryRun or not count:
        return result
    recovery = Recovery(endpoint_id=endpoint.id, since=body.since, until=body.until, event_types=body.eventTypes,
                        statuses=[s.value for s in statuses], rate_per_second=rate, total=count,
                        failed=failed, succeeded=succeeded, missed=missed, created_by=caller)
    session.add(recovery)
    await session.flush()
    existing = ids.get(RecoverStatus.FAILED, []) + ids.get(RecoverStatus.SUCCEEDED, [])
    # What really was (re)scheduled: a delivery may have changed state since it was counted.
    recovery.total = (await repo.reschedule(existing, recovery_id=recovery.id)
                      + await repo.create_for_events(endpoint.id, ids.get(RecoverStatus.MISSED, []),
                                                     recovery_id=recovery.id))
    await repo.pace(recovery.id, rate)
    await repo.notify_due()
    return result.model_copy(update={"id": recovery.id})


async def get_recovery(session: AsyncSession, endpoint_id: uuid.UUID, recovery_id: uuid.UUID) -> RecoveryRead:
    recovery = await session.get(Recovery, recovery_id)
    if recovery is None or recovery.endpoint_id != endpoint_id:
        raise NotFound(f"Recovery {recovery_id} not found for endpoint {endpoint_id}")
    return await _recovery_read(session, recovery)


async def list_recoveries(session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int) -> list[RecoveryRead]:
    """The endpoint's latest recoveries, newest first."""
    await _endpoint(session, endpoint_id)
    rows = await session.scalars(select(Recovery).where(Recovery.endpoint_id == endpoint_id)
                                 .order_by(Recovery.created_at.desc(), Recovery.id.desc()).limit(limit))
    return [await _recovery_read(session, r) for r in rows.all()]


async def _recovery_read(session: AsyncSession, r: Recovery) -> RecoveryRead:
    counts = await DeliveryRepository(session).recovery_progress(r.id)
    pending, succeeded, failed = (counts.get(s, 0) for s in ("PENDING", "SUCCEEDED", "FAILED"))
    progress = RecoveryProgress(pending=pending, succeeded=succeeded, failed=failed,
                                superseded=max(0, r.total - pending - succeeded - failed), done=pending == 0)
    return RecoveryRead(id=r.id, endpointId=r.endpoint_id, createdAt=r.created_at, since=r.since, until=r.until,
                        eventTypes=r.event_types, status=[RecoverStatus(s) for s in r.statuses],
                        ratePerSecond=r.rate_per_second, count=r.total, failed=r.failed, succeeded=r.succeeded,
                        missed=r.missed, progress=progress)
