"""All SQL about events, deliveries and attempts (STYLE habit 2). The hot paths use Core."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from common.events import matches
from webhook_dispatcher.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event

DUE_CHANNEL = "webhook_deliveries_due"

events_t = Event.__table__
deliveries_t = Delivery.__table__
attempts_t = Attempt.__table__


@dataclass
class ClaimedDelivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempts: int
    cycle_attempts: int
    body: str
    occurred_at: datetime
    traceparent: str | None
    tracestate: str | None


# Due work, at most `per_endpoint` rows per ACTIVE endpoint (so one endpoint's backlog never fills a
# claim), skipping rows another replica holds (lease) or is locking right now (SKIP LOCKED). For
# `ordered` endpoints only the head of each aggregate's queue is due.
_CLAIM = text("""
WITH picked AS (
    SELECT d.id
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'PENDING' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
          AND (NOT e.ordered OR NOT EXISTS (
                SELECT 1 FROM webhook_deliveries p
                WHERE p.endpoint_id = d.endpoint_id AND p.status = 'PENDING'
                  AND p.ordering_key = d.ordering_key AND p.seq < d.seq))
        ORDER BY d.next_attempt_at
        LIMIT :per_endpoint
    ) d
    WHERE e.status = 'ACTIVE' AND NOT (e.id = ANY(:busy))
    LIMIT :limit
), locked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM picked) AND d.status = 'PENDING'
      AND (d.lease_until IS NULL OR d.lease_until < now())
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET lease_until = now() + make_interval(secs => :lease), lease_owner = :owner
FROM locked, webhook_events ev
WHERE d.id = locked.id AND ev.id = d.event_id
RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.attempts, d.cycle_attempts, ev.body,
          ev.occurred_at, ev.traceparent, ev.tracestate
""").bindparams(bindparam("busy", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

# One finished attempt: the delivery's new state. The lease is kept only when the retry waits in
# this replica's memory (short delays); otherwise the poller of any replica takes it when due.
_RECORD = text("""
UPDATE webhook_deliveries SET
    status = :status,
    attempts = attempts + 1,
    cycle_attempts = cycle_attempts + 1,
    next_attempt_at = CASE WHEN :status = 'PENDING' THEN now() + make_interval(secs => :delay) END,
    lease_until = CASE WHEN :keep_lease THEN now() + make_interval(secs => :delay + :lease) END,
    lease_owner = CASE WHEN :keep_lease THEN lease_owner END,
    last_attempt_at = :attempted_at,
    last_status_code = :status_code,
    last_error_class = :error_class,
    last_error = :error,
    delivered_at = CASE WHEN :status = 'SUCCEEDED' THEN now() ELSE delivered_at END,
    updated_at = now()
WHERE id = :id AND lease_owner = :owner
  -- an endpoint disabled meanwhile failed its pending rows: a retry must not bring them back
  AND (status = 'PENDING' OR :status <> 'PENDING')
