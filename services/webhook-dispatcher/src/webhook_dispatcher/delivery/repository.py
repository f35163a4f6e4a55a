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
    Text,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Uuid

from webhook_dispatcher.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event

DUE_CHANNEL = "webhook_deliveries_due"


def _uuids(ids: Sequence[uuid.UUID]):  # type: ignore[no-untyped-def]
    """One array parameter (`= ANY(...)`): a recovery can touch more ids than PostgreSQL's 32,767 binds."""
    return bindparam(None, list(ids), type_=ARRAY(Uuid))


_PACE = text("""
UPDATE webhook_deliveries AS d
SET next_attempt_at = now() + make_interval(secs => (p.rn - 1) / CAST(:rate AS double precision))
FROM (SELECT d2.id, row_number() OVER (ORDER BY e.occurred_at, d2.seq) AS rn
      FROM webhook_deliveries AS d2 JOIN webhook_events AS e ON e.id = d2.event_id
      WHERE d2.recovery_id = :recovery_id AND d2.status = 'PENDING') AS p
WHERE d.id = p.id
""")

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
      AND NOT EXISTS (SELECT 1 FROM webhook_endpoint_owners o  -- another replica delivers to it
                      WHERE o.endpoint_id = e.id AND o.owner <> :owner AND o.lease_until > now())
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

@dataclass(frozen=True)
class Backlog:
    pending: int  # every PENDING delivery, whether due now or waiting for a scheduled retry
    oldest_age: float  # seconds since the oldest of them was created
    due: int  # what could be sent now: ACTIVE endpoint, due, not behind an earlier one (ordered)
    due_lag: float  # how long the most overdue of those has waited past its due time


# A delivery waiting for its next retry, or behind its aggregate's head on an ordered endpoint, or for
# a paused endpoint, is not late: only what the claim would take now counts as lag.
_BACKLOG = text("""
SELECT count(*) AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at)), 0) AS oldest_age,
       count(*) FILTER (WHERE sendable) AS due,
       COALESCE(EXTRACT(EPOCH FROM now() - min(d.next_attempt_at) FILTER (WHERE sendable)), 0) AS due_lag
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
CROSS JOIN LATERAL (SELECT e.status = 'ACTIVE' AND d.next_attempt_at <= now()
    AND (NOT e.ordered OR NOT EXISTS (
        SELECT 1 FROM webhook_deliveries p
        WHERE p.endpoint_id = d.endpoint_id AND p.status = 'PENDING'
          AND p.ordering_key = d.ordering_key AND p.seq < d.seq)) AS sendable) s
WHERE d.status = 'PENDING'
""")

# Hot paths: one fixed statement per batch, rows passed as arrays (`unnest`), so PostgreSQL and
# asyncpg reuse one prepared statement whatever the batch size.

