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
from conversations.webhook.repository import InboundEventRepository


@contextlib.contextmanager
def statements(db: AsyncEngine, prefix: str) -> Iterator[list[tuple[CacheStats, int, str]]]:
    """Each statement starting with `prefix` run on `db` meanwhile: how it was found in the compiled cache, and
    how many times the driver executes it (once per row for a list of parameter rows), and its SQL."""
    seen: list[tuple[CacheStats, int, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(prefix):
            rows = executemany and parameters and isinstance(parameters[0], (tuple, list, dict))
            seen.append((context.cache_hit, len(parameters) if rows else 1, statement))

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
    assert len(seen) == 2 and seen[1][0] == CacheStats.CACHE_HIT, seen
    async with db.connect() as conn:
        got = {r.id: (r.status, r.external_id, r.sent_at is not None) for r in await conn.execute(
            text("SELECT id, status, external_id, sent_at FROM messages WHERE id = ANY(:ids)"), {"ids": ids})}
    assert got == {ids[0]: ("SENT", "wamid.a", True), ids[1]: ("SENT", "wamid.b", True), ids[2]: ("SENT", None, True),
                   ids[3]: ("FAILED", None, False)}


async def test_a_batch_of_new_messages_is_one_statement_in_order(api, db):
    channel = await api.cloud_channel()
    later = utcnow() + timedelta(hours=1)
    with statements(db, "INSERT INTO messages") as seen:
        async with AsyncSession(db, expire_on_commit=False) as session, session.begin():
            conversation = Conversation(id=uuid.uuid4(), channel_id=uuid.UUID(channel["id"]),
                                        contact="573100000998", last_message_at=utcnow())
            session.add(conversation)
            await session.flush()
            rows = [message_row(conversation, direction="OUTBOUND", sender="AGENT", text=f"m{i}", status="QUEUED",
                                next_attempt_at=later) for i in range(5)]
            await MessageRepository(session).insert_many(rows)
    assert [executions for _, executions, _ in seen] == [1], seen  # for PostgreSQL to plan: not one per row
    async with db.connect() as conn:
        texts = (await conn.execute(text("SELECT text FROM messages WHERE conversation_id = :c ORDER BY seq"),
                                    {"c": conversation.id})).scalars().all()
    assert texts == [f"m{i}" for i in range(5)]


async def test_marking_a_batch_processed_is_the_same_sql_for_any_batch_size(api, db):
    """One SQL text whatever the count (asyncpg prepares each distinct text: an IN list was one per size)."""
    with statements(db, "UPDATE inbound_events") as seen:
        async with AsyncSession(db) as session, session.begin():
            repo = InboundEventRepository(session)
            await repo.mark([uuid.uuid4()], utcnow())
            await repo.mark([uuid.uuid4() for _ in range(3)], utcnow())
    assert len(seen) == 2 and seen[0][2] == seen[1][2], seen
