"""Outbox/inbox retention against real PostgreSQL: only rows done with and past the window go."""

from __future__ import annotations

import uuid

from sqlalchemy import MetaData, func, insert, select, text

from common.messaging import inbox_table, outbox_table
from common.messaging.retention import purge_expired
from common.observability.metrics import RETENTION_DELETED

metadata = MetaData()
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


def _outbox_row(*, published_hours_ago: float | None, created_hours_ago: float) -> dict:
    ago = lambda hours: func.now() - text(f"interval '{hours} hours'")  # noqa: E731
    return {"event_id": uuid.uuid4(), "event_type": "tenant.created", "topic": "platform.tenants.events",
            "aggregate_id": "k", "payload": {}, "created_at": ago(created_hours_ago),
            "published_at": None if published_hours_ago is None else ago(published_hours_ago)}


def _deleted(table: str) -> float:
    return RETENTION_DELETED.labels(table)._value.get()


async def test_published_and_processed_rows_past_retention_are_deleted_in_batches(scratch_database):
    db = await scratch_database(metadata)
    async with db.engine.begin() as conn:
        for _ in range(5):
            await conn.execute(insert(outbox).values(_outbox_row(published_hours_ago=100, created_hours_ago=101)))
        keep_recent = _outbox_row(published_hours_ago=1, created_hours_ago=100)
        keep_unpublished = _outbox_row(published_hours_ago=None, created_hours_ago=500)  # never lost
        await conn.execute(insert(outbox).values(keep_recent))
        await conn.execute(insert(outbox).values(keep_unpublished))
        for i in range(3):
            await conn.execute(insert(inbox).values(consumer="c", event_id=uuid.uuid4(), event_type="x.y",
                                                    processed_at=func.now() - text(f"interval '{80 + i} hours'")))
        kept_inbox = uuid.uuid4()
        await conn.execute(insert(inbox).values(consumer="c", event_id=kept_inbox, event_type="x.y"))
    before = _deleted("outbox"), _deleted("inbox")

    # Batches of 2: five old outbox rows need three statements, three inbox rows two.
    deleted = await purge_expired(db, outbox=outbox, inboxes=[inbox, inbox], hours=72, batch=2)

    assert deleted == {"outbox": 5, "inbox": 3}
    assert (_deleted("outbox") - before[0], _deleted("inbox") - before[1]) == (5, 3)
    async with db.engine.connect() as conn:
        left = set((await conn.execute(select(outbox.c.event_id))).scalars())
        assert left == {keep_recent["event_id"], keep_unpublished["event_id"]}
        assert list((await conn.execute(select(inbox.c.event_id))).scalars()) == [kept_inbox]
    # Nothing left to do: a second pass deletes nothing and counts nothing.
    assert await purge_expired(db, outbox=outbox, inboxes=[inbox], hours=72, batch=2) == {"outbox": 0, "inbox": 0}
    assert (_deleted("outbox") - before[0], _deleted("inbox") - before[1]) == (5, 3)


async def test_a_service_with_only_an_inbox_purges_only_its_inbox(scratch_database):
    db = await scratch_database(metadata)
    async with db.engine.begin() as conn:
        await conn.execute(insert(inbox).values(consumer="c", event_id=uuid.uuid4(), event_type="x.y",
                                                processed_at=func.now() - text("interval '73 hours'")))
        await conn.execute(insert(outbox).values(_outbox_row(published_hours_ago=100, created_hours_ago=100)))
    assert await purge_expired(db, outbox=None, inboxes=[inbox], hours=72) == {"inbox": 1}
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 1
