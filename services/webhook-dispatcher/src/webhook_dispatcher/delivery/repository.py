"""All SQL about events, deliveries, attempts and recoveries (STYLE habit 2): the only writer of those
rows. The worker's hot paths run the statements of `sql.py` on a Core connection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import any_, bindparam, func, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Float, Uuid

from common.db.repository import Repository
from webhook_dispatcher.delivery import sql
from webhook_dispatcher.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    Event,
    Recovery,
    WebhookEndpoint,
)

DUE_CHANNEL = "webhook_deliveries_due"

events_t = Event.__table__  # type: ignore[attr-defined]
deliveries_t = Delivery.__table__  # type: ignore[attr-defined]


def _uuids(ids: Sequence[uuid.UUID]):  # type: ignore[no-untyped-def]
    """One array parameter (`= ANY(...)`): a recovery can touch more ids than PostgreSQL's 32,767 binds."""
    return bindparam(None, list(ids), type_=ARRAY(Uuid))


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


@dataclass(frozen=True)
class Backlog:
    pending: int  # every PENDING delivery, whether due now or waiting for a scheduled retry
    oldest_age: float  # seconds since the oldest of them was created
    due: int  # what could be sent now: ACTIVE endpoint, due, not behind an earlier one (ordered)
    due_lag: float  # how long the most overdue of those has waited past its due time


def _columns(rows: list[dict[str, Any]], names: dict[str, str]) -> dict[str, list[Any]]:
    """Row dicts -> one list per parameter ({param: row key})."""
    return {param: [r[key] for r in rows] for param, key in names.items()}


