"""The billing story through the gateway: Stripe configured, tenants' plans synced, a tenant subscribed and moved to
another plan, three failed payments (the last with no next attempt) reaching a subscriber webhook and an
n8n flow once each, the tenant suspended for payment, then a payment that reactivates it."""

from __future__ import annotations

import asyncio
import uuid

from standardwebhooks import Webhook


async def eventually(predicate, timeout: float = 45.0):
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(0.1)


async def billing_has(call, codes: set[str], predicate=lambda plan: True) -> dict[str, dict] | None:
    """Billing's copies of the plans `codes` once all are there (and satisfy `predicate`)."""
    plans = {p["code"]: p for p in await call("GET", "/api/platform/billing/plans")}
    return plans if all(c in plans and predicate(plans[c]) for c in codes) else None


async def test_billing_story(gateway, owner_headers, receiver, stripe, n8n, stack):
    async def call(method, path, status=200, **kw):
        resp = await gateway.request(method, path, headers=owner_headers, **kw)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    stripe.deliver_to(f"{stack.gateway.url}/api/webhooks/stripe")
    settings = await call("PUT", "/api/platform/integrations/stripe",
                          json={"publishableKey": stripe.publishable_key, "secretKey": stripe.secret_key,
                                "webhookSecret": stripe.webhook_secret})
    assert settings["secretKey"].endswith(stripe.secret_key[-4:]) and stripe.secret_key not in str(settings)
    assert (await call("POST", "/api/platform/integrations/stripe/test"))["ok"]
    # Billing's plans are tenants' (the seeded ones reach it as plan.created from tenants' migration).
    codes = {p["code"] for p in await call("GET", "/api/platform/plans")}
    await eventually(lambda: billing_has(call, codes))
    prices = {p["code"]: p["stripePriceId"] for p in await call("POST", "/api/platform/billing/plans/sync")}

    hook = receiver.hook()
    endpoint = await call("POST", "/api/platform/webhooks", 201,
                          json={"url": hook.url, "events": ["billing.payment_failed"]})
    assert endpoint["status"] == "ACTIVE", endpoint
    await call("PUT", "/api/platform/integrations/n8n", json={"url": n8n.url, "apiKey": n8n.api_key})
    flow = await call("POST", "/api/platform/n8n/flows", 201,
                      json={"name": "Failed payments", "triggerEvents": ["billing.payment_failed"]})
    await call("POST", f"/api/platform/n8n/flows/{flow['id']}/activate")

    tenant = await call("POST", "/api/platform/tenants", 201,
                        json={"name": f"Pagos {uuid.uuid4().hex[:6]}", "plan": "Pro"})
    tid = tenant["id"]

    async def on_price(code: str):
        sub = stripe.subscription_of(tid)
        return sub if sub and sub["items"]["data"][0]["price"]["id"] == prices[code] else None

    sub = await eventually(lambda: on_price("PRO"))
    assert sum(c["metadata"].get("tenantId") == tid for c in stripe.customers.values()) == 1
    assert sum(s["metadata"].get("tenantId") == tid for s in stripe.subscriptions.values()) == 1

    await call("PUT", f"/api/platform/tenants/{tid}", json={"plan": "Enterprise"})
    await eventually(lambda: on_price("ENTERPRISE"))
    # One price change for THIS subscription (the fake's global counters also see other tenants: in a whole
    # `make test` the stack's billing consumes every earlier test's tenant events from the shared broker).
    updates = [p for m, path, p in stripe.calls if m == "POST" and path == f"/v1/subscriptions/{sub['id']}"]
    assert [u["proration_behavior"] for u in updates] == ["create_prorations"]

    async def billed_on(plan: str):
        got = await call("GET", f"/api/platform/billing/tenants/{tid}")
        return got["plan"] == plan and got

    await eventually(lambda: billed_on("ENTERPRISE"))

    stripe.fail_payment(sub["id"])
    stripe.fail_payment(sub["id"])
    invoice = stripe.fail_payment(sub["id"], final=True)

    def failed_for_tenant(requests):
        return [r for r in requests if r.json().get("event") == "billing.payment_failed"
                and r.json()["data"]["tenantId"] == tid]

    await hook.wait_for(lambda h: len(failed_for_tenant(h.events())) >= 3, timeout=45)
    await n8n.wait_for(lambda: len([c for c in n8n.webhook_calls if c.path == flow["webhookPath"]
                                    and c.body.get("data", {}).get("tenantId") == tid]) >= 3, timeout=45)

    async def suspended():
        got = await call("GET", f"/api/platform/tenants/{tid}")
        return got["status"] == "SUSPENDED" and got

    got = await eventually(suspended)
    assert got["statusReason"] == "payment"

    stripe.pay(sub["id"])

    async def reactivated():
        got = await call("GET", f"/api/platform/tenants/{tid}")
        return got["status"] == "ACTIVE" and got

    await eventually(reactivated)
    billing = await eventually(lambda: billed_on("ENTERPRISE"))
    assert billing["lastPayment"]["invoiceId"] == invoice["id"] and billing["status"] == "active"

    # Every billing.payment_failed reached each receiver once (marker: the payment that followed them).
    received = failed_for_tenant(hook.events())
    assert sorted(r.json()["data"]["attemptCount"] for r in received) == [1, 2, 3]
    assert len({r.headers["webhook-id"] for r in received}) == 3
    assert [r.json()["data"]["finalAttempt"] for r in sorted(received, key=lambda r: r.json()["data"]["attemptCount"])] \
        == [False, False, True]
    for r in received:
        Webhook(endpoint["secret"]).verify(r.body, r.headers)
    flow_calls = [c for c in n8n.webhook_calls if c.path == flow["webhookPath"]
                  and c.body.get("data", {}).get("tenantId") == tid]
    assert len({c.headers["webhook-id"] for c in flow_calls}) == len(flow_calls) == 3
    assert stripe.violations == []


