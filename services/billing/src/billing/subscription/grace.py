"""Billing's periodic housekeeping: when `BILLING_SUSPEND_GRACE_HOURS` have passed since Stripe gave up
collecting, `billing.subscription.delinquent` tells tenants to suspend the tenant (once per delinquency);
processed Stripe events and finished jobs older than `BILLING_EVENT_RETENTION_DAYS` are deleted."""

from __future__ import annotations

from datetime import timedelta

from billing.context import Billing
from billing.subscription.service import publish_due_delinquencies
from billing.sync.repository import SyncJobRepository
from billing.webhook.repository import StripeEventRepository
from common.db import Database, utcnow


async def check(database: Database, billing: Billing) -> None:
    grace = timedelta(hours=billing.settings.billing_suspend_grace_hours)
    async with database.sessionmaker() as session:
        await publish_due_delinquencies(session, grace)
        await session.commit()


async def purge(database: Database, billing: Billing, batch: int = 1000) -> int:
    before = utcnow() - timedelta(days=billing.settings.billing_event_retention_days)
    deleted = 0
    while True:
        async with database.sessionmaker() as session:
            n = await StripeEventRepository(session).purge_processed(before, batch)
            n += await SyncJobRepository(session).purge_done(before, batch)
            await session.commit()
        deleted += n
        if n == 0:
            return deleted
