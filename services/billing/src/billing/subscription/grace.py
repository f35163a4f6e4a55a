"""The periodic look at grace periods: when `BILLING_SUSPEND_GRACE_HOURS` have passed since Stripe gave up
collecting, `billing.subscription.delinquent` tells tenants to suspend the tenant (once per delinquency)."""

from __future__ import annotations

from datetime import timedelta

from billing.context import Billing
from billing.subscription.service import publish_due_delinquencies
from common.db import Database


async def check(database: Database, billing: Billing) -> None:
    grace = timedelta(hours=billing.settings.billing_suspend_grace_hours)
    async with database.sessionmaker() as session:
        await publish_due_delinquencies(session, grace)
        await session.commit()