class DeliveryRepository(Repository[Delivery]):
    """Takes a session; the worker's hot paths pass a Core connection (only `execute` is used there)."""

    model = Delivery

    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        super().__init__(session)  # type: ignore[arg-type]

    # --- consumption ---------------------------------------------------------------------------
    async def route(self, rows: list[dict[str, Any]], *, consumer: str, owner: uuid.UUID, lease: float,
                    leased: bool, room: int, lane_room: dict[uuid.UUID, int] | None = None) -> list[Any]:
        """A consumed batch (see `sql.ROUTE`): rows of (event_id, id, endpoint_id, lease_owner), one per fresh
        event and delivery (a fresh event without any delivery: id NULL)."""
        params = _columns(rows, {
            "ids": "id", "event_types": "event_type", "routable": "routable", "patterns": "patterns",
            "occurred_at": "occurred_at", "tenant_ids": "tenant_id", "ordering_keys": "ordering_key",
            "bodies": "body", "traceparents": "traceparent", "tracestates": "tracestate"})
        result = await self.session.execute(sql.ROUTE, params | {"consumer": consumer, "owner": owner, "lease": lease,
                                                              "leased": leased, "room": room,
                                                              "lane_ids": list(lane_room or {}),
                                                              "lane_room": list((lane_room or {}).values())})
        return list(result)

    async def notify_due(self) -> None:
        """Wake every replica's poller when this transaction commits."""
        await self.session.execute(select(func.pg_notify(DUE_CHANNEL, "")))

    # --- the worker ----------------------------------------------------------------------------
    async def claim_due(self, *, owner: uuid.UUID, lease: float, per_endpoint: int, limit: int,
                        busy: Sequence[uuid.UUID] = ()) -> list[ClaimedDelivery]:
        rows = await self.session.execute(sql.CLAIM, {"owner": owner, "lease": lease, "per_endpoint": per_endpoint,
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

    async def release(self, ids: Sequence[uuid.UUID] | None, owner: uuid.UUID) -> int:
        """Give claimed deliveries back (not attempted): any replica's poller may take them now. `ids` None:
        every one `owner` holds. Returns how many were given back."""
        if ids is not None and not ids:
            return 0
        stmt = update(deliveries_t).where(deliveries_t.c.lease_owner == owner,
                                          deliveries_t.c.status == DeliveryStatus.PENDING)
        if ids is not None:
            stmt = stmt.where(deliveries_t.c.id.in_(list(ids)))
        result = await self.session.execute(stmt.values(lease_until=None, lease_owner=None))
        return result.rowcount or 0

    async def record(self, attempts: list[dict[str, Any]], *, owner: uuid.UUID, lease: float) -> None:
        """Finished attempts (attempt columns plus the delivery's `status`, `delay`, `keep_lease` and
        `outcome_error`, the error shown on the delivery)."""
        if attempts:
            await self.session.execute(sql.RECORD_ATTEMPTS, _columns(attempts, {
                "ids": "id", "delivery_ids": "delivery_id", "endpoint_ids": "endpoint_id", "numbers": "number",
                "started_at": "started_at", "durations": "duration_ms", "urls": "url", "target_ips": "target_ip",
                "request_headers": "request_headers", "status_codes": "status_code",
                "response_headers": "response_headers", "response_bodies": "response_body",
                "successes": "success", "error_classes": "error_class", "errors": "error", "statuses": "status",
                "delays": "delay", "keep_leases": "keep_lease", "outcome_errors": "outcome_error"}) | {
                "owner": owner, "lease": lease})

    # --- API -----------------------------------------------------------------------------------
    async def get_event(self, event_id: uuid.UUID) -> Event | None:
        return await self.session.get(Event, event_id)

    async def endpoint(self, endpoint_id: uuid.UUID, *, kind: str | None = None) -> WebhookEndpoint | None:
        """The (not deleted) endpoint whose deliveries are asked for; `kind`: only one of that kind."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.status != EndpointStatus.DELETED)
        if kind is not None:
            stmt = stmt.where(WebhookEndpoint.kind == kind)
        return (await self.session.execute(stmt)).scalar_one_or_none()

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
        return (await self.attempts_of_many([delivery_id]))[delivery_id]

    async def attempts_of_many(self, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Attempt]]:
        out: dict[uuid.UUID, list[Attempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return out
        rows = await self.session.execute(
            select(Attempt).where(Attempt.delivery_id.in_(list(delivery_ids)))  # type: ignore[attr-defined]
            .order_by(Attempt.delivery_id, Attempt.number, Attempt.started_at))
        for attempt in rows.scalars():
            out[attempt.delivery_id].append(attempt)
        return out

    async def record_one_off(self, event: Event, delivery: Delivery, attempt: Attempt) -> None:
        """A message sent once on request (challenge, test) with its single attempt, for the delivery log."""
        for row in (event, delivery, attempt):  # no relationships declared: foreign-key order by hand
            self.session.add(row)
            await self.session.flush()

    async def fail_pending(self, endpoint_id: uuid.UUID, reason: str) -> None:
        """The endpoint stopped (deleted, disabled, flow deactivated): what it still had pending is FAILED
        (replayable with recover)."""
        await self.session.execute(
            update(deliveries_t)
            .where(deliveries_t.c.endpoint_id == endpoint_id, deliveries_t.c.status == DeliveryStatus.PENDING.value)
            .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None, lease_until=None,
                    last_error=reason[:1000], updated_at=func.now()))

    # --- recoveries ----------------------------------------------------------------------------
    async def add_recovery(self, recovery: Recovery) -> Recovery:
        self.session.add(recovery)
        await self.session.flush()
        return recovery

    async def get_recovery(self, endpoint_id: uuid.UUID, recovery_id: uuid.UUID) -> Recovery | None:
        return (await self.session.execute(select(Recovery).where(
            Recovery.id == recovery_id, Recovery.endpoint_id == endpoint_id))).scalar_one_or_none()

    async def recoveries_of(self, endpoint_id: uuid.UUID, *, limit: int) -> list[Recovery]:
        """Newest first."""
        rows = await self.session.scalars(select(Recovery).where(Recovery.endpoint_id == endpoint_id)
                                          .order_by(Recovery.created_at.desc(), Recovery.id.desc())  # type: ignore[attr-defined]
                                          .limit(limit))
        return list(rows.all())

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
        await self.session.execute(sql.PACE, {"recovery_id": recovery_id, "rate": rate_per_second})

    async def recovery_progress(self, recovery_id: uuid.UUID) -> dict[str, int]:
        rows = await self.session.execute(
            select(deliveries_t.c.status, func.count()).where(deliveries_t.c.recovery_id == recovery_id)
            .group_by(deliveries_t.c.status))
        return {status: count for status, count in rows}

    def recover_existing(self, endpoint: WebhookEndpoint, *, since: datetime, until: datetime | None,
                         event_types: list[str] | None, status: str) -> Any:
        """SELECT of the ids of this endpoint's final deliveries in `status` whose event is in the range."""
        d, ev = deliveries_t, events_t
        stmt = (select(d.c.id).join(ev, ev.c.id == d.c.event_id)
                .where(d.c.endpoint_id == endpoint.id, d.c.status == status, ev.c.occurred_at >= since,
                       d.c.event_type.notin_(ONE_OFF_TYPES)))
        return _narrowed(stmt, d.c.event_type, until, event_types)

    def recover_missed(self, endpoint: WebhookEndpoint, *, since: datetime, until: datetime | None,
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
        row = (await self.session.execute(sql.BACKLOG)).one()
        return Backlog(int(row.pending), float(row.oldest_age), int(row.due), float(row.due_lag))

    async def purge(self, older_than_days: float, batch: int) -> int:
        """Attempts, final deliveries and events older than the retention, and the inbox with them: at most
        `batch` rows per table; returns how many were deleted."""
        params = {"secs": older_than_days * 86400.0, "batch": batch}
        total = 0
        for statement in sql.PURGE:
            total += (await self.session.execute(statement, params)).rowcount or 0
        return total

    async def try_purge_lock(self, key: int) -> bool:
        """One replica purges at a time (a transaction-scoped advisory lock)."""
        return bool((await self.session.execute(select(func.pg_try_advisory_xact_lock(key)))).scalar())


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
