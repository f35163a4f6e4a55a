from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from common.db.repository import Repository
from conversations.models import InboundEvent

INBOUND_LOCK = 0x636F6E76  # advisory lock: one replica processes stored webhooks at a time (keeps order)


# The acknowledgement path's only statement: Core on the table, rows as parameters (one multi-row INSERT on
# the wire), so it is compiled once per process instead of per request (the ORM's `values(rows)` was not).
_TABLE = InboundEvent.__table__  # type: ignore[attr-defined]
ADD_NEW = insert(_TABLE).on_conflict_do_nothing(index_elements=["channel_id", "kind", "external_id"]) \
    .returning(_TABLE.c.id)


class InboundEventRepository(Repository[InboundEvent]):
    model = InboundEvent

    async def add_new(self, rows: list[dict[str, Any]]) -> int:
        """Insert, skipping rows seen before (same channel, kind and provider id); returns how many were new."""
        if not rows:
            return 0
        return len((await self.session.execute(ADD_NEW, rows)).all())

    async def lock_worker(self) -> bool:
        return bool((await self.session.execute(select(func.pg_try_advisory_xact_lock(INBOUND_LOCK)))).scalar())

    async def pending(self, limit: int) -> list[InboundEvent]:
        stmt = (select(InboundEvent)
                .where(InboundEvent.processed_at.is_(None),  # type: ignore[union-attr]
                       or_(InboundEvent.process_after.is_(None),  # type: ignore[union-attr]
                           InboundEvent.process_after <= func.now()))  # type: ignore[operator]
                .order_by(InboundEvent.seq).limit(limit))  # type: ignore[arg-type]
        return await self.all(stmt)

    async def purge_processed(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` processed rows older than `before`; how many went."""
        doomed = (select(InboundEvent.id).where(InboundEvent.processed_at < before)  # type: ignore[operator]
                  .limit(limit).with_for_update(skip_locked=True))
        result = await self.session.execute(delete(InboundEvent).where(InboundEvent.id.in_(doomed))  # type: ignore[attr-defined]
                                            .returning(InboundEvent.id))
        return len(result.all())

    async def mark(self, ids: list[uuid.UUID], processed_at: datetime) -> None:
        if ids:
            await self.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids))  # type: ignore[attr-defined]
                                       .values(processed_at=processed_at))
