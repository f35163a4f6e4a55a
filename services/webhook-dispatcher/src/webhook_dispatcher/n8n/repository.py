"""All SQL about the n8n settings and flows (STYLE habit 2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from common.db.repository import Repository
from webhook_dispatcher.models import EndpointKind, N8nFlow, N8nSettings, WebhookEndpoint


class N8nRepository(Repository[N8nFlow]):
    """The n8n settings row and the flows (and, read-only, the endpoints backing them)."""

    model = N8nFlow

    # --- settings --------------------------------------------------------------------------------
    async def settings(self, *, for_update: bool = False) -> N8nSettings | None:
        stmt = select(N8nSettings).where(N8nSettings.singleton.is_(True))
        if for_update:
            stmt = stmt.with_for_update()
        return await self.get_one(stmt)

    # --- flows -----------------------------------------------------------------------------------
    async def get_flow(self, flow_id: uuid.UUID, *, for_update: bool = False) -> N8nFlow | None:
        stmt = select(N8nFlow).where(N8nFlow.id == flow_id)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one(stmt)

    async def flow_by_workflow(self, workflow_id: str) -> N8nFlow | None:
        return (await self.session.execute(select(N8nFlow).where(N8nFlow.workflow_id == workflow_id))
                ).scalar_one_or_none()

    async def list_flows(self, *, category: str | None, active: bool | None, limit: int,
                         offset: int) -> tuple[list[N8nFlow], int]:
        """Newest first."""
        stmt = select(N8nFlow)
        if category is not None:
            stmt = stmt.where(N8nFlow.category == category)
        if active is not None:
            stmt = stmt.where(N8nFlow.active.is_(active))  # type: ignore[attr-defined]
        return await self.paginate(stmt, limit=limit, offset=offset,
                                   order_by=[N8nFlow.created_at.desc()])  # type: ignore[attr-defined]

    async def delete_flow(self, flow: N8nFlow) -> None:
        await self.session.delete(flow)
        await self.session.flush()

    async def endpoint(self, endpoint_id: uuid.UUID | None, *, for_update: bool = False) -> WebhookEndpoint | None:
        if endpoint_id is None:
            return None
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.kind == EndpointKind.N8N_FLOW)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one(stmt)

    async def endpoints(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WebhookEndpoint]:
        if not ids:
            return {}
        rows = await self.session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_(list(ids)), WebhookEndpoint.kind == EndpointKind.N8N_FLOW))
        return {e.id: e for e in rows.scalars()}

    async def flows_with_endpoints(self) -> list[tuple[N8nFlow, WebhookEndpoint]]:
        """Every flow that has a backing endpoint, both locked (the n8n URL is changing)."""
        rows = await self.session.execute(
            select(N8nFlow, WebhookEndpoint).join(WebhookEndpoint, WebhookEndpoint.id == N8nFlow.endpoint_id)
            .where(WebhookEndpoint.kind == EndpointKind.N8N_FLOW).with_for_update())
        return [(r[0], r[1]) for r in rows]
