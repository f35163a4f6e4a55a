"""The loop that applies stored Stripe events (runs under `supervise`)."""

from __future__ import annotations

import asyncio

from billing.context import Billing
from billing.webhook.service import process_batch
from common.db import Database


async def run_worker(database: Database, billing: Billing) -> None:
    while True:
        billing.events_waiting.clear()
        if await process_batch(database, billing):
            continue
        try:
            await asyncio.wait_for(billing.events_waiting.wait(), billing.settings.billing_poll_interval_seconds)
        except TimeoutError:
            pass
