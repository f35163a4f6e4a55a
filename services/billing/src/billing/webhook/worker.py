"""The loop that applies stored Stripe events (runs under `supervise`)."""

from __future__ import annotations

import asyncio

from billing.context import Billing
from billing.webhook.service import process_batch
from common.db import Database
from common.supervise import IdleWait

# After a wake-up, wait this long before claiming: at a steady trickle (Stripe sends events one by one) the
# batch then holds several events instead of one, and a transaction's fixed cost (begin, claim, mark,
# commit) is shared; it also leaves the event loop to the acknowledgements. A full batch goes on at once.
LINGER_SECONDS = 0.02


async def run_worker(database: Database, billing: Billing) -> None:
    # A stored event wakes this worker (`events_waiting`, set after the commit); a failed one is tried again at
    # the next pass, which follows at the poll interval while events are found. Idle, the fallback backs off.
    idle = IdleWait(billing.settings.billing_poll_interval_seconds)
    while True:
        billing.events_waiting.clear()
        applied = await process_batch(database, billing)
        if applied >= billing.settings.billing_event_batch:
            continue
        if await idle.wait(billing.events_waiting, found=applied > 0):
            await asyncio.sleep(LINGER_SECONDS)
