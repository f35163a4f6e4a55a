"""The workers' batch statements: one statement per batch, compiled once per process whatever the batch's size
(a statement built from the batch's rows was compiled again at every call: CPU per message under load)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common.db import utcnow
from conversations.conversation.repository import MessageRepository
from conversations.conversation.service import message_row
from conversations.models import Conversation


@contextlib.contextmanager
def statements(db: AsyncEngine, prefix: str) -> Iterator[list[CacheStats]]:
    """How each statement starting with `prefix` run on `db` meanwhile was found in the compiled cache."""
    seen: list[CacheStats] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(prefix):
            seen.append(context.cache_hit)

    event.listen(db.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", before)


async def test_marking_sent_is_one_cached_statement_and_changes_only_queued_messages(api, db):
    channel = await api.cloud_channel()
    later = utcnow() + timedelta(hours=1)  # not due: the worker process leaves them alone
    async with AsyncSession(db, expire_on_commit=False) as session, session.begin():
        conversation = Conversation(id=uuid.uuid4(), channel_id=uuid.UUID(channel["id"]), contact="573100000999",
                                    last_message_at=utcnow())
        session.add(conversation)
        await session.flush()
        rows = [message_row(conversation, direction="OUTBOUND", sender="AGENT", text=f"m{i}", status="QUEUED",
                            next_attempt_at=later) for i in range(4)]
        rows[3]["status"] = "FAILED"
        await MessageRepository(session).insert_many(rows)
    ids = [row["id"] for row in rows]
    with statements(db, "UPDATE messages") as seen:
        async with AsyncSession(db) as session, session.begin():
            repo = MessageRepository(session)
            assert await repo.mark_many_sent([(ids[0], "wamid.a")], utcnow()) == {ids[0]}
            assert await repo.mark_many_sent([(ids[1], "wamid.b"), (ids[2], None), (ids[3], "wamid.d")],
                                             utcnow()) == {ids[1], ids[2]}
    assert len(seen) == 2 and seen[1] == CacheStats.CACHE_HIT, seen
    async with db.connect() as conn:
        got = {r.id: (r.status, r.external_id, r.sent_at is not None) for r in await conn.execute(
            text("SELECT id, status, external_id, sent_at FROM messages WHERE id = ANY(:ids)"), {"ids": ids})}
    assert got == {ids[0]: ("SENT", "wamid.a", True), ids[1]: ("SENT", "wamid.b", True), ids[2]: ("SENT", None, True),
                   ids[3]: ("FAILED", None, False)}
