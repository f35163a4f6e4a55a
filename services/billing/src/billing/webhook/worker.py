"""The loop that applies stored Stripe events (runs under `supervise`)."""

from __future__ import annotations

import asyncio

from billing.context import Billing
from billing.webhook.service import process_batch
from common.db import Database

# After a wake-up, wait this long before claiming: at a steady trickle (Stripe sends events one by one) the
# batch then holds several events instead of one, and a transaction's fixed cost (begin, claim, mark,
# commit) is shared; it also leaves the event loop to the acknowledgements. A full batch goes on at once.
LINGER_SECONDS = 0.02


async def run_worker(database: Database, billing: Billing) -> None:
    while True:
        billing.events_waiting.clear()
        if await process_batch(database, billing) >= billing.settings.billing_event_batch:
            continue
        try:
            await asyncio.wait_for(billing.events_waiting.wait(), billing.settings.billing_poll_interval_seconds)
        except TimeoutError:
            continue
        await asyncio.sleep(LINGER_SECONDS)
