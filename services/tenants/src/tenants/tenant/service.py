"""Tenant lifecycle rules. Every change adds exactly one `tenant.*` event to the outbox."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import KeysetPage, PageParams
from common.db import commit_each_statement, utcnow
from common.db.engine import Database
from common.errors import Conflict, NotFound, Unprocessable
from common.events import build_event
from tenants.events import outbox
from tenants.models import Plan, Tenant
from tenants.plan.cache import plans
from tenants.tenant.repository import DuplicateName, TenantRepository
from tenants.tenant.schemas import (
    StatusChange,
    TenantCreate,
    TenantRead,
    TenantSort,
    TenantStatus,
    TenantUpdate,
)


def _event_data(t: Tenant | TenantRead) -> dict[str, Any]:
    return {"tenantId": t.id, "name": t.name, "plan": t.plan.name if isinstance(t.plan, Plan) else t.plan,
            "status": t.status}


async def _plan(source: AsyncSession | Database, name: str) -> Plan:
    """The active plan `name` (detached, shared: see `PlanCache.active`), or a 422 listing the others."""
    plan = await plans.active(source, name)
    if plan is None:
        names = ", ".join(await plans.names(source))
        raise Unprocessable(f"Unknown plan {name!r}; available plans: {names}")
    return plan


async def _get(session: AsyncSession, tenant_id: uuid.UUID, *, for_update: bool = False) -> Tenant:
    tenant = await TenantRepository(session).get(tenant_id, for_update=for_update)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id} not found")
    return tenant


async def create(database: Database, payload: TenantCreate) -> TenantRead:
    """No session: the only database work is ONE prepared statement, the tenant row and its event."""
    plan = await _plan(database, payload.plan)
    now = utcnow()
    tenant = TenantRead(id=uuid.uuid4(), name=payload.name, plan=plan.name, status=TenantStatus.ACTIVE,
                        contact_email=payload.contact_email, settings=payload.settings, status_reason=None,
                        created_at=now, updated_at=now, deleted_at=None)
    event = build_event("tenant.created", _event_data(tenant), tenant_id=tenant.id, source=outbox.source)
    row = {"id": tenant.id, "name": tenant.name, "plan_id": plan.id, "status": tenant.status.value,
           "contact_email": tenant.contact_email, "settings": tenant.settings, "created_at": now, "updated_at": now}
    try:
        await TenantRepository.create(database, row, outbox.row(event, key=str(tenant.id)))
    except DuplicateName:
        raise Conflict(f"A tenant named {payload.name!r} already exists") from None
    outbox.committed(database.engine)
    return tenant


async def get(session: AsyncSession, tenant_id: uuid.UUID) -> TenantRead:
    await commit_each_statement(session)  # reads only: no BEGIN/COMMIT round trips
    return TenantRead.model_validate(await _get(session, tenant_id))


async def list_tenants(session: AsyncSession, *, status: TenantStatus | None, plan: str | None, q: str | None,
                       sort: TenantSort, page: PageParams) -> KeysetPage[TenantRead]:
    await commit_each_statement(session)  # reads only (each statement sees the latest commits, as before)
    items, total = await TenantRepository(session).list(status=status, plan=plan, q=q, sort=sort,
                                                        limit=page.limit, offset=page.offset, cursor=page.cursor)
    return KeysetPage[TenantRead].of(items, total, page)


async def update(session: AsyncSession, tenant_id: uuid.UUID, payload: TenantUpdate) -> TenantRead:
    tenant = await _get(session, tenant_id, for_update=True)
    if tenant.status == TenantStatus.DELETED:
        raise Conflict("A deleted tenant cannot be changed")
    previous: dict[str, Any] = {}
    fields = payload.model_dump(exclude_unset=True)
    if fields.get("name") is not None and fields["name"] != tenant.name:
        previous["name"] = tenant.name
        tenant.name = fields["name"]
    if fields.get("plan") is not None:
        plan = await _plan(session, fields["plan"])
        if plan.id != tenant.plan_id:
            previous["plan"] = tenant.plan.name
            tenant.plan_id, tenant.plan = plan.id, await session.merge(plan, load=False)
    if "contact_email" in fields and fields["contact_email"] != tenant.contact_email:
        previous["contactEmail"] = tenant.contact_email
        tenant.contact_email = fields["contact_email"]
    if fields.get("settings") is not None and fields["settings"] != tenant.settings:
        previous["settings"] = tenant.settings
        tenant.settings = fields["settings"]
    if not previous:
        return TenantRead.model_validate(tenant)  # nothing changed: no event
    tenant.updated_at = utcnow()
    try:
        await TenantRepository(session).flush()
    except DuplicateName:
        raise Conflict(f"A tenant named {tenant.name!r} already exists") from None
    data = _event_data(tenant) | {"changes": sorted(previous), "previous": previous}
    await outbox.publish(session, "tenant.updated", data, key=tenant.id, tenant_id=tenant.id)
    return TenantRead.model_validate(tenant)


async def _transition(session: AsyncSession, tenant_id: uuid.UUID, *, allowed_from: set[str], to: str,
                      event: str, reason: str | None) -> Tenant:
    tenant = await _get(session, tenant_id, for_update=True)
    if tenant.status not in allowed_from:
        raise Conflict(f"Tenant is {tenant.status}; cannot become {to}")
    tenant.status = to
    tenant.status_reason = reason
    tenant.updated_at = utcnow()
    if to == TenantStatus.DELETED:
        tenant.deleted_at = tenant.updated_at
    await TenantRepository(session).flush()
    await outbox.publish(session, event, _event_data(tenant) | {"reason": reason}, key=tenant.id,
                         tenant_id=tenant.id)
    return tenant


async def suspend(session: AsyncSession, tenant_id: uuid.UUID, body: StatusChange) -> TenantRead:
    return TenantRead.model_validate(await _transition(session, tenant_id, allowed_from={"ACTIVE"}, to="SUSPENDED",
                                                     event="tenant.suspended", reason=body.reason))


async def reactivate(session: AsyncSession, tenant_id: uuid.UUID, body: StatusChange) -> TenantRead:
    return TenantRead.model_validate(await _transition(session, tenant_id, allowed_from={"SUSPENDED"}, to="ACTIVE",
                                                     event="tenant.reactivated", reason=body.reason))


async def delete(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    tenant = await _get(session, tenant_id, for_update=True)
    if tenant.status == TenantStatus.DELETED:
        return  # DELETE is idempotent; the event was emitted the first time
    await _transition(session, tenant_id, allowed_from={"ACTIVE", "SUSPENDED"}, to="DELETED",
                      event="tenant.deleted", reason=None)
