"""An endpoint's health is one function (`webhook.health.update_health`), called here directly on the real
database: the failing clock, disabling (410, or failing past the threshold), re-enabling, and the
`webhook.endpoint.*` events those write to the outbox in the same transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from webhook_dispatcher.webhook.health import update_health

API = "/api/platform/webhooks"

_PENDING = text("""
WITH e AS (INSERT INTO webhook_events (id, event_type, occurred_at, ordering_key, body, created_at, updated_at)
           VALUES (:event_id, 'billing.subscription.canceled', now(), 'k', '{}', now(), now()))
INSERT INTO webhook_deliveries (id, event_id, endpoint_id, event_type, ordering_key, status, attempts,
                                cycle_attempts, next_attempt_at, created_at, updated_at)
VALUES (:id, :event_id, :endpoint_id, 'billing.subscription.canceled', 'k', 'PENDING', 1, 1,
        now() + interval '1 hour', now(), now())
""")


async def _events(database, endpoint_id: uuid.UUID) -> list[str]:
    """The `webhook.endpoint.*` events written for this endpoint, oldest first."""
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT event_type FROM outbox WHERE aggregate_id = :id ORDER BY seq"),
                                  {"id": str(endpoint_id)})
        return [r.event_type for r in rows]


async def test_failing_clock_disable_and_reenable_with_their_events(owner, database, endpoints, receiver):
    # Subscribed to an event no test publishes: nothing but this test moves its health.
    endpoint_id = uuid.UUID((await endpoints(receiver.hook().url, ["billing.subscription.canceled"]))["id"])

    async def health(**observed):
        async with database.engine.begin() as conn:
            return await update_health(conn, disable_after_seconds=3600, **observed)

    async def shown() -> dict:
        return (await owner.get(f"{API}/{endpoint_id}")).json()

    # A failure starts the clock (not past the threshold yet); a success stops it.
    change = await health(failed={endpoint_id})
    assert change.failing == [endpoint_id] and not change.disabled
    assert (await shown())["failingSince"] is not None
    change = await health(succeeded={endpoint_id})
    assert change.recovered == [endpoint_id] and (await shown())["failingSince"] is None

    # 410 Gone: disabled at once, its pending delivery failed (replayable), the owner told.
    delivery_id = uuid.uuid4()
    async with database.engine.begin() as conn:
        await conn.execute(_PENDING, {"id": delivery_id, "event_id": uuid.uuid4(), "endpoint_id": endpoint_id})
    change = await health(gone={endpoint_id})
    assert "410" in change.disabled[endpoint_id]
    after = await shown()
    assert after["status"] == "DISABLED" and "410" in after["statusReason"]
    failed = (await owner.get(f"{API}/deliveries/{delivery_id}")).json()
    assert failed["status"] == "FAILED" and "endpoint disabled" in failed["lastError"]
    assert await _events(database, endpoint_id) == ["webhook.endpoint.disabled"]
    # Already disabled: nothing changes, nothing more is announced.
    assert not (await health(gone={endpoint_id})).disabled

    # The owner turns it back on: ACTIVE with the owner's reason, announced as recovered.
    change = await health(reenable={endpoint_id: "receiver fixed"})
    assert change.reenabled == [endpoint_id]
    after = await shown()
    assert after["status"] == "ACTIVE" and after["statusReason"] == "receiver fixed" and after["disabledAt"] is None
    assert await _events(database, endpoint_id) == ["webhook.endpoint.disabled", "webhook.endpoint.recovered"]
    assert not (await health(reenable={endpoint_id: None})).reenabled  # only a DISABLED one is re-enabled

    # Failing for longer than the threshold: the next failure disables it, saying since when.
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_endpoints SET failing_since = now() - interval '2 hours' "
                                "WHERE id = :id"), {"id": endpoint_id})
    change = await health(failed={endpoint_id})
    assert "every delivery failed since" in change.disabled[endpoint_id]
    assert (await shown())["status"] == "DISABLED"
    assert (await _events(database, endpoint_id))[-1] == "webhook.endpoint.disabled"
