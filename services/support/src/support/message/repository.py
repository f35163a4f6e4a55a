"""All SQL of ticket messages (STYLE habit 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from common.db.repository import Repository
from support.models import TicketMessage


class MessageRepository(Repository[TicketMessage]):
    model = TicketMessage

    async def list(self, ticket_id: uuid.UUID, *, include_internal: bool, limit: int,
                   offset: int) -> tuple[list[TicketMessage], int]:
        stmt = select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)
        if not include_internal:
            # Filtered in SQL, so `total` and paging never reveal that internal notes exist.
            stmt = stmt.where(TicketMessage.internal.is_(False))
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[TicketMessage.created_at])
