"""All SQL about endpoints (STYLE habit 2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import any_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Text, Uuid

from webhook_dispatcher.models import DeliveryStatus, Endpoint, EndpointKind, EndpointStatus

CHANGED_CHANNEL = "webhook_endpoint_changed"
endpoints_t = Endpoint.__table__


class EndpointRepository:
    """Takes a session; the engine's hot paths pass a Core connection (only `execute` is used there)."""

    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self.session = session  # type: ignore[assignment]

    async def get(self, endpoint_id: uuid.UUID, *, for_update: bool = False,
                  include_deleted: bool = False, kind: EndpointKind | None = None) -> Endpoint | None:
        """`kind`: only an endpoint of that kind (the webhooks API never shows n8n flows' endpoints)."""
        stmt = select(Endpoint).where(Endpoint.id == endpoint_id)
        if kind is not None:
            stmt = stmt.where(Endpoint.kind == kind)
        if not include_deleted:
            stmt = stmt.where(Endpoint.status != EndpointStatus.DELETED)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_many(self, ids: Sequence[uuid.UUID] | None = None) -> list[Endpoint]:
        """Endpoints that can still deliver (not deleted); all of them when `ids` is None."""
        stmt = select(Endpoint).where(Endpoint.status != EndpointStatus.DELETED)
        if ids is not None:
            stmt = stmt.where(Endpoint.id.in_(list(ids)))
        return list((await self.session.execute(stmt)).scalars())

    async def list(self, *, statuses: Sequence[str] = (), patterns: Sequence[str] | None = None,
                   q: str | None = None, limit: int, offset: int,
                   kind: EndpointKind = EndpointKind.WEBHOOK) -> tuple[list[Endpoint], int]:
        """`statuses`: any of them; `patterns`: subscribed to at least one of these patterns, as
        written; `q`: case-insensitive substring of the URL or the description."""
        stmt = select(Endpoint).where(Endpoint.status != EndpointStatus.DELETED, Endpoint.kind == kind)
        if statuses:
            stmt = stmt.where(Endpoint.status.in_(list(statuses)))
        if patterns is not None:
            stmt = stmt.where(Endpoint.events.has_any(bindparam("patterns", list(patterns), ARRAY(Text))))
        if q:
            stmt = stmt.where(or_(Endpoint.url.icontains(q, autoescape=True),
                                  Endpoint.description.icontains(q, autoescape=True)))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(stmt.order_by(Endpoint.created_at.desc(), Endpoint.id)
                                          .limit(limit).offset(offset))
        return list(rows.scalars()), total

    async def add(self, endpoint: Endpoint) -> None:
        self.session.add(endpoint)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def notify_changed(self, endpoint_id: uuid.UUID) -> None:
        """Every dispatcher replica reloads this endpoint when the transaction commits."""
        await self.session.execute(select(func.pg_notify(CHANGED_CHANNEL, str(endpoint_id))))

    async def mark_failing(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        """Start (or keep) the failing clock; returns (id, failing_since, url) of ACTIVE endpoints."""
        t = endpoints_t
        rows = await self.session.execute(
            update(t)
            .where(t.c.id == any_(bindparam("ids", list(ids), ARRAY(Uuid))), t.c.status == EndpointStatus.ACTIVE.value)
            .values(failing_since=func.coalesce(t.c.failing_since, func.now()))
            .returning(t.c.id, t.c.failing_since, t.c.url)
        )
        return list(rows)

    async def clear_failing(self, ids: Sequence[uuid.UUID]) -> None:
        t = endpoints_t
        await self.session.execute(
            update(t).where(t.c.id == any_(bindparam("ids", list(ids), ARRAY(Uuid))), t.c.failing_since.is_not(None))
            .values(failing_since=None))

    async def disable(self, endpoint_id: uuid.UUID, reason: str) -> Any | None:
        """ACTIVE -> DISABLED (once); its pending deliveries become FAILED (replayable with recover).

        Returns (id, url, failing_since) when this call disabled it, None when it was not ACTIVE.
        """
        t = endpoints_t
        row = (await self.session.execute(
            update(t)
            .where(t.c.id == endpoint_id, t.c.status == EndpointStatus.ACTIVE.value)
            .values(status=EndpointStatus.DISABLED.value, status_reason=reason[:1000], disabled_at=func.now(),
                    updated_at=func.now())
            .returning(t.c.id, t.c.url, t.c.failing_since)
        )).first()
        if row is not None:
            await self.fail_pending_deliveries(endpoint_id, f"endpoint disabled: {reason}")
            await self.notify_changed(endpoint_id)
        return row

    async def fail_pending_deliveries(self, endpoint_id: uuid.UUID, reason: str) -> None:
        await self.session.execute(
            text("UPDATE webhook_deliveries SET status = :failed, next_attempt_at = NULL, lease_until = NULL, "
                 "last_error = :reason, updated_at = now() "
                 "WHERE endpoint_id = :endpoint_id AND status = :pending"),
            {"failed": DeliveryStatus.FAILED.value, "pending": DeliveryStatus.PENDING.value,
             "reason": reason[:1000], "endpoint_id": endpoint_id},
        )

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(select(Endpoint.status, func.count()).group_by(Endpoint.status))
        return {r[0]: r[1] for r in rows}
