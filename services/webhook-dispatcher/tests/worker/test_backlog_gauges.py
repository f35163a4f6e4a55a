"""The backlog gauges tell an operator whether the dispatcher is behind: a delivery waiting for its
scheduled retry, or queued behind its aggregate's head on an ordered endpoint, is pending but not late."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from webhook_dispatcher.worker.maintenance import refresh_gauges
from webhook_dispatcher.worker.ownership import Ownership

_EVENT = text("""
INSERT INTO webhook_events (id, event_type, occurred_at, ordering_key, body, created_at, updated_at)
VALUES (:id, 'lead.created', now(), :key, '{}', now(), now())
""")
_DELIVERY = text("""
INSERT INTO webhook_deliveries (id, event_id, endpoint_id, event_type, ordering_key, status, attempts,
                                cycle_attempts, next_attempt_at, created_at, updated_at)
VALUES (:id, :event_id, :endpoint_id, 'lead.created', :key, 'PENDING', 1, 1,
        now() + make_interval(secs => :due_in), now() - make_interval(secs => :age), now())
""")


async def _gauges(owner, database) -> dict[str, float]:
    # The pass the dispatcher runs every WEBHOOK_MAINTENANCE_INTERVAL_SECONDS, run now: the gauges read the
    # database as it is (the periodic pass, should it run meanwhile, reads the same rows).
    await refresh_gauges(database)
    text_ = (await owner.get("/metrics")).text
    return {s.name: s.value for f in text_string_to_metric_families(text_) for s in f.samples
            if s.name.startswith("webhook_deliveries_") and not s.labels}


async def test_lag_counts_only_what_could_be_sent_now(owner, database, endpoints, receiver):
    # Subscribed to an event no test here publishes: a late event of an earlier test must not route here
    # (the rows below are written directly; the gauges read rows, not subscriptions).
    quiet = ["billing.subscription.canceled"]
    plain = uuid.UUID((await endpoints(receiver.hook().url, quiet))["id"])
    ordered = uuid.UUID((await endpoints(receiver.hook().url, quiet, ordered=True))["id"])
    # Another (stalled) replica owns both endpoints: the running dispatcher must leave their rows alone.
    stalled = Ownership(database, uuid.uuid4(), lease_seconds=300)
    async with asyncio.timeout(10):  # should the worker hold one for a moment, it lets go once idle
        while await stalled.acquire([plain, ordered]) != {plain, ordered}:
            await asyncio.sleep(0.2)

    async def delivery(endpoint: uuid.UUID, key: str, *, due_in: float, age: float) -> uuid.UUID:
        event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
        async with database.engine.begin() as conn:
            await conn.execute(_EVENT, {"id": event_id, "key": key})
            await conn.execute(_DELIVERY, {"id": delivery_id, "event_id": event_id, "endpoint_id": endpoint,
                                           "key": key, "due_in": due_in, "age": age})
        return delivery_id

    try:
        overdue = await delivery(plain, "a", due_in=-600, age=700)  # due ten minutes ago, never sent
        await delivery(plain, "b", due_in=3600, age=7200)  # failed, its retry is an hour away: not late
        head = await delivery(ordered, "c", due_in=3600, age=5000)  # the aggregate's head, retrying
        await delivery(ordered, "c", due_in=-3000, age=4000)  # due, but must wait behind the head

        g = await _gauges(owner, database)
        assert g["webhook_deliveries_pending"] >= 4
        assert g["webhook_deliveries_oldest_pending_age_seconds"] >= 7200
        assert g["webhook_deliveries_due"] == 1
        assert 600 <= g["webhook_deliveries_due_lag_seconds"] < 1200

        # The overdue one gets its retry scheduled: nothing is late any more, though all still pend.
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' "
                                    "WHERE id = :id"), {"id": overdue})
        g = await _gauges(owner, database)
        assert g["webhook_deliveries_pending"] >= 4
        assert g["webhook_deliveries_due"] == 0 and g["webhook_deliveries_due_lag_seconds"] == 0

        # The ordered aggregate's head succeeds: the one behind it is now due, and late since long ago.
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE webhook_deliveries SET status = 'SUCCEEDED' WHERE id = :id"),
                               {"id": head})
        g = await _gauges(owner, database)
        assert g["webhook_deliveries_due"] == 1 and g["webhook_deliveries_due_lag_seconds"] >= 3000
    finally:  # nothing of this test's is left pending for the session's other tests
        async with database.engine.begin() as conn:
            await conn.execute(text("DELETE FROM webhook_deliveries WHERE endpoint_id = ANY(:ids)"),
                               {"ids": [plain, ordered]})
        await stalled.release_all()
