"""When the outbound worker claims again after a delivery: only when a message may have been queued behind it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from common.db import Database, utcnow
from conversations.config import Settings
from conversations.conversation.repository import MessageRepository
from conversations.conversation.service import message_row
from conversations.models import Channel, Conversation
from conversations.outbound.worker import OutboundWorker


async def test_a_handed_first_reply_claims_again_only_if_something_was_queued_meanwhile(
        api, database_url, platform_settings, graph):
    channel = await api.cloud_channel()
    database = Database(database_url)
    worker = OutboundWorker(database, Settings(database_url=database_url, **platform_settings,
                                               whatsapp_graph_api_base=graph.base_url))
    try:
        async with database.sessionmaker() as session, session.begin():
            found = await session.get(Channel, uuid.UUID(channel["id"]))
            assert found is not None
            conversation = Conversation(id=uuid.uuid4(), channel_id=found.id, contact="573100000997",
                                        last_message_at=utcnow())
            session.add(conversation)
            await session.flush()
            # Leased, as the inbound worker leases the first replies it hands over (the service's own worker
            # leaves them alone).
            rows = [message_row(conversation, direction="OUTBOUND", sender="AGENT", text=f"m{i}", status="QUEUED",
                                next_attempt_at=utcnow() + timedelta(minutes=5)) for i in range(3)]
            await MessageRepository(session).insert_many(rows)

        async def delivered_then_woken(row, *, queued_meanwhile: bool, claimed: bool = False) -> bool:
            seen = worker.queued
            if queued_meanwhile:
                worker.wake()  # a commit queued a message (maybe behind this one) after the batch began
            worker._wake.clear()
            worker.hand_over([worker.job(found, conversation, row, {})], seen=None if claimed else seen)
            async with asyncio.timeout(10):
                await asyncio.gather(*worker._deliveries)
            return worker._wake.is_set()

        assert not await delivered_then_woken(rows[0], queued_meanwhile=False)  # nothing can be behind it
        assert await delivered_then_woken(rows[1], queued_meanwhile=True)
        assert await delivered_then_woken(rows[2], queued_meanwhile=False, claimed=True)  # claimed: anything may be
        sent = [m["text"] for m in graph.sent if m["to"] == "573100000997"]
        assert sent == ["m0", "m1", "m2"]
    finally:
        await database.dispose()
