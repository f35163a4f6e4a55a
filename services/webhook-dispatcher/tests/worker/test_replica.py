"""A dispatcher restarted under the same `WEBHOOK_REPLICA_ID` takes back its own leases at once: what it was
sending or had queued when it died is sent well before its leases (60 s here) would have ended."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from sqlalchemy import text

from common.events import build_event
from common.messaging import ConsumedEvent
from common.testing.webhooks import ids_of
from webhook_dispatcher.worker.consumer import route_batch
from webhook_dispatcher.worker.replica import identity
from webhook_dispatcher.worker.worker import DeliveryWorker

LONG = 60.0  # both leases: without the take-back nothing would be sent again before they end
WITHIN = 20.0  # how long the test waits for what the restarted replica sends: far below LONG


def ticket() -> dict:
    return {"ticketId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()), "subject": "Replica", "priority": "LOW",
            "status": "OPEN"}


async def route(database, worker: DeliveryWorker, *envelopes) -> None:
    """What the replica's consumer does with a batch: deliveries leased to it, handed to its lanes."""
    async with database.autocommit.connect() as conn:
        new, after = await route_batch(conn, [ConsumedEvent(e, "platform.support.events", 0, i, {})
                                              for i, e in enumerate(envelopes)], worker)
    assert new == len(envelopes) and after is not None
    await after()


async def kill(worker: DeliveryWorker) -> None:
    """As a SIGKILL leaves it: every task gone mid-way, nothing released, recorded or given up (and nothing
    queued started when an attempt's slot frees)."""
    worker.accepting = False
    worker.lanes.drain()
    for handle, _ in worker._timers.values():
        handle.cancel()
    tasks = [*worker._tasks.values(), *worker._attempts, *worker._background]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert not worker._attempts
    await worker.transport.close()


async def leases_of(database, owner: uuid.UUID) -> tuple[int, int]:
    async with database.engine.connect() as conn:
        owned = (await conn.execute(text("SELECT count(*) FROM webhook_endpoint_owners WHERE owner = :o"),
                                    {"o": owner})).scalar_one()
        claimed = (await conn.execute(text("SELECT count(*) FROM webhook_deliveries WHERE lease_owner = :o "
                                           "AND status = 'PENDING'"), {"o": owner})).scalar_one()
    return owned, claimed


async def test_a_replica_restarted_under_its_id_resends_what_it_was_sending_and_sends_what_it_had_queued(
        dispatcher, make_settings, database, receiver, endpoints):
    hook = receiver.hook(delay=3600.0)  # the first attempt hangs: the replica dies while it is in flight
    endpoint = await endpoints(hook.url, ["ticket.created"], maxConcurrency=1)
    settings = make_settings(webhook_replica_id=f"replica-{uuid.uuid4().hex[:8]}",
                             webhook_owner_lease_seconds=LONG, webhook_lease_seconds=LONG)
    first = DeliveryWorker(settings, database)
    await first.start()
    await first.registry.listening.wait()
    sending, queued = build_event("ticket.created", ticket()), build_event("ticket.created", ticket())
    await route(database, first, sending, queued)  # one goes out, the other waits behind the cap of 1
    await hook.wait_for(lambda h: ids_of(h) == [str(sending.id)], timeout=WITHIN)
    await kill(first)
    # Dead, it still holds the endpoint and both deliveries for a minute: no other replica may take them.
    assert await leases_of(database, first.owner) == (1, 2)

    hook.set_behaviour(delay=0.0)
    again = DeliveryWorker(settings, database)
    assert again.owner == first.owner
    await again.start()
    try:
        await hook.wait_for(lambda h: Counter(ids_of(h)) == {str(sending.id): 2, str(queued.id): 1}, timeout=WITHIN)
        marker = build_event("ticket.created", ticket())  # anything more would arrive before it
        await route(database, again, marker)
        await hook.wait_for(lambda h: str(marker.id) in ids_of(h), timeout=WITHIN)
        # The one in flight at the crash twice (same webhook-id: at least once), the queued one once.
        assert Counter(ids_of(hook)) == {str(sending.id): 2, str(queued.id): 1, str(marker.id): 1}
        async with asyncio.timeout(WITHIN):
            while True:
                async with database.engine.connect() as conn:
                    statuses = (await conn.execute(text(
                        "SELECT DISTINCT status FROM webhook_deliveries WHERE endpoint_id = :e"),
                        {"e": uuid.UUID(endpoint["id"])})).scalars().all()
                if list(statuses) == ["SUCCEEDED"]:
                    break
                await asyncio.sleep(0.05)
    finally:
        await again.stop()


async def test_a_replica_id_names_one_lease_owner_and_none_draws_a_random_one(make_settings):
    assert identity("pod-a") == identity("pod-a") != identity("pod-b")
    assert identity(None) != identity(None)
    assert make_settings(webhook_replica_id="  ").webhook_replica_id is None  # blank: unset
    assert make_settings().webhook_replica_id is None  # the default: a random identity per process
