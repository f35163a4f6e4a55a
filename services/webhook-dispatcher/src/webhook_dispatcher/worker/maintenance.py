"""Housekeeping, each a step run periodically under `supervise`: the backlog and endpoint gauges (every
`webhook_maintenance_interval_seconds`) and the retention purge (every `webhook_purge_interval_seconds`).

The purge runs in one replica at a time (transaction-scoped advisory lock) and deletes in batches of
`webhook_purge_batch` rows per table, one transaction each.
"""

from __future__ import annotations

import logging
import zlib

from common.db import Database
from webhook_dispatcher import metrics
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.models import EndpointStatus
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository

logger = logging.getLogger("webhook_dispatcher.worker.maintenance")
PURGE_LOCK = zlib.crc32(b"webhook-dispatcher:purge")
FIRST_PURGE_AFTER = 60.0  # not in the rush of a start-up


async def refresh_gauges(database: Database) -> None:
    async with database.sessionmaker() as session:
        backlog = await DeliveryRepository(session).backlog()
        by_status = await WebhookEndpointRepository(session).count_by_status()
    metrics.PENDING.set(backlog.pending)
    metrics.OLDEST_PENDING_AGE.set(backlog.oldest_age)
    metrics.DUE.set(backlog.due)
    metrics.DUE_LAG.set(backlog.due_lag)
    for status in EndpointStatus:
        if status is not EndpointStatus.DELETED:
            metrics.ENDPOINTS.labels(status.value).set(by_status.get(status.value, 0))


async def purge(database: Database, settings: Settings) -> int:
    """Delete what is older than WEBHOOK_RETENTION_DAYS; returns the number of rows deleted."""
    total = 0
    while True:
        async with database.sessionmaker() as session:
            repo = DeliveryRepository(session)
            if not await repo.try_purge_lock(PURGE_LOCK):
                break
            deleted = await repo.purge(settings.webhook_retention_days, settings.webhook_purge_batch)
            await session.commit()
        total += deleted
        if deleted == 0:
            break
    if total:
        logger.info("retention purge deleted %d rows", total)
    return total
