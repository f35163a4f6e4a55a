from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Uuid, any_, bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from common.db import Database
from common.db.engine import Prepared
from common.db.repository import Repository
from conversations.models import InboundEvent

INBOUND_LOCK = 0x636F6E76  # advisory lock: one replica processes stored webhooks at a time (keeps order)


# The acknowledgement path's only statement: Core on the table, rows as parameters (one multi-row INSERT on
# the wire), so it is compiled once per process instead of per request (the ORM's `values(rows)` was not).
_TABLE = InboundEvent.__table__  # type: ignore[attr-defined]
ADD_NEW = insert(_TABLE).on_conflict_do_nothing(index_elements=["channel_id", "kind", "external_id"]) \
    .returning(_TABLE.c.id)
# One item (the usual POST): the same INSERT as one compiled statement on `Database.run`'s connection, with no
# ORM session around it. The columns' Python-side defaults are written as SQL (`run` binds named parameters only).
ADD_ONE = Prepared(
    insert(_TABLE).values({c: bindparam(c, type_=_TABLE.c[c].type)
                           for c in ("id", "channel_id", "kind", "external_id", "payload")}
                          | {"attempts": literal_column("0"), "created_at": func.now(), "updated_at": func.now()})
    .on_conflict_do_nothing(index_elements=["channel_id", "kind", "external_id"]),
    generic_plan=True)  # INSERT ... VALUES: no plan to choose


# The ids as one array: the same SQL for any batch size (an IN list is a statement per size for asyncpg to prepare).
_MARK = update(_TABLE).where(_TABLE.c.id == any_(bindparam("ids", type_=ARRAY(Uuid())))) \
    .values(processed_at=bindparam("processed_at"))


class InboundEventRepository(Repository[InboundEvent]):
    model = InboundEvent

    async def add_new(self, rows: list[dict[str, Any]]) -> int:
        """Insert, skipping rows seen before (same channel, kind and provider id); returns how many were new."""
        if not rows:
            return 0
        return len((await self.session.execute(ADD_NEW, rows)).all())

    @staticmethod
    async def add_one(database: Database, row: dict[str, Any]) -> bool:
        """Insert one row unless seen before (same channel, kind and provider id); True when it was new."""
        return (await database.run(ADD_ONE, row)).endswith(" 1")  # "INSERT 0 1": one row written

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
        """Core on the table: an ORM UPDATE also evaluated its criteria against every row of the batch held
        by the session, to set `processed_at` on objects nobody reads again."""
        if ids:
            await self.session.execute(_MARK, {"ids": ids, "processed_at": processed_at})