""").bindparams(bindparam("delay", type_=Float), bindparam("lease", type_=Float), bindparam("owner", type_=Uuid),
                bindparam("id", type_=Uuid), bindparam("keep_lease", type_=Boolean),
                bindparam("status", type_=String), bindparam("attempted_at", type_=DateTime(timezone=True)),
                bindparam("status_code", type_=Integer), bindparam("error_class", type_=String),
                bindparam("error", type_=String))


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- consumption ---------------------------------------------------------------------------
    async def insert_events(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(pg_insert(events_t).values(rows).on_conflict_do_nothing(index_elements=["id"]))

    async def insert_deliveries(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Insert, skipping (event, endpoint) pairs that already have a delivery; returns the new ones."""
        if not rows:
            return []
        stmt = (pg_insert(deliveries_t).values(rows)
                .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
                .returning(deliveries_t.c.id, deliveries_t.c.endpoint_id, deliveries_t.c.event_id,
                           deliveries_t.c.lease_owner))
        return list(await self.session.execute(stmt))

    async def notify_due(self) -> None:
        """Wake every replica's poller when this transaction commits."""
        await self.session.execute(select(func.pg_notify(DUE_CHANNEL, "")))

    # --- the engine ----------------------------------------------------------------------------
    async def claim_due(self, *, owner: uuid.UUID, lease: float, per_endpoint: int, limit: int,
                        busy: Sequence[uuid.UUID] = ()) -> list[ClaimedDelivery]:
        rows = await self.session.execute(_CLAIM, {"owner": owner, "lease": lease, "per_endpoint": per_endpoint,
                                                   "limit": limit, "busy": list(busy)})
        return [ClaimedDelivery(*row) for row in rows]

    async def renew_lease(self, delivery_id: uuid.UUID, owner: uuid.UUID, lease: float) -> bool:
        row = await self.session.execute(
            update(deliveries_t)
            .where(deliveries_t.c.id == delivery_id, deliveries_t.c.lease_owner == owner,
                   deliveries_t.c.status == DeliveryStatus.PENDING)
            .values(lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("l", lease, Float)))
            .returning(deliveries_t.c.id)
        )
        return row.first() is not None

    async def release(self, ids: Sequence[uuid.UUID], owner: uuid.UUID) -> None:
        """Give claimed deliveries back (not attempted): any replica's poller may take them now."""
        if ids:
            await self.session.execute(
                update(deliveries_t)
                .where(deliveries_t.c.id.in_(list(ids)), deliveries_t.c.lease_owner == owner,
                       deliveries_t.c.status == DeliveryStatus.PENDING)
                .values(lease_until=None, lease_owner=None)
            )

    async def record(self, attempts: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> None:
        if attempts:
            await self.session.execute(insert(attempts_t), attempts)
        if outcomes:
            await self.session.execute(_RECORD, outcomes)

    # --- API -----------------------------------------------------------------------------------
    async def get(self, delivery_id: uuid.UUID, *, for_update: bool = False) -> Delivery | None:
        stmt = select(Delivery).where(Delivery.id == delivery_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_event(self, event_id: uuid.UUID) -> Event | None:
        return await self.session.get(Event, event_id)

    async def list_for_endpoint(self, endpoint_id: uuid.UUID, *, status: str | None, event_type: str | None,
                                since: datetime | None, until: datetime | None, before_seq: int | None,
                                limit: int) -> list[Delivery]:
        stmt = select(Delivery).where(Delivery.endpoint_id == endpoint_id)
        if status:
            stmt = stmt.where(Delivery.status == status)
        if event_type:
            if event_type.endswith(".*"):
                stmt = stmt.where(Delivery.event_type.startswith(event_type[:-1], autoescape=True))
            else:
                stmt = stmt.where(Delivery.event_type == event_type)
        if since:
            stmt = stmt.where(Delivery.created_at >= since)
        if until:
            stmt = stmt.where(Delivery.created_at < until)
        if before_seq is not None:
            stmt = stmt.where(Delivery.seq < before_seq)
        rows = await self.session.execute(stmt.order_by(Delivery.seq.desc()).limit(limit))
        return list(rows.scalars())

    async def attempts_of(self, delivery_id: uuid.UUID) -> list[Attempt]:
        rows = await self.session.execute(
            select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number, Attempt.started_at))
        return list(rows.scalars())

    async def reschedule(self, ids: Sequence[uuid.UUID]) -> int:
        """Final deliveries -> PENDING now, with a fresh retry cycle (same event, so the same webhook-id)."""
        if not ids:
            return 0
        result = await self.session.execute(
            update(deliveries_t)
            .where(deliveries_t.c.id.in_(list(ids)), deliveries_t.c.status != DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.PENDING, cycle_attempts=0, next_attempt_at=func.now(), lease_until=None,
                    lease_owner=None, updated_at=func.now())
        )
        return result.rowcount or 0

    async def recover_candidates(self, endpoint: Endpoint, *, since: datetime, until: datetime | None,
                                 event_types: list[str] | None, statuses: list[str],
                                 include_missed: bool) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """(existing final deliveries to re-send, events in range that never got a delivery to it)."""
        d, ev = deliveries_t, events_t
        existing: list[uuid.UUID] = []
        if statuses:
            stmt = (select(d.c.id).join(ev, ev.c.id == d.c.event_id)
                    .where(d.c.endpoint_id == endpoint.id, d.c.status.in_(statuses), ev.c.occurred_at >= since))
            if until:
                stmt = stmt.where(ev.c.occurred_at < until)
            if event_types:
                stmt = stmt.where(_type_filter(d.c.event_type, event_types))
            stmt = stmt.where(d.c.event_type.notin_(["webhook.verification", "webhook.test"]))
            existing = list((await self.session.execute(stmt)).scalars())
        missed: list[uuid.UUID] = []
        if include_missed:
            stmt = (select(ev.c.id, ev.c.event_type)
                    .where(ev.c.occurred_at >= since,
                           ~select(d.c.id).where(d.c.event_id == ev.c.id, d.c.endpoint_id == endpoint.id).exists(),
                           ev.c.event_type.notin_(["webhook.verification", "webhook.test"])))
            if until:
                stmt = stmt.where(ev.c.occurred_at < until)
            if event_types:
                stmt = stmt.where(_type_filter(ev.c.event_type, event_types))
            missed = [r.id for r in await self.session.execute(stmt)
                      if any(matches(p, r.event_type) for p in endpoint.events)]
        return existing, missed

    async def create_for_events(self, endpoint_id: uuid.UUID, event_ids: Sequence[uuid.UUID]) -> int:
        if not event_ids:
            return 0
        ev = events_t
        source = select(
            func.gen_random_uuid(), ev.c.id, bindparam("endpoint_id", endpoint_id, Uuid), ev.c.event_type,
            ev.c.ordering_key, text("'PENDING'"), text("0"), text("0"), func.now(),
        ).where(ev.c.id.in_(list(event_ids)))
        stmt = (pg_insert(deliveries_t)
                .from_select(["id", "event_id", "endpoint_id", "event_type", "ordering_key", "status", "attempts",
                              "cycle_attempts", "next_attempt_at"], source)
                .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"]))
        result = await self.session.execute(stmt)
        return result.rowcount or 0

    # --- housekeeping --------------------------------------------------------------------------
    async def backlog(self) -> tuple[int, float]:
        row = (await self.session.execute(text(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) "
            "FROM webhook_deliveries WHERE status = 'PENDING'"))).one()
        return int(row[0]), float(row[1])

    async def purge(self, older_than_days: float, batch: int = 5000) -> int:
        """Attempts, final deliveries and events older than the retention; the inbox with them."""
        params = {"secs": older_than_days * 86400.0, "batch": batch}
        total = 0
        for sql in (
            "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts "
            "WHERE created_at < now() - make_interval(secs => :secs) LIMIT :batch)",
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
            "WHERE created_at < now() - make_interval(secs => :secs) AND status <> 'PENDING' LIMIT :batch)",
            "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e "
            "WHERE e.created_at < now() - make_interval(secs => :secs) AND NOT EXISTS (SELECT 1 FROM "
            "webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'PENDING') LIMIT :batch)",
            "DELETE FROM inbox WHERE (consumer, event_id) IN (SELECT consumer, event_id FROM inbox "
            "WHERE processed_at < now() - make_interval(secs => :secs) LIMIT :batch)",
        ):
            result = await self.session.execute(text(sql).bindparams(bindparam("secs", type_=Float)), params)
            total += result.rowcount or 0
        return total


def _type_filter(column: Any, patterns: list[str]) -> Any:
    clauses = []
    for p in patterns:
        if p == "*":
            return true()
        if p.endswith(".*"):
            clauses.append(column.startswith(p[:-1], autoescape=True))
        else:
            clauses.append(column == p)
    return or_(*clauses)
