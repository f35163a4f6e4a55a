"""300 Stripe events for 20 tenants, each delivered twice in a shuffled order: billing ends in the state of
the last event by Stripe's order, and publishes each payment event once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

BILLING = "/api/platform/billing"
WEBHOOK = "/api/webhooks/stripe"


async def wait_until(predicate, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_a_shuffled_storm_of_duplicates_ends_in_stripes_last_state(owner, stripe, tenants, configured, count,
                                                                         service_url):
    plans = {p["code"]: p["stripePriceId"] for p in (await owner.get(f"{BILLING}/plans")).json()}
    batch = [uuid.uuid4() for _ in range(20)]
    for tenant in batch:
        await tenants.created(tenant, plan="Pro")

    async def subscribed() -> bool:
        if not all(stripe.subscription_of(t) for t in batch):
            return False
        return await count("SELECT count(*) FROM billing_subscriptions WHERE tenant_id = ANY(:ids)", ids=batch) == 20

    await wait_until(subscribed)
    stripe.deliver_to(None)  # from here on the test delivers
    try:
        first = len(stripe.events)
        rng = random.Random(12)
        subs = {t: stripe.subscription_of(t)["id"] for t in batch}
        portal_changes: Counter[uuid.UUID] = Counter()
        while len(stripe.events) - first < 300:
            tenant = rng.choice(batch)
            sub = stripe.subscriptions[subs[tenant]]
            action = rng.random()
            if sub["status"] in ("unpaid", "past_due") and action < 0.4:
                stripe.pay(sub["id"])
            elif action < 0.55:
                stripe.fail_payment(sub["id"], final=rng.random() < 0.3)
            else:
                current = sub["items"]["data"][0]["price"]["id"]
                target = plans["ENTERPRISE"] if current == plans["PRO"] else plans["PRO"]
                stripe.change_price_in_portal(sub["id"], target)
                portal_changes[tenant] += 1
        storm = stripe.events[first:]
        invoice_events = [e for e in storm if e["type"].startswith("invoice.")]
        statuses = await stripe.send(storm, to=service_url + WEBHOOK, duplicates=True, shuffle=True)
        assert Counter(statuses) == Counter({200: len(storm) * 2})

        async def processed() -> bool:
            return await count("SELECT count(*) FROM stripe_events WHERE processed_at IS NULL") == 0

        await wait_until(processed)
    finally:
        stripe.deliver_to(service_url + WEBHOOK)

    for tenant in batch:
        sub = stripe.subscriptions[subs[tenant]]
        got = (await owner.get(f"{BILLING}/tenants/{tenant}")).json()
        assert (got["status"], got["priceId"]) == (sub["status"], sub["items"]["data"][0]["price"]["id"]), tenant
        invoices = (await owner.get(f"{BILLING}/invoices", params={"tenantId": str(tenant), "limit": 100})).json()
        ours = {i["stripeInvoiceId"]: (i["status"], i["attemptCount"], i["amountPaid"]) for i in invoices["items"]}
        theirs = {i["id"]: (i["status"], i["attempt_count"], i["amount_paid"]) for i in stripe.invoices.values()
                  if i["parent"]["subscription_details"]["metadata"]["tenantId"] == str(tenant)}
        assert ours == theirs, tenant

    # The outbox (the durable log of what was published): one payment event per Stripe invoice event.
    published = await count("SELECT count(*) FROM outbox WHERE event_type LIKE 'billing.payment%' "
                            "AND aggregate_id = ANY(:ids)", ids=[str(t) for t in batch])
    assert published == len(invoice_events)
    announced = await count("SELECT count(*) FROM outbox WHERE (payload->'data'->>'planChangedInStripe')::boolean "
                            "AND aggregate_id = ANY(:ids)", ids=[str(t) for t in batch])
    assert 0 < announced <= sum(portal_changes.values())
    assert await count("SELECT count(*) FROM stripe_events WHERE outcome = 'failed'") == 0
