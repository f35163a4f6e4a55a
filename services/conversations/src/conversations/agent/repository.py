from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from common.db.repository import Repository
from common.errors import Conflict
from conversations.models import Agent, PendingReply

LEASE_MARGIN_SECONDS = 10.0  # beyond the flow's own timeout, before another worker may ask it again


class AgentRepository(Repository[Agent]):
    model = Agent
    violations = {"uq_agents_enabled_channel": lambda: Conflict(
        "The channel has an enabled agent already; disable it first")}

    async def enabled_for(self, channel_id: uuid.UUID) -> Agent | None:
        return await self.get_one(select(Agent).where(Agent.channel_id == channel_id, Agent.enabled.is_(True)))  # type: ignore[attr-defined]

    async def page(self, *, channel_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[Agent], int]:
        stmt = select(Agent)
        if channel_id is not None:
            stmt = stmt.where(Agent.channel_id == channel_id)
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[Agent.created_at.desc()])  # type: ignore[attr-defined]


def _lease() -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, PendingReply.timeout_seconds + LEASE_MARGIN_SECONDS)


class PendingReplyRepository(Repository[PendingReply]):
    model = PendingReply

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(PendingReply), rows)

    async def claim_expired(self, limit: int) -> list[PendingReply]:
        """Replies whose worker went away (lease passed), oldest first, leased again to this one."""
        expired = (select(PendingReply.id).where(PendingReply.lease_until <= func.now())  # type: ignore[arg-type]
                   .order_by(PendingReply.created_at).limit(limit).with_for_update(skip_locked=True))
        stmt = (update(PendingReply).where(PendingReply.id.in_(expired.scalar_subquery()))  # type: ignore[attr-defined]
                .values(lease_until=_lease(), attempts=PendingReply.attempts + 1).returning(PendingReply))
        return list((await self.session.execute(select(PendingReply).from_statement(stmt))).scalars())

    async def take(self, reply_id: uuid.UUID) -> bool:
        """Delete it; False when it was gone already (another worker queued that reply)."""
        result = await self.session.execute(delete(PendingReply).where(PendingReply.id == reply_id)  # type: ignore[arg-type]
                                            .returning(PendingReply.id))
        return result.first() is not None
