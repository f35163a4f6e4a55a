"""A replica's lease identity, and what a restarted replica takes back from its predecessor.

Every lease (an endpoint's owner, a claimed delivery) names the replica holding it. Without
`WEBHOOK_REPLICA_ID` that name is random per process: after a crash what the process held is retaken
only when its leases end (`WEBHOOK_OWNER_LEASE_SECONDS`, `WEBHOOK_LEASE_SECONDS`). With it, the name is
derived from the id, so a process restarted under the same id (a pod keeps its name across container
restarts) recognises its predecessor's leases as its own and gives them all back at start, before it
takes any work: its poller claims the deliveries again right away (and so does any other replica's),
each once, the same way as any due delivery. An attempt that was in flight when the process died is
sent again with the same `webhook-id` (at least once).

The rule that makes this safe: two live processes never share an id (k8s: the pod name; compose: the
container hostname; `make run`: the supervisor's host and port of the one dispatcher).
"""

from __future__ import annotations

import logging
import uuid

from common.db import Database
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository

logger = logging.getLogger("webhook_dispatcher.worker")

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "plataforma:webhook-dispatcher:replica")


def identity(replica_id: str | None) -> uuid.UUID:
    """The lease owner of a replica: stable for a `replica_id`, random without one."""
    return uuid.uuid5(_NAMESPACE, replica_id) if replica_id else uuid.uuid4()


async def take_back(database: Database, owner: uuid.UUID) -> tuple[int, int]:
    """Give back every lease `owner` holds (a previous process of this replica died holding them): returns
    (endpoints, deliveries). Call before taking any work: the new process holds nothing in memory yet."""
    async with database.engine.begin() as conn:
        endpoints = WebhookEndpointRepository(conn)
        owned = await endpoints.lock_all_ownership(owner)  # id order, as every ownership statement locks
        if owned:
            await endpoints.give_up_ownership(owned, owner)
        deliveries = DeliveryRepository(conn)
        released = await deliveries.release(None, owner)
        if owned or released:
            await deliveries.notify_due()  # every replica's poller: the work is anyone's now
    if owned or released:
        logger.warning("replica restarted: took back %d endpoint(s) and %d delivery lease(s) its previous "
                       "process held; undelivered ones are sent again now", len(owned), released)
    return len(owned), released