# A consumed batch in ONE statement, run outside any explicit transaction (one round trip instead of
# BEGIN, inbox, events, deliveries, COMMIT; a statement is atomic by itself): the inbox rows, the events
# seen for the first time (`fresh`), and one delivery per (fresh routable event, ACTIVE endpoint whose
# subscriptions hold one of the patterns that match the event's name; `patterns` is that list as a JSON
# array, see `common.events.patterns_matching`). Who receives is read from the database in the same
# statement (never from a cache), once per distinct name. Deliveries are inserted in event order, so
# the `seq` of an aggregate's events follows the order they were consumed in (ordered endpoints).
# `leased` ones are already claimed by the consuming replica (`owner`), as many per endpoint as its lane
# has room for (`lane_ids`/`lane_room`; an endpoint without a lane: `room`). Left to the poller: the rest
# (they wait in the database until the lane has room, never leased and handed back) and an ordered
# endpoint's (the poller hands out the head of each aggregate's queue). Returns one row per fresh event
# and delivery (a fresh event without any delivery: NULLs).
_ROUTE = text("""
WITH batch AS (
    SELECT * FROM unnest(:ids, :event_types, :routable, :patterns, :occurred_at, :tenant_ids, :ordering_keys,
                         :bodies, :traceparents, :tracestates) WITH ORDINALITY
         AS u(id, event_type, routable, patterns, occurred_at, tenant_id, ordering_key, body, traceparent,
              tracestate, n)
), fresh AS (
    INSERT INTO inbox (consumer, event_id, event_type)
    SELECT :consumer, b.id, left(b.event_type, 100) FROM batch b
    ON CONFLICT DO NOTHING
    RETURNING event_id
), kept AS (
    INSERT INTO webhook_events (id, event_type, occurred_at, tenant_id, ordering_key, body, traceparent,
                                tracestate, created_at, updated_at)
    SELECT b.id, left(b.event_type, 100), b.occurred_at, b.tenant_id, b.ordering_key, b.body, b.traceparent,
           b.tracestate, now(), now()
    FROM batch b WHERE b.routable AND b.id IN (SELECT event_id FROM fresh)
    ON CONFLICT (id) DO NOTHING
), routes AS (  -- once per distinct name in the batch, not per event
    SELECT n.event_type, e.id AS endpoint_id, e.ordered
    FROM (SELECT DISTINCT b.event_type, b.patterns FROM batch b WHERE b.routable) n
    JOIN webhook_endpoints e
      ON e.status = 'ACTIVE' AND e.events ?| ARRAY(SELECT jsonb_array_elements_text(CAST(n.patterns AS jsonb)))
), delivered AS (
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, event_type, ordering_key, status, attempts,
                                    cycle_attempts, next_attempt_at, lease_until, lease_owner, created_at,
                                    updated_at)
    SELECT gen_random_uuid(), x.id, x.endpoint_id, left(x.event_type, 100), x.ordering_key, 'PENDING', 0, 0,
           now(), CASE WHEN t.take THEN now() + make_interval(secs => :lease) END,
           CASE WHEN t.take THEN CAST(:owner AS uuid) END, now(), now()
    FROM (SELECT b.id, b.n, b.event_type, b.ordering_key, r.endpoint_id, r.ordered,
                 row_number() OVER (PARTITION BY r.endpoint_id ORDER BY b.n) AS k
          FROM batch b JOIN routes r ON r.event_type = b.event_type
          WHERE b.routable AND b.id IN (SELECT event_id FROM fresh)) x
    LEFT JOIN unnest(:lane_ids, :lane_room) AS q(endpoint_id, room) ON q.endpoint_id = x.endpoint_id
    CROSS JOIN LATERAL (SELECT :leased AND NOT x.ordered AND x.k <= COALESCE(q.room, :room) AS take) t
    ORDER BY x.n, x.endpoint_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id, endpoint_id, event_id, lease_owner
)
SELECT f.event_id, d.id, d.endpoint_id, d.lease_owner
FROM fresh f LEFT JOIN delivered d ON d.event_id = f.event_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("event_types", type_=ARRAY(String)),
                bindparam("routable", type_=ARRAY(Boolean)), bindparam("patterns", type_=ARRAY(Text)),
                bindparam("occurred_at", type_=ARRAY(DateTime(timezone=True))),
                bindparam("tenant_ids", type_=ARRAY(Uuid)), bindparam("ordering_keys", type_=ARRAY(String)),
                bindparam("bodies", type_=ARRAY(Text)), bindparam("traceparents", type_=ARRAY(String)),
                bindparam("tracestates", type_=ARRAY(String)), bindparam("consumer", type_=String),
                bindparam("leased", type_=Boolean), bindparam("lane_ids", type_=ARRAY(Uuid)),
                bindparam("lane_room", type_=ARRAY(Integer)), bindparam("room", type_=Integer),
                bindparam("lease", type_=Float),
                bindparam("owner", type_=Uuid)).columns(event_id=Uuid, id=Uuid, endpoint_id=Uuid,
                                                         lease_owner=Uuid)

# Finished attempts, one round trip per batch: the attempt rows, and each delivery's new state. The
# lease is kept only when the retry waits in this replica's memory (short delays); otherwise the poller
# of any replica takes it when due. An endpoint disabled meanwhile failed its pending rows: a retry must
# not bring them back.
_RECORD_ATTEMPTS = text("""
WITH attempts AS (
    INSERT INTO webhook_attempts (id, delivery_id, endpoint_id, number, started_at, duration_ms, url, target_ip,
                                  request_headers, status_code, response_headers, response_body, success,
                                  error_class, error, created_at, updated_at)
    SELECT a.id, a.delivery_id, a.endpoint_id, a.number, a.started_at, a.duration_ms, a.url, a.target_ip,
           CAST(a.request_headers AS jsonb), a.status_code, CAST(a.response_headers AS jsonb), a.response_body,
           a.success, a.error_class, a.error, now(), now()
    FROM unnest(:ids, :delivery_ids, :endpoint_ids, :numbers, :started_at, :durations, :urls, :target_ips,
                :request_headers, :status_codes, :response_headers, :response_bodies, :successes, :error_classes,
                :errors)
         AS a(id, delivery_id, endpoint_id, number, started_at, duration_ms, url, target_ip, request_headers,
              status_code, response_headers, response_body, success, error_class, error)
)
UPDATE webhook_deliveries d SET
    status = u.status,
    attempts = d.attempts + 1,
    cycle_attempts = d.cycle_attempts + 1,
    next_attempt_at = CASE WHEN u.status = 'PENDING' THEN now() + make_interval(secs => u.delay) END,
    lease_until = CASE WHEN u.keep_lease THEN now() + make_interval(secs => u.delay + :lease) END,
    lease_owner = CASE WHEN u.keep_lease THEN d.lease_owner END,
    last_attempt_at = u.attempted_at,
    last_status_code = u.status_code,
    last_error_class = u.error_class,
    last_error = u.error,
    delivered_at = CASE WHEN u.status = 'SUCCEEDED' THEN now() ELSE d.delivered_at END,
    updated_at = now()
FROM unnest(:delivery_ids, :statuses, :delays, :keep_leases, :started_at, :status_codes, :error_classes,
            :outcome_errors)
     AS u(id, status, delay, keep_lease, attempted_at, status_code, error_class, error)
WHERE d.id = u.id AND d.lease_owner = :owner AND (d.status = 'PENDING' OR u.status <> 'PENDING')
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("delivery_ids", type_=ARRAY(Uuid)),
                bindparam("endpoint_ids", type_=ARRAY(Uuid)), bindparam("numbers", type_=ARRAY(Integer)),
                bindparam("started_at", type_=ARRAY(DateTime(timezone=True))),
                bindparam("durations", type_=ARRAY(Integer)), bindparam("urls", type_=ARRAY(String)),
                bindparam("target_ips", type_=ARRAY(String)), bindparam("request_headers", type_=ARRAY(Text)),
                bindparam("status_codes", type_=ARRAY(Integer)), bindparam("response_headers", type_=ARRAY(Text)),
                bindparam("response_bodies", type_=ARRAY(Text)), bindparam("successes", type_=ARRAY(Boolean)),
                bindparam("error_classes", type_=ARRAY(String)), bindparam("errors", type_=ARRAY(Text)),
                bindparam("statuses", type_=ARRAY(String)), bindparam("delays", type_=ARRAY(Float)),
                bindparam("keep_leases", type_=ARRAY(Boolean)), bindparam("outcome_errors", type_=ARRAY(Text)),
                bindparam("lease", type_=Float), bindparam("owner", type_=Uuid))


