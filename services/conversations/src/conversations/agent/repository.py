from __future__ import annotations

import uuid

from sqlalchemy import select

from common.db.repository import Repository
from conversations.models import Agent


class AgentRepository(Repository[Agent]):
    model = Agent

    async def enabled_for(self, channel_id: uuid.UUID) -> Agent | None:
        return await self.get_one(select(Agent).where(Agent.channel_id == channel_id, Agent.enabled.is_(True)))  # type: ignore[attr-defined]

    async def page(self, *, channel_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[Agent], int]:
        stmt = select(Agent)
        if channel_id is not None:
            stmt = stmt.where(Agent.channel_id == channel_id)
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[Agent.created_at.desc()])  # type: ignore[attr-defined]
