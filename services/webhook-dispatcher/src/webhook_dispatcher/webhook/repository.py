"""All SQL about endpoints (STYLE habit 2). Their deliveries are `DeliveryRepository`'s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Text, Uuid

from common.api import Total
from common.db.repository import Repository
from webhook_dispatcher.models import EndpointKind, EndpointStatus, WebhookEndpoint

CHANGED_CHANNEL = "webhook_endpoint_changed"
endpoints_t = WebhookEndpoint.__table__  # type: ignore[attr-defined]


# --- endpoint ownership (worker.ownership): which replica delivers to an endpoint now -------------
# Rows are always locked in endpoint id order (here, and by _LOCK_OWNED before renewing or giving up), so
# replicas taking and renewing overlapping sets of endpoints cannot deadlock.
_ACQUIRE = text("""
INSERT INTO webhook_endpoint_owners AS o (endpoint_id, owner, lease_until)
SELECT e.id, :owner, now() + make_interval(secs => :lease)
FROM webhook_endpoints e WHERE e.id = ANY(:ids) ORDER BY e.id
ON CONFLICT (endpoint_id) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
WHERE o.owner = EXCLUDED.owner OR o.lease_until < now()
RETURNING o.endpoint_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

_LOCK_OWNED = text("""
SELECT endpoint_id FROM webhook_endpoint_owners WHERE owner = :owner AND endpoint_id = ANY(:ids)
ORDER BY endpoint_id FOR UPDATE
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid))

_LOCK_ALL_OWNED = text(
    "SELECT endpoint_id FROM webhook_endpoint_owners WHERE owner = :owner ORDER BY endpoint_id FOR UPDATE"
).bindparams(bindparam("owner", type_=Uuid))

_RENEW = text("""
UPDATE webhook_endpoint_owners SET lease_until = now() + make_interval(secs => :lease)
WHERE owner = :owner AND endpoint_id = ANY(:ids)
RETURNING endpoint_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

_RELEASE = text("DELETE FROM webhook_endpoint_owners WHERE owner = :owner AND endpoint_id = ANY(:ids)"
                ).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid))




def _ids(ids: Sequence[uuid.UUID]):  # type: ignore[no-untyped-def]
    return any_(bindparam("ids", list(ids), ARRAY(Uuid)))


