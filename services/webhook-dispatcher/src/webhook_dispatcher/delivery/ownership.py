"""Which replica delivers to an endpoint: one at a time, so the endpoint's concurrency cap and rate
limit hold across replicas (each replica enforces them for the endpoints it owns).

Ownership is a lease in `webhook_endpoint_owners`: taken when a replica has work for an endpoint and
nobody else holds it, renewed while the replica has work for it, given up when it has none (so the
endpoints spread over the replicas that see their events), and free again when a crashed replica's
lease runs out. Deliveries for an endpoint owned elsewhere are left in the database and the owner's
poller is woken (NOTIFY). A replica that stalls for longer than the lease can lose an endpoint while
requests to it are in flight: the only moment two replicas can send to one endpoint at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

from sqlalchemy import Float, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Uuid

from common.db import Database

_ACQUIRE = text("""
INSERT INTO webhook_endpoint_owners AS o (endpoint_id, owner, lease_until)
SELECT e.id, :owner, now() + make_interval(secs => :lease)
FROM webhook_endpoints e WHERE e.id = ANY(:ids)
ON CONFLICT (endpoint_id) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
WHERE o.owner = EXCLUDED.owner OR o.lease_until < now()
RETURNING o.endpoint_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

_RENEW = text("""
UPDATE webhook_endpoint_owners SET lease_until = now() + make_interval(secs => :lease)
WHERE owner = :owner AND endpoint_id = ANY(:ids)
RETURNING endpoint_id
""").bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid),
                bindparam("lease", type_=Float))

_RELEASE = text("DELETE FROM webhook_endpoint_owners WHERE owner = :owner AND endpoint_id = ANY(:ids)"
                ).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("owner", type_=Uuid))


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
            missing = [e for e in wanted if not self.holds(e)]
            if missing:
                started = asyncio.get_running_loop().time()
                async with self.database.engine.begin() as conn:
                    got = (await conn.execute(_ACQUIRE, {"ids": missing, "owner": self.owner,
                                                         "lease": self.lease})).scalars().all()
                for endpoint_id in got:
                    self._until[endpoint_id] = started + self.lease
        return {e for e in wanted if self.holds(e)}

    async def renew(self, busy: set[uuid.UUID]) -> set[uuid.UUID]:
        """Renew the endpoints with work here, give up the others; returns those found taken over."""
        async with self._lock:
            idle = [e for e in self._until if e not in busy]
            keep = [e for e in self._until if e in busy]
            for endpoint_id in idle:
                del self._until[endpoint_id]
            started = asyncio.get_running_loop().time()
            async with self.database.engine.begin() as conn:
                if idle:
                    await conn.execute(_RELEASE, {"ids": idle, "owner": self.owner})
                renewed = set((await conn.execute(_RENEW, {"ids": keep, "owner": self.owner,
                                                           "lease": self.lease})).scalars().all()) if keep else set()
            lost = {e for e in keep if e not in renewed}
            for endpoint_id in keep:
                if endpoint_id in renewed:
                    self._until[endpoint_id] = started + self.lease
                else:
                    self._until.pop(endpoint_id, None)
            return lost

    async def release_all(self) -> None:
        async with self._lock:
            ids, self._until = list(self._until), {}
            if ids:
                async with self.database.engine.begin() as conn:
                    await conn.execute(_RELEASE, {"ids": ids, "owner": self.owner})
