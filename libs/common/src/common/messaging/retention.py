"""Retention of the outbox and the inbox: published outbox rows and processed inbox rows older than
`OUTBOX_RETENTION_HOURS` are deleted, a batch per transaction, so neither table grows forever.

The window is what recovery needs: an event the broker lost is re-published from the outbox while its
row is kept, and a redelivered event is recognised by its inbox row while that row is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Table

from common.db import Database
from common.observability.metrics import RETENTION_DELETED

logger = logging.getLogger("common.retention")


def _outbox_sql(table: str) -> str:
    # Published rows are the oldest ones: walking the primary key from the start stops at the first
    # rows still inside the window, so a batch never scans the table.
    return (f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE published_at IS NOT NULL "
            f"AND published_at < now() - $1::interval ORDER BY seq LIMIT $2)")


def _inbox_sql(table: str) -> str:
    return (f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} "
            f"WHERE processed_at < now() - $1::interval LIMIT $2)")


async def purge_expired(database: Database, *, outbox: Table | None, inboxes: Sequence[Table],
                        hours: float, batch: int = 1000) -> dict[str, int]:
    """Delete what is past retention, `batch` rows per statement (each its own transaction), until none is
    left. Returns rows deleted per table."""
    window = timedelta(hours=hours)
    work = ([(outbox.name, _outbox_sql(outbox.name))] if outbox is not None else []) + [
        (t.name, _inbox_sql(t.name)) for t in dict.fromkeys(inboxes)]
    deleted: dict[str, int] = {}
    async with database.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for name, sql in work:
            total = 0
            while True:
                status = await raw.execute(sql, window, batch)  # autocommit: one batch, one transaction
                count = int(status.split()[-1])
                total += count
                if count < batch:
                    break
            deleted[name] = total
            if total:
                RETENTION_DELETED.labels(name).inc(total)
                logger.info("retention: deleted %d %s rows older than %s h", total, name, hours)
    return deleted


__all__ = ["purge_expired"]
