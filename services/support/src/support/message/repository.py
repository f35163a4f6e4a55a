"""All SQL of ticket messages (STYLE habit 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from support.models import TicketMessage


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, message: TicketMessage) -> None:
        self.session.add(message)
        await self.session.flush()

    async def list(self, ticket_id: uuid.UUID, *, include_internal: bool, limit: int,
                   offset: int) -> tuple[list[TicketMessage], int]:
        stmt = select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)
        if not include_internal:
            # Filtered in SQL, so `total` and paging never reveal that internal notes exist.
            stmt = stmt.where(TicketMessage.internal.is_(False))
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = await self.session.execute(
            stmt.order_by(TicketMessage.created_at, TicketMessage.id).limit(limit).offset(offset))
        return list(rows.scalars()), total