async def test_a_plan_added_in_tenants_is_billed_with_no_hand_mapping(gateway, owner_headers, stripe, stack):
    async def call(method, path, status=200, **kw):
        resp = await gateway.request(method, path, headers=owner_headers, **kw)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    await call("PUT", "/api/platform/integrations/stripe",
               json={"publishableKey": stripe.publishable_key, "secretKey": stripe.secret_key,
                     "webhookSecret": stripe.webhook_secret})
    code = f"E2E{uuid.uuid4().hex[:6].upper()}"
    await call("POST", "/api/platform/plans", 201,
               json={"code": code, "name": f"Crece {code}", "amount": 1500, "currency": "usd"})
    await eventually(lambda: billing_has(call, {code}))
    price = {p["code"]: p for p in await call("POST", "/api/platform/billing/plans/sync")}[code]["stripePriceId"]
    assert (stripe.prices[price]["unit_amount"], stripe.prices[price]["currency"]) == (1500, "usd")

    tenant = await call("POST", "/api/platform/tenants", 201, json={"name": f"Plan {code}", "plan": code})

    async def subscribed():
        sub = stripe.subscription_of(tenant["id"])
        return sub if sub and sub["items"]["data"][0]["price"]["id"] == price else None

    await eventually(subscribed)

    # A new price in tenants reaches billing; the next sync bills it with a new Stripe price.
    await call("PATCH", f"/api/platform/plans/{code}", json={"amount": 1800})
    await eventually(lambda: billing_has(call, {code}, lambda p: p["amount"] == 1800 and p["stripePriceId"] is None))
    repriced = {p["code"]: p for p in await call("POST", "/api/platform/billing/plans/sync")}[code]["stripePriceId"]
    assert repriced != price and stripe.prices[repriced]["unit_amount"] == 1800
    assert stripe.violations == []
