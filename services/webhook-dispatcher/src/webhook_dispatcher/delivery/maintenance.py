"""Housekeeping: backlog and endpoint gauges every `webhook_maintenance_interval_seconds`; the retention
purge every `webhook_purge_interval_seconds`.

The purge runs in one replica at a time (transaction-scoped advisory lock) and deletes in batches of
`webhook_purge_batch` rows per table, one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from webhook_dispatcher import metrics
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.endpoint.repository import EndpointRepository
from webhook_dispatcher.models import EndpointStatus

if TYPE_CHECKING:
    from webhook_dispatcher.delivery.engine import DeliveryEngine

logger = logging.getLogger("webhook_dispatcher.maintenance")
PURGE_LOCK = zlib.crc32(b"webhook-dispatcher:purge")
FIRST_PURGE_AFTER = 60.0  # not in the rush of a start-up


async def refresh_gauges(engine: DeliveryEngine) -> None:
    async with engine.database.sessionmaker() as session:
        backlog = await DeliveryRepository(session).backlog()
        by_status = await EndpointRepository(session).count_by_status()
    metrics.PENDING.set(backlog.pending)
    metrics.OLDEST_PENDING_AGE.set(backlog.oldest_age)
    metrics.DUE.set(backlog.due)
    metrics.DUE_LAG.set(backlog.due_lag)
    for status in EndpointStatus:
        if status is not EndpointStatus.DELETED:
            metrics.ENDPOINTS.labels(status.value).set(by_status.get(status.value, 0))


async def purge(engine: DeliveryEngine) -> int:
    """Delete what is older than WEBHOOK_RETENTION_DAYS; returns the number of rows deleted."""
    total = 0
    while True:
        async with engine.database.sessionmaker() as session:
            if not (await session.execute(select(func.pg_try_advisory_xact_lock(PURGE_LOCK)))).scalar():
                return total
            deleted = await DeliveryRepository(session).purge(engine.settings.webhook_retention_days,
                                                              engine.settings.webhook_purge_batch)
            await session.commit()
        total += deleted
        if deleted == 0:
            return total


async def run_maintenance(engine: DeliveryEngine) -> None:
    loop = asyncio.get_running_loop()
    every = engine.settings.webhook_purge_interval_seconds
    next_purge = loop.time() + min(FIRST_PURGE_AFTER, every)
    while True:
        try:
            await refresh_gauges(engine)
            if loop.time() >= next_purge:
                next_purge = loop.time() + every
                deleted = await purge(engine)
                if deleted:
                    logger.info("retention purge deleted %d rows", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("maintenance pass failed")
        await asyncio.sleep(engine.settings.webhook_maintenance_interval_seconds)
