"""Which replica delivers to an endpoint: one at a time, so the endpoint's concurrency cap and rate
limit hold across replicas (each replica enforces them for the endpoints it owns).

Ownership is a lease in `webhook_endpoint_owners`: taken when a replica has work for an endpoint and
nobody else holds it, renewed while the replica has work for it, given up when it has none (so the
endpoints spread over the replicas that see their events), and free again when a crashed replica's
lease runs out (at once when it restarts under the same `WEBHOOK_REPLICA_ID`: `replica.take_back`). Deliveries for an endpoint owned elsewhere are left in the database and the owner's
poller is woken (NOTIFY). A replica that stalls for longer than the lease can lose an endpoint while
requests to it are in flight: the only moment two replicas can send to one endpoint at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable

from common.db import Database
from common.supervise import every
from webhook_dispatcher import metrics
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository


class Ownership:
    def __init__(self, database: Database, owner: uuid.UUID, lease_seconds: float) -> None:
        self.database = database
        self.owner = owner
        self.lease = lease_seconds
        self._until: dict[uuid.UUID, float] = {}  # endpoint -> loop time our lease surely still runs
        # Taking, renewing and giving up never interleave: a release must not delete a lease that an
        # acquire has just re-taken.
        self._lock = asyncio.Lock()

    def holds(self, endpoint_id: uuid.UUID) -> bool:
        until = self._until.get(endpoint_id)
        return until is not None and until > asyncio.get_running_loop().time()

    @property
    def owned(self) -> set[uuid.UUID]:
        return set(self._until)

    async def acquire(self, endpoint_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """The endpoints among these that this replica owns now (taking the free ones)."""
        wanted = set(endpoint_ids)
        if all(self.holds(e) for e in wanted):
            return wanted
        async with self._lock:
            missing = sorted(e for e in wanted if not self.holds(e))
            if missing:
                started = asyncio.get_running_loop().time()
                async with self.database.engine.begin() as conn:
                    got = await WebhookEndpointRepository(conn).take_ownership(missing, self.owner, self.lease)
                for endpoint_id in got:
                    self._until[endpoint_id] = started + self.lease
        return {e for e in wanted if self.holds(e)}

    async def renew(self, busy_now: Callable[[], set[uuid.UUID]]) -> set[uuid.UUID]:
        """Renew the endpoints with work here, give up the others. Returns the endpoints this replica has
        work for but does not own (taken over after a stall, or never renewed): hand their work back.

        `busy_now` is asked under the lock, and idle endpoints are dropped before anything awaits, so
        work offered meanwhile either sees them owned (and counts as busy) or takes them anew."""
        async with self._lock:
            busy = busy_now()
            idle = sorted(e for e in self._until if e not in busy)
            keep = sorted(e for e in self._until if e in busy)
            orphans = {e for e in busy if e not in self._until}
            for endpoint_id in idle:
                del self._until[endpoint_id]
            if not idle and not keep:
                return orphans  # nothing held: nothing to renew or give up (an idle replica asks no database)
            started = asyncio.get_running_loop().time()
            renewed: set[uuid.UUID] = set()
            async with self.database.engine.begin() as conn:
                repo = WebhookEndpointRepository(conn)
                await repo.lock_ownership(idle + keep, self.owner)
                if idle:
                    await repo.give_up_ownership(idle, self.owner)
                if keep:
                    renewed = await repo.renew_ownership(keep, self.owner, self.lease)
            lost = {e for e in keep if e not in renewed}
            for endpoint_id in keep:
                if endpoint_id in renewed:
                    self._until[endpoint_id] = started + self.lease
                else:
                    self._until.pop(endpoint_id, None)
            return lost | orphans

    async def keep(self, busy_now: Callable[[], set[uuid.UUID]],
                   give_back: Callable[[set[uuid.UUID]], Awaitable[None]]) -> None:
        """Every third of a lease: renew the endpoints with work here, give up the idle ones, and hand back
        the work of those taken over (`give_back`). Runs under `supervise`."""
        async def step() -> None:
            try:
                lost = await self.renew(busy_now)
            finally:
                metrics.OWNED.set(len(self._until))
            if lost:
                await give_back(lost)

        await every(self.lease / 3, step)

    async def release_all(self) -> None:
        """Give up every endpoint and wake the other replicas' pollers (their backlog is theirs now)."""
        async with self._lock:
            ids, self._until = sorted(self._until), {}
            if ids:
                async with self.database.engine.begin() as conn:
                    repo = WebhookEndpointRepository(conn)
                    await repo.lock_ownership(ids, self.owner)
                    await repo.give_up_ownership(ids, self.owner)
                    await DeliveryRepository(conn).notify_due()  # every replica's poller
