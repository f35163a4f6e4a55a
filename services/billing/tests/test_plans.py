"""Plans are tenants': billing keeps a copy from `plan.created|updated` (through the broker, idempotent through
its inbox, an older event never undoing a newer one) and prices each with no hand mapping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

BILLING = "/api/platform/billing"


async def test_a_plan_added_in_tenants_is_priced_by_the_sync_and_follows_its_changes(owner, stripe, tenants,
                                                                                    configured, plan_copy):
    code = f"P{uuid.uuid4().hex[:6].upper()}"
    created = await tenants.plan(code, f"Growth {code}", 1900, interval="year")
    await tenants.send(created, created.data["planId"])  # Kafka's at-least-once: the same event again
    plan = await plan_copy(owner, code)
    assert (plan["name"], plan["amount"], plan["currency"], plan["interval"], plan["active"]) == \
        (f"Growth {code}", 1900, "USD", "year", True)
    assert plan["stripePriceId"] is None  # until the owner syncs

    before = stripe.created["price"]
    synced = {p["code"]: p for p in (await owner.post(f"{BILLING}/plans/sync")).json()}
    first_price = synced[code]["stripePriceId"]
    assert stripe.created["price"] == before + 1 and synced[code]["mappedBy"] == "sync"
    assert (stripe.prices[first_price]["unit_amount"], stripe.prices[first_price]["currency"],
            stripe.prices[first_price]["recurring"]["interval"]) == (1900, "usd", "year")

    # A new price in tenants: the old Stripe price no longer bills the plan; the next sync makes the new one.
    changed = await tenants.plan(code, f"Growth {code}", 2500, interval="year", changes=["amount"],
                                 previous={"amount": 1900}, plan_id=created.data["planId"])
    plan = await plan_copy(owner, code, lambda p: p["amount"] == 2500)
    assert plan["stripePriceId"] is None
    synced = {p["code"]: p for p in (await owner.post(f"{BILLING}/plans/sync")).json()}
    assert synced[code]["stripePriceId"] != first_price
    assert stripe.prices[synced[code]["stripePriceId"]]["unit_amount"] == 2500

    # A late redelivery of an older state changes nothing; a rename and a switch-off keep the price.
    await tenants.plan(code, f"Growth {code}", 1900, interval="year", changes=["amount"], previous={"amount": 1},
                       plan_id=created.data["planId"], at=changed.timestamp - timedelta(seconds=5))
    await tenants.plan(code, f"Scale {code}", 2500, interval="year", active=False, changes=["active", "name"],
                       previous={"active": True, "name": f"Growth {code}"}, plan_id=created.data["planId"])
    plan = await plan_copy(owner, code, lambda p: p["name"] == f"Scale {code}")
    assert (plan["amount"], plan["active"], plan["stripePriceId"]) == (2500, False, synced[code]["stripePriceId"])


async def test_a_name_taken_by_another_plan_before_its_rename_arrives_is_kept(owner, tenants, configured, plan_copy):
    """Plan events are keyed by plan: one plan's rename can reach billing before the rename that freed its new name."""
    a, b = (f"R{uuid.uuid4().hex[:6].upper()}" for _ in range(2))
    await tenants.plan(a, f"Starter {a}", 900)
    await tenants.plan(b, f"Growth {b}", 1900)
    await plan_copy(owner, a)
    await plan_copy(owner, b)
    renamed = datetime.now(UTC)
    # In tenants: A renamed "Legacy", then B renamed to A's old name. Billing gets B's event first.
    await tenants.plan(b, f"Starter {a}", 1900, changes=["name"], previous={"name": f"Growth {b}"},
                       at=renamed + timedelta(seconds=1))
    await plan_copy(owner, b, lambda p: p["name"] == f"Starter {a}", timeout=15)
    assert (await plan_copy(owner, a))["name"] == f"(renamed) {a}"  # stale until its own event comes
    await tenants.plan(a, f"Legacy {a}", 900, changes=["name"], previous={"name": f"Starter {a}"},
                       at=renamed)
    assert (await plan_copy(owner, a, lambda p: p["name"] == f"Legacy {a}", timeout=15))["amount"] == 900
    assert (await plan_copy(owner, b))["name"] == f"Starter {a}"
