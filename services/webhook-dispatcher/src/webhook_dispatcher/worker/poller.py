"""The poller (any replica): claims due deliveries `FOR UPDATE SKIP LOCKED` and leases them.

What it finds: retries, replays and recoveries, rows left behind by a crashed replica (lease expired),
the overflow of full lanes and the next event of each aggregate on ordered endpoints. It wakes on a
NOTIFY (`webhook_deliveries_due`), when a lane asks for more, and every `webhook_poll_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from common.db import Database
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.worker.jobs import Job


class Poller:
    def __init__(self, database: Database, settings: Settings, owner: uuid.UUID, *,
                 short_of: Callable[[int], list[uuid.UUID]], hand_over: Callable[[list[Job]], Awaitable[None]],
                 accepting: Callable[[], bool]) -> None:
        self.database = database
        self.settings = settings
        self.owner = owner
        self.short_of = short_of  # endpoints whose lane has no room for a share: not claimed for now
        self.hand_over = hand_over  # the claimed jobs go to the lanes (what does not fit is released)
        self.accepting = accepting
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, ready: asyncio.Event) -> None:
        """Poll until cancelled (under `supervise`); starts once `ready` (the endpoint cache listens)."""
        await ready.wait()
        while True:
            self._wake.clear()
            if await self.poll_once():
                continue  # there may be more due right now (each claim is capped per endpoint)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_interval_seconds)

    async def poll_once(self) -> int:
        if not self.accepting():
            return 0
        # A lane without room for a full share is skipped (its overflow would be given straight back);
        # it wakes the poller when it has drained to half.
        per_endpoint = max(1, min(self.settings.webhook_queue_size // 2, 200))
        started = asyncio.get_running_loop().time()
        async with self.database.engine.begin() as conn:
            rows = await DeliveryRepository(conn).claim_due(
                owner=self.owner, lease=self.settings.webhook_lease_seconds, per_endpoint=per_endpoint,
                limit=self.settings.webhook_poll_batch, busy=self.short_of(per_endpoint))
        deadline = started + self.settings.webhook_lease_seconds
        await self.hand_over([Job.from_claim(r, deadline) for r in rows])
        return len(rows)
