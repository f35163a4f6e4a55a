"""Periodic job: conversations idle for CONVERSATION_IDLE_MINUTES end by themselves."""

from __future__ import annotations

from common.db import Database
from conversations.conversation.service import end_idle


async def end_idle_conversations(database: Database, idle_minutes: float) -> int:
    total = 0
    while True:
        async with database.sessionmaker() as session, session.begin():
            ended = await end_idle(session, idle_minutes)
        total += ended
        if ended < 200:
            return total
