"""All SQL of tenants (STYLE habit 2)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import Insert, Select, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from common.db.repository import Repository, contains
from tenants.models import Plan, Tenant
from tenants.tenant.schemas import TenantSort

_SORT = {
    TenantSort.name: func.lower(Tenant.name).asc(),
    TenantSort.name_desc: func.lower(Tenant.name).desc(),
    TenantSort.created: Tenant.created_at.asc(),
    TenantSort.created_desc: Tenant.created_at.desc(),
}
_TENANTS = Tenant.__table__


class DuplicateName(Exception):
    pass


class TenantRepository(Repository[Tenant]):
    model = Tenant

    def select(self) -> Select[tuple[Tenant]]:
        return select(Tenant).options(joinedload(Tenant.plan))

    async def list(self, *, status: str | None, plan: str | None, q: str | None, sort: TenantSort,
                   limit: int, offset: int) -> tuple[list[Tenant], int]:
        # The plan is loaded with the page only (an eager load is not part of the count's subquery).
        stmt = self.select()
        if status:
            stmt = stmt.where(Tenant.status == status)
        else:
            stmt = stmt.where(Tenant.status != "DELETED")
        if plan:
            # The plan's id first (a few rows), so the page comes from ix_tenants_live_plan_created
            # instead of a join that sorts every tenant of the plan.
            p = plan.lower()
            ids = list((await self.session.execute(
                select(Plan.id).where((func.lower(Plan.name) == p) | (func.lower(Plan.code) == p)))).scalars())
            if not ids:
                return [], 0
            stmt = stmt.where(Tenant.plan_id.in_(ids))
        if q:
            stmt = stmt.where(contains([Tenant.name], q))
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[_SORT[sort]])

    def insert(self, tenant: Tenant) -> Insert:
        """The INSERT of a new tenant as a statement, to send along with its event (`Outbox.add(along=)`):
        on the create path the ORM's unit of work costs more than the statement (the tenant object only
        carries the answer; it is not added to the session)."""
        values = {c.key: v for c in _TENANTS.columns if (v := getattr(tenant, c.key)) is not None}  # else defaults
        return insert(_TENANTS).values(values)

    async def flush(self) -> None:
        async with self.duplicate_names():
            await super().flush()

    @staticmethod
    @contextlib.asynccontextmanager
    async def duplicate_names() -> AsyncIterator[None]:
        """Turns the live-name unique index's refusal into `DuplicateName`, whatever statement hit it.

        No savepoint (two round trips and an identity-map snapshot per write): every caller turns a
        duplicate into a 409 and the request's transaction is rolled back anyway."""
        try:
            yield
        except IntegrityError as exc:
            if "uq_tenants_live_name" in str(exc.orig):
                raise DuplicateName from exc
            raise


__all__ = ["DuplicateName", "TenantRepository"]
