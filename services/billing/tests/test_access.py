"""Every billing route declares who may call it; tenant users see their own tenant's billing only."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from billing.app import create_app
from common.testing.checks import assert_problem, assert_routes_declare_auth
from common.testing.fake_stripe import stripe_signature

BILLING = "/api/platform/billing"


def test_every_route_but_stripes_webhook_needs_a_caller():
    assert assert_routes_declare_auth(create_app()) == 9


async def subscribed_by_webhook(anonymous, owner, stripe, tenant: uuid.UUID) -> None:
    sub = f"sub_{uuid.uuid4().hex[:12]}"
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "customer.subscription.created",
             "created": int(time.time()), "livemode": False, "data": {"object": {
                 "id": sub, "object": "subscription", "customer": f"cus_{sub}", "status": "active",
                 "metadata": {"tenantId": str(tenant)}, "items": {"data": [{"id": "si_1", "price": "price_1"}]}}}}
    raw = json.dumps(event).encode()
    resp = await anonymous.post("/api/webhooks/stripe", content=raw,
                                headers={"Stripe-Signature": stripe_signature(raw, stripe.webhook_secret)})
    assert resp.status_code == 200, resp.text
    async with asyncio.timeout(15):
        while (await owner.get(f"{BILLING}/tenants/{tenant}")).status_code != 200:
            await asyncio.sleep(0.05)


async def test_a_tenant_user_sees_only_its_tenant(configured, anonymous, owner, stripe, tenant_user):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    for tenant in (mine, theirs):
        await subscribed_by_webhook(anonymous, owner, stripe, tenant)
    user = await tenant_user("TENANT_ADMIN", mine)
    assert (await user.get(f"{BILLING}/tenants/{mine}")).status_code == 200
    assert_problem(await user.get(f"{BILLING}/tenants/{theirs}"), 404)
    listed = (await user.get(f"{BILLING}/subscriptions", params={"limit": 100})).json()
    assert {s["tenantId"] for s in listed["items"]} == {str(mine)}
    assert_problem(await user.get(f"{BILLING}/subscriptions", params={"tenantId": str(theirs)}), 404)
    assert_problem(await user.get(f"{BILLING}/invoices", params={"tenantId": str(theirs)}), 404)
    assert_problem(await user.get("/api/platform/integrations/stripe"), 403)
    assert_problem(await user.post(f"{BILLING}/plans/sync"), 403)
    everyone = (await owner.get(f"{BILLING}/subscriptions", params={"limit": 100})).json()
    assert {str(mine), str(theirs)} <= {s["tenantId"] for s in everyone["items"]} or everyone["nextCursor"]


async def test_subscription_pages_follow_the_cursor_without_overlap(configured, owner):
    seen: list[str] = []
    cursor = None
    while True:
        page = (await owner.get(f"{BILLING}/subscriptions", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert_problem(await owner.get(f"{BILLING}/subscriptions", params={"cursor": "garbage!"}), 422)