def _columns(rows: list[dict[str, Any]], names: dict[str, str]) -> dict[str, list[Any]]:
    """Row dicts -> one list per parameter ({param: row key})."""
    return {param: [r[key] for r in rows] for param, key in names.items()}


class DeliveryRepository:
    """Takes a session; the engine's hot paths pass a Core connection (only `execute` is used there)."""

    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self.session = session  # type: ignore[assignment]

    # --- consumption ---------------------------------------------------------------------------
    async def route(self, rows: list[dict[str, Any]], *, consumer: str, owner: uuid.UUID, lease: float,
                    leased: bool, room: int, lane_room: dict[uuid.UUID, int] | None = None) -> list[Any]:
        """A consumed batch (see `_ROUTE`): rows of (event_id, id, endpoint_id, lease_owner), one per fresh
        event and delivery (a fresh event without any delivery: id NULL)."""
        params = _columns(rows, {
            "ids": "id", "event_types": "event_type", "routable": "routable", "patterns": "patterns",
            "occurred_at": "occurred_at", "tenant_ids": "tenant_id", "ordering_keys": "ordering_key",
            "bodies": "body", "traceparents": "traceparent", "tracestates": "tracestate"})
        result = await self.session.execute(_ROUTE, params | {"consumer": consumer, "owner": owner, "lease": lease,
                                                              "leased": leased, "room": room,
                                                              "lane_ids": list(lane_room or {}),
                                                              "lane_room": list((lane_room or {}).values())})
        return list(result)

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

    async def record(self, attempts: list[dict[str, Any]], *, owner: uuid.UUID, lease: float) -> None:
        """Finished attempts (attempt columns plus the delivery's `status`, `delay`, `keep_lease` and
        `outcome_error`, the error shown on the delivery)."""
        if attempts:
            await self.session.execute(_RECORD_ATTEMPTS, _columns(attempts, {
                "ids": "id", "delivery_ids": "delivery_id", "endpoint_ids": "endpoint_id", "numbers": "number",
                "started_at": "started_at", "durations": "duration_ms", "urls": "url", "target_ips": "target_ip",
                "request_headers": "request_headers", "status_codes": "status_code",
                "response_headers": "response_headers", "response_bodies": "response_body",
                "successes": "success", "error_classes": "error_class", "errors": "error", "statuses": "status",
                "delays": "delay", "keep_leases": "keep_lease", "outcome_errors": "outcome_error"}) | {
                "owner": owner, "lease": lease})

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

    async def reschedule(self, ids: Sequence[uuid.UUID], *, recovery_id: uuid.UUID | None = None) -> int:
        """Final deliveries -> PENDING now, with a fresh retry cycle (same event, so the same webhook-id)."""
        if not ids:
            return 0
        values: dict[str, Any] = dict(status=DeliveryStatus.PENDING, cycle_attempts=0, next_attempt_at=func.now(),
                                      lease_until=None, lease_owner=None, updated_at=func.now())
        if recovery_id is not None:
            values["recovery_id"] = recovery_id
        result = await self.session.execute(
            update(deliveries_t)
            .where(deliveries_t.c.id == any_(_uuids(ids)), deliveries_t.c.status != DeliveryStatus.PENDING)
            .values(**values)
        )
        return result.rowcount or 0

    async def pace(self, recovery_id: uuid.UUID, rate_per_second: float) -> None:
        """Spread a recovery's pending deliveries over time, oldest event first, at `rate_per_second`:
        the poller then finds them due a few at a time and live traffic keeps flowing beside them."""
        await self.session.execute(_PACE, {"recovery_id": recovery_id, "rate": rate_per_second})

    async def recovery_progress(self, recovery_id: uuid.UUID) -> dict[str, int]:
        rows = await self.session.execute(
            select(deliveries_t.c.status, func.count()).where(deliveries_t.c.recovery_id == recovery_id)
            .group_by(deliveries_t.c.status))
        return {status: count for status, count in rows}

    def recover_existing(self, endpoint: Endpoint, *, since: datetime, until: datetime | None,
                         event_types: list[str] | None, status: str) -> Any:
        """SELECT of the ids of this endpoint's final deliveries in `status` whose event is in the range."""
        d, ev = deliveries_t, events_t
        stmt = (select(d.c.id).join(ev, ev.c.id == d.c.event_id)
                .where(d.c.endpoint_id == endpoint.id, d.c.status == status, ev.c.occurred_at >= since,
                       d.c.event_type.notin_(ONE_OFF_TYPES)))
        return _narrowed(stmt, d.c.event_type, until, event_types)

    def recover_missed(self, endpoint: Endpoint, *, since: datetime, until: datetime | None,
                       event_types: list[str] | None) -> Any:
        """SELECT of the events in range the endpoint subscribes to but never got a delivery of: received
        while it existed but was not ACTIVE (never a backfill of what happened before it was created)."""
        d, ev = deliveries_t, events_t
        stmt = (select(ev.c.id)
                .where(ev.c.occurred_at >= since, ev.c.created_at >= endpoint.created_at,
                       _type_filter(ev.c.event_type, list(endpoint.events)),
                       ~select(d.c.id).where(d.c.event_id == ev.c.id, d.c.endpoint_id == endpoint.id).exists(),
                       ev.c.event_type.notin_(ONE_OFF_TYPES)))
        return _narrowed(stmt, ev.c.event_type, until, event_types)

    async def ids(self, stmt: Any) -> list[uuid.UUID]:
        return list((await self.session.execute(stmt)).scalars())

    async def count(self, stmt: Any) -> int:
        return (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()

    async def earliest_failed_event(self, endpoint_id: uuid.UUID) -> datetime | None:
        """When the oldest event happened whose delivery to this endpoint failed after its last success
        (the current outage; such an event is older than the failure that ended its retries)."""
        d, ev = deliveries_t, events_t
        last_ok = (select(func.max(d.c.delivered_at))
                   .where(d.c.endpoint_id == endpoint_id, d.c.status == DeliveryStatus.SUCCEEDED).scalar_subquery())
        return (await self.session.execute(
            select(func.min(ev.c.occurred_at)).join_from(d, ev, ev.c.id == d.c.event_id)
            .where(d.c.endpoint_id == endpoint_id, d.c.status == DeliveryStatus.FAILED,
                   d.c.event_type.notin_(ONE_OFF_TYPES),
                   d.c.last_attempt_at >= func.coalesce(last_ok, text("'-infinity'::timestamptz"))))).scalar()

    async def create_for_events(self, endpoint_id: uuid.UUID, event_ids: Sequence[uuid.UUID], *,
                                recovery_id: uuid.UUID | None = None) -> int:
        if not event_ids:
            return 0
        ev = events_t
        source = select(
            func.gen_random_uuid(), ev.c.id, bindparam("endpoint_id", endpoint_id, Uuid), ev.c.event_type,
            ev.c.ordering_key, text("'PENDING'"), text("0"), text("0"), func.now(),
            bindparam("recovery_id", recovery_id, Uuid),
        ).where(ev.c.id == any_(_uuids(event_ids))).order_by(ev.c.occurred_at, ev.c.created_at)  # seq = event order
        stmt = (pg_insert(deliveries_t)
                .from_select(["id", "event_id", "endpoint_id", "event_type", "ordering_key", "status", "attempts",
                              "cycle_attempts", "next_attempt_at", "recovery_id"], source)
                .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"]))
        result = await self.session.execute(stmt)
        return result.rowcount or 0

    # --- housekeeping --------------------------------------------------------------------------
    async def backlog(self) -> Backlog:
        row = (await self.session.execute(_BACKLOG)).one()
        return Backlog(int(row.pending), float(row.oldest_age), int(row.due), float(row.due_lag))

    async def purge(self, older_than_days: float, batch: int) -> int:
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


ONE_OFF_TYPES = ("webhook.verification", "webhook.test")  # sent once on request, never recovered


def _narrowed(stmt: Any, type_column: Any, until: datetime | None, event_types: list[str] | None) -> Any:
    """A recover's optional bounds: events before `until`, of these types or patterns."""
    if until:
        stmt = stmt.where(events_t.c.occurred_at < until)
    if event_types:
        stmt = stmt.where(_type_filter(type_column, event_types))
    return stmt


def _type_filter(column: Any, patterns: list[str]) -> Any:
    """`*`, exact names and prefix wildcards (`lead.*`), as `common.events.matches` reads them."""
    clauses = []
    for p in patterns:
        if p == "*":
            return true()
        if p.endswith(".*"):
            clauses.append(column.startswith(p[:-1], autoescape=True))
        else:
            clauses.append(column == p)
    return or_(*clauses)