class WebhookEndpointRepository(Repository[WebhookEndpoint]):
    """Takes a session; the worker's hot paths pass a Core connection (only `execute` is used there)."""

    model = WebhookEndpoint

    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        super().__init__(session)  # type: ignore[arg-type]

    async def get(self, endpoint_id: uuid.UUID, *, for_update: bool = False,  # type: ignore[override]
                  include_deleted: bool = False, kind: EndpointKind | None = None) -> WebhookEndpoint | None:
        """`kind`: only an endpoint of that kind (the webhooks API never shows n8n flows' endpoints)."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if kind is not None:
            stmt = stmt.where(WebhookEndpoint.kind == kind)
        if not include_deleted:
            stmt = stmt.where(WebhookEndpoint.status != EndpointStatus.DELETED)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one(stmt)

    async def get_many(self, ids: Sequence[uuid.UUID] | None = None, *,
                       kind: EndpointKind | None = None) -> list[WebhookEndpoint]:
        """Endpoints that can still deliver (not deleted); all of them when `ids` is None."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.status != EndpointStatus.DELETED)
        if ids is not None:
            stmt = stmt.where(WebhookEndpoint.id.in_(list(ids)))  # type: ignore[attr-defined]
        if kind is not None:
            stmt = stmt.where(WebhookEndpoint.kind == kind)
        return await self.all(stmt)

    async def list(self, *, statuses: Sequence[str] = (), patterns: Sequence[str] | None = None,
                   q: str | None = None, limit: int, offset: int, cursor: str | None = None,
                   kind: EndpointKind = EndpointKind.WEBHOOK) -> tuple[list[WebhookEndpoint], Total]:
        """`statuses`: any of them; `patterns`: subscribed to at least one of these patterns, as
        written; `q`: searched in the URL and the description (`common.db.repository.matching`). Newest first."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.status != EndpointStatus.DELETED, WebhookEndpoint.kind == kind)
        if statuses:
            stmt = stmt.where(WebhookEndpoint.status.in_(list(statuses)))  # type: ignore[attr-defined]
        if patterns is not None:
            stmt = stmt.where(WebhookEndpoint.events.has_any(  # type: ignore[attr-defined]
                bindparam("patterns", list(patterns), ARRAY(Text))))
        return await self.search_page(stmt, [WebhookEndpoint.url, WebhookEndpoint.description], q,  # type: ignore[list-item]
                                      limit=limit, offset=offset, cursor=cursor, keyset=True,
                                      order_by=[WebhookEndpoint.created_at.desc()])  # type: ignore[attr-defined]

    async def notify_changed(self, endpoint_id: uuid.UUID) -> None:
        """Every dispatcher replica reloads this endpoint when the transaction commits."""
        await self.session.execute(select(func.pg_notify(CHANGED_CHANNEL, str(endpoint_id))))

    # --- health (webhook.health) ----------------------------------------------------------------
    async def mark_failing(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        """Start (or keep) the failing clock; returns (id, failing_since, url) of ACTIVE endpoints."""
        t = endpoints_t
        rows = await self.session.execute(
            update(t).where(t.c.id == _ids(ids), t.c.status == EndpointStatus.ACTIVE.value)
            .values(failing_since=func.coalesce(t.c.failing_since, func.now()))
            .returning(t.c.id, t.c.failing_since, t.c.url))
        return list(rows)

    async def clear_failing(self, ids: Sequence[uuid.UUID]) -> None:
        t = endpoints_t
        await self.session.execute(
            update(t).where(t.c.id == _ids(ids), t.c.failing_since.is_not(None)).values(failing_since=None))

    async def disable(self, endpoint_id: uuid.UUID, reason: str) -> Any | None:
        """ACTIVE -> DISABLED, once: (id, url, failing_since) when this call disabled it, else None."""
        t = endpoints_t
        return (await self.session.execute(
            update(t).where(t.c.id == endpoint_id, t.c.status == EndpointStatus.ACTIVE.value)
            .values(status=EndpointStatus.DISABLED.value, status_reason=reason[:1000], disabled_at=func.now(),
                    updated_at=func.now())
            .returning(t.c.id, t.c.url, t.c.failing_since))).first()

    async def reenable(self, endpoint_id: uuid.UUID, reason: str | None) -> Any | None:
        """DISABLED -> ACTIVE, its failing clock reset: (id, url) when this call re-enabled it, else None."""
        t = endpoints_t
        return (await self.session.execute(
            update(t).where(t.c.id == endpoint_id, t.c.status == EndpointStatus.DISABLED.value)
            .values(status=EndpointStatus.ACTIVE.value, status_reason=reason, failing_since=None, disabled_at=None,
                    paused_at=None, updated_at=func.now())
            .returning(t.c.id, t.c.url))).first()

    # --- ownership (worker.ownership) -----------------------------------------------------------
    async def take_ownership(self, ids: Sequence[uuid.UUID], owner: uuid.UUID, lease: float) -> list[uuid.UUID]:
        """The endpoints among `ids` now leased to `owner` (free, already its own, or an expired lease)."""
        return list((await self.session.execute(_ACQUIRE, {"ids": list(ids), "owner": owner,
                                                           "lease": lease})).scalars().all())

    async def lock_ownership(self, ids: Sequence[uuid.UUID], owner: uuid.UUID) -> None:
        """Lock `owner`'s leases on these endpoints, in id order, before renewing or giving them up."""
        await self.session.execute(_LOCK_OWNED, {"ids": list(ids), "owner": owner})

    async def lock_all_ownership(self, owner: uuid.UUID) -> list[uuid.UUID]:
        """Lock every lease `owner` holds, in id order; returns their endpoints."""
        return list((await self.session.execute(_LOCK_ALL_OWNED, {"owner": owner})).scalars().all())

    async def renew_ownership(self, ids: Sequence[uuid.UUID], owner: uuid.UUID, lease: float) -> set[uuid.UUID]:
        """Renew `owner`'s leases; returns the endpoints it still held."""
        return set((await self.session.execute(_RENEW, {"ids": list(ids), "owner": owner,
                                                        "lease": lease})).scalars().all())

    async def give_up_ownership(self, ids: Sequence[uuid.UUID], owner: uuid.UUID) -> None:
        await self.session.execute(_RELEASE, {"ids": list(ids), "owner": owner})

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(WebhookEndpoint.status, func.count()).group_by(WebhookEndpoint.status))  # type: ignore[arg-type]
        return {r[0]: r[1] for r in rows}
