"""Periodic job: processed webhook rows are kept INBOUND_RETENTION_HOURS (they are what deduplicates a
provider's retries), then deleted in batches."""

from __future__ import annotations

from datetime import timedelta

from common.db import Database, utcnow
from conversations.webhook.repository import InboundEventRepository

BATCH = 1000


async def purge_inbound(database: Database, hours: float) -> int:
    before, total = utcnow() - timedelta(hours=hours), 0
    while True:
        async with database.sessionmaker() as session, session.begin():
            deleted = await InboundEventRepository(session).purge_processed(before, BATCH)
        total += deleted
        if deleted < BATCH:
            return total
