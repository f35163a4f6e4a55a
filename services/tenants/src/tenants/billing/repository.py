"""The tenant state billing events are judged on (read only: changes go through tenants.tenant.service)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import Tenant


class TenantStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def status(self, tenant_id: uuid.UUID) -> tuple[str, str | None] | None:
        """(status, status reason) of the tenant, locked until the transaction ends; None if unknown."""
        row = (await self.session.execute(select(Tenant.status, Tenant.status_reason).where(Tenant.id == tenant_id)
                                          .with_for_update())).one_or_none()
        return None if row is None else (row[0], row[1])
