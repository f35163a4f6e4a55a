"""All SQL of tenants (STYLE habit 2)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from common.db import utcnow
from common.events import Envelope
from tenants.events import outbox
from tenants.models import Plan, Tenant
from tenants.tenant.schemas import TenantSort

_SORT = {
    TenantSort.name: func.lower(Tenant.name).asc(),
    TenantSort.name_desc: func.lower(Tenant.name).desc(),
    TenantSort.created: Tenant.created_at.asc(),
    TenantSort.created_desc: Tenant.created_at.desc(),
}


class DuplicateName(Exception):
    pass


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: uuid.UUID, *, for_update: bool = False) -> Tenant | None:
        stmt = select(Tenant).options(joinedload(Tenant.plan)).where(Tenant.id == tenant_id)
        if for_update:
            stmt = stmt.with_for_update(of=Tenant)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, status: str | None, plan: str | None, q: str | None, sort: TenantSort,
                   limit: int, offset: int) -> tuple[list[Tenant], int]:
        stmt = select(Tenant).join(Tenant.plan)
        if status:
            stmt = stmt.where(Tenant.status == status)
        else:
            stmt = stmt.where(Tenant.status != "DELETED")
        if plan:
            p = plan.lower()
            stmt = stmt.where((func.lower(Plan.name) == p) | (func.lower(Plan.code) == p))
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(Tenant.name.ilike(f"%{escaped}%", escape="\\"))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(
            stmt.options(joinedload(Tenant.plan)).order_by(_SORT[sort], Tenant.id).limit(limit).offset(offset)
        )
        return list(rows.scalars()), total

    async def add(self, tenant: Tenant, *, event: Envelope) -> None:
        """The tenant row and `event`'s outbox row in ONE Core statement (`Outbox.add(along=...)`): on the
        create path the ORM's unit of work costs more than the statement (the tenant object only carries
        the answer; it is not added to the session)."""
        tenant.created_at = tenant.updated_at = utcnow()
        values = {c.key: v for c in _TENANTS.columns if (v := getattr(tenant, c.key)) is not None}  # else defaults
        async with _duplicate_names():
            await outbox.add(self.session, event, key=str(tenant.id), along=insert(_TENANTS).values(values))

    async def flush(self) -> None:
        async with _duplicate_names():
            await self.session.flush()


_TENANTS = Tenant.__table__


@contextlib.asynccontextmanager
async def _duplicate_names() -> AsyncIterator[None]:
    # No savepoint (two round trips and an identity-map snapshot per write): every caller turns a
    # duplicate into a 409 and the request's transaction is rolled back anyway.
    try:
        yield
    except IntegrityError as exc:
        if "uq_tenants_live_name" in str(exc.orig):
            raise DuplicateName from exc
        raise
