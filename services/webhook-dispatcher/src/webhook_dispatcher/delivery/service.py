"""Delivery log and replays: list, inspect, retry one, recover a time range (same `webhook-id`)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, NotFound, Unprocessable, found
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
from webhook_dispatcher.models import Delivery, DeliveryStatus, EndpointKind, Recovery, WebhookEndpoint


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


async def _webhook(repo: DeliveryRepository, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await repo.endpoint(endpoint_id, kind=EndpointKind.WEBHOOK)
    return found(endpoint, f"Webhook endpoint {endpoint_id} not found")


async def _delivery(repo: DeliveryRepository, delivery_id: uuid.UUID, *, for_update: bool = False) -> Delivery:
    return found(await repo.get(delivery_id, for_update=for_update), f"Delivery {delivery_id} not found")


async def page_of_deliveries(repo: DeliveryRepository, endpoint_id: uuid.UUID, *, status: str | None,
                             event_type: str | None, since: datetime | None, until: datetime | None,
                             cursor: str | None, limit: int) -> tuple[list[Delivery], str | None]:
    """Newest first, `limit` of them, and the cursor of the next (older) page."""
    before = decode_cursor(cursor) if cursor else None
    rows = await repo.list_for_endpoint(endpoint_id, status=status, event_type=event_type, since=since,
                                        until=until, before_seq=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].seq) if more and rows else None  # type: ignore[arg-type]


async def list_deliveries(session: AsyncSession, endpoint_id: uuid.UUID, *, status: DeliveryStatusName | None,
                          event_type: str | None, since: datetime | None, until: datetime | None,
                          cursor: str | None, limit: int) -> DeliveryPage:
    if since is not None and until is not None and until < since:  # equal is a valid, empty window
        raise Unprocessable("until must not be before since")
    repo = DeliveryRepository(session)
    await _webhook(repo, endpoint_id)
    rows, next_cursor = await page_of_deliveries(repo, endpoint_id, status=status, event_type=event_type,
                                                 since=since, until=until, cursor=cursor, limit=limit)
    return DeliveryPage(items=[DeliveryRead.model_validate(d) for d in rows], next_cursor=next_cursor)


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryDetail:
    repo = DeliveryRepository(session)
    delivery = await _delivery(repo, delivery_id)
    event = await repo.get_event(delivery.event_id)
    attempts = await repo.attempts_of(delivery_id)
    return DeliveryDetail(**DeliveryRead.model_validate(delivery).model_dump(),
                          payload=orjson.loads(event.body) if event is not None else None,
                          attempt_log=[AttemptRead.model_validate(a) for a in attempts])


async def list_attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[AttemptRead]:
    repo = DeliveryRepository(session)
    await _delivery(repo, delivery_id)
    return [AttemptRead.model_validate(a) for a in await repo.attempts_of(delivery_id)]


async def retry(session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryRead:
    """A final delivery goes out again now (same event, same `webhook-id`), with a fresh retry cycle."""
    repo = DeliveryRepository(session)
    delivery = await _delivery(repo, delivery_id, for_update=True)
    if delivery.event_type in ONE_OFF_TYPES:
        raise Conflict(f"A {delivery.event_type} message is not replayed; use /verify or /test instead")
    if delivery.status == DeliveryStatus.PENDING:
        raise Conflict("The delivery is still pending; it will be attempted when due")
    if await repo.endpoint(delivery.endpoint_id) is None:
        raise Conflict("The endpoint of this delivery was deleted")
    await repo.reschedule([delivery.id])
    await repo.notify_due()
    await session.refresh(delivery)
    return DeliveryRead.model_validate(delivery)


async def recover(session: AsyncSession, endpoint_id: uuid.UUID, body: RecoverRequest, *, max_count: int,
                  default_rate: float, caller: uuid.UUID | None = None) -> RecoverResult:
    """Send again what this endpoint failed or missed in a time range (by event time), paced. A dry run
    only counts (in the database: cheap whatever the outage's size)."""
    repo = DeliveryRepository(session)
    endpoint = await _webhook(repo, endpoint_id)
    statuses = body.statuses
    rate = body.rate_per_second or default_rate
    window = {"since": body.since, "until": body.until, "event_types": body.event_types}
    queries = {st: (repo.recover_missed(endpoint, **window) if st is RecoverStatus.MISSED
                    else repo.recover_existing(endpoint, status=st.value, **window)) for st in statuses}
    if body.dry_run:
        found = {st: await repo.count(q) for st, q in queries.items()}
    else:
        ids = {st: await repo.ids(q) for st, q in queries.items()}
        found = {st: len(v) for st, v in ids.items()}
    failed, succeeded, missed = (found.get(st, 0) for st in RecoverStatus)
    count = failed + succeeded + missed
    if not body.dry_run and count > max_count:
        raise Unprocessable(f"{count} deliveries match; at most {max_count} can be recovered at once: narrow the "
                            "time range or the event types")
    result = RecoverResult(dry_run=body.dry_run, count=count, failed=failed, succeeded=succeeded, missed=missed,
                           rate_per_second=rate, estimated_seconds=round(count / rate, 3))
    if body.dry_run or not count:
        return result
    recovery = await repo.add_recovery(Recovery(
        endpoint_id=endpoint.id, since=body.since, until=body.until, event_types=body.event_types,
        statuses=[s.value for s in statuses], rate_per_second=rate, total=count, failed=failed,
        succeeded=succeeded, missed=missed, created_by=caller))
    existing = ids.get(RecoverStatus.FAILED, []) + ids.get(RecoverStatus.SUCCEEDED, [])
    # What really was (re)scheduled: a delivery may have changed state since it was counted.
    recovery.total = (await repo.reschedule(existing, recovery_id=recovery.id)
                      + await repo.create_for_events(endpoint.id, ids.get(RecoverStatus.MISSED, []),
                                                     recovery_id=recovery.id))
    await repo.pace(recovery.id, rate)
    await repo.notify_due()
    return result.model_copy(update={"id": recovery.id})


async def get_recovery(session: AsyncSession, endpoint_id: uuid.UUID, recovery_id: uuid.UUID) -> RecoveryRead:
    repo = DeliveryRepository(session)
    recovery = await repo.get_recovery(endpoint_id, recovery_id)
    if recovery is None:
        raise NotFound(f"Recovery {recovery_id} not found for endpoint {endpoint_id}")
    return await _recovery_read(repo, recovery)


async def list_recoveries(session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int) -> list[RecoveryRead]:
    """The endpoint's latest recoveries, newest first."""
    repo = DeliveryRepository(session)
    await _webhook(repo, endpoint_id)
    return [await _recovery_read(repo, r) for r in await repo.recoveries_of(endpoint_id, limit=limit)]


async def _recovery_read(repo: DeliveryRepository, r: Recovery) -> RecoveryRead:
    counts = await repo.recovery_progress(r.id)
    pending, succeeded, failed = (counts.get(s, 0) for s in ("PENDING", "SUCCEEDED", "FAILED"))
    progress = RecoveryProgress(pending=pending, succeeded=succeeded, failed=failed,
                                superseded=max(0, r.total - pending - succeeded - failed), done=pending == 0)
    return RecoveryRead(id=r.id, endpoint_id=r.endpoint_id, created_at=r.created_at, since=r.since, until=r.until,
                        event_types=r.event_types, status=[RecoverStatus(s) for s in r.statuses],
                        rate_per_second=r.rate_per_second, count=r.total, failed=r.failed, succeeded=r.succeeded,
                        missed=r.missed, progress=progress)
