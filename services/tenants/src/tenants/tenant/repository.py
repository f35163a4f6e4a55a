"""All SQL of tenants (STYLE habit 2)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from common.api import Total
from common.db.engine import Database, Prepared
from common.db.repository import Repository
from tenants.models import Plan, Tenant, outbox
from tenants.tenant.schemas import TenantSort

_SORT = {
    TenantSort.name: func.lower(Tenant.name).asc(),
    TenantSort.name_desc: func.lower(Tenant.name).desc(),
    TenantSort.created: Tenant.created_at.asc(),
    TenantSort.created_desc: Tenant.created_at.desc(),
}
_TENANTS: Table = Tenant.__table__  # type: ignore[assignment]


def _insert(table: Table, columns: Iterable[str]) -> Insert:
    return insert(table).values({c: bindparam(c, type_=table.c[c].type) for c in columns})


NEW_TENANT_COLUMNS = ("id", "name", "plan_id", "status", "contact_email", "settings", "created_at", "updated_at")
EVENT_COLUMNS = ("event_id", "event_type", "topic", "aggregate_id", "payload", "headers")  # Outbox.row()
# A new tenant and its event as ONE statement (a data-modifying CTE: a refused row writes no event), compiled
# once: the create path's only database work. Two INSERT ... VALUES: no plan to choose, so planned once per connection.
_CREATE = Prepared(_insert(outbox, EVENT_COLUMNS).add_cte(_insert(_TENANTS, NEW_TENANT_COLUMNS).cte("change")),
                   generic_plan=True)


class DuplicateName(Exception):
    pass


class TenantRepository(Repository[Tenant]):
    model = Tenant

    def select(self) -> Select[tuple[Tenant]]:
        return select(Tenant).options(joinedload(Tenant.plan))

    async def list(self, *, status: str | None, plan: str | None, q: str | None, sort: TenantSort,
                   limit: int, offset: int, cursor: str | None = None) -> tuple[list[Tenant], Total]:
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
                return [], Total(0)
            stmt = stmt.where(Tenant.plan_id.in_(ids))
        return await self.search_page(stmt, [Tenant.name], q,  # ix_tenants_live_name_trgm
                                      limit=limit, offset=offset, order_by=[_SORT[sort]], cursor=cursor, keyset=True)

    @classmethod
    async def create(cls, database: Database, tenant: dict[str, Any], event: dict[str, Any]) -> None:
        """Insert a tenant (NEW_TENANT_COLUMNS) with its outbox row (`Outbox.row()`), committed together, on a
        connection of its own; `DuplicateName` when a live tenant has the name."""
        async with cls.duplicate_names():
            await database.run(_CREATE, tenant | event)

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
