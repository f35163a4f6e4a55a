"""Tenant events (through Kafka, as tenants publishes them) become Stripe customers, subscriptions, price
changes and cancellations: once each, whatever Stripe does meanwhile."""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections import Counter

import pytest

BILLING = "/api/platform/billing"


async def wait_until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


@pytest.fixture
async def prices(owner, configured) -> dict[str, str]:
    return {p["code"]: p["stripePriceId"] for p in (await owner.get(f"{BILLING}/plans")).json()}


async def billing_of(owner, tenant: uuid.UUID) -> dict | None:
    resp = await owner.get(f"{BILLING}/tenants/{tenant}")
    return resp.json() if resp.status_code == 200 else None


def customers_of(stripe, tenant: uuid.UUID) -> int:
    return sum(1 for c in stripe.customers.values() if c["metadata"].get("tenantId") == str(tenant))


def subscriptions_of(stripe, tenant: uuid.UUID) -> int:
    return sum(1 for s in stripe.subscriptions.values() if s["metadata"].get("tenantId") == str(tenant))


async def subscribed(owner, stripe, tenant: uuid.UUID, plan: str = "PRO") -> dict:
    async def ready() -> bool:
        got = await billing_of(owner, tenant)
        return got is not None and got["plan"] == plan and got["status"] == "active"

    await wait_until(ready)
    return stripe.subscription_of(tenant)


async def test_plans_sync_is_idempotent(owner, configured, stripe):
    await owner.post(f"{BILLING}/plans/sync")  # plans other tests added since the session's sync get their prices
    before = Counter(stripe.created)
    plans = (await owner.post(f"{BILLING}/plans/sync")).json()
    assert {p["code"] for p in plans} >= {"FREE", "PRO", "ENTERPRISE"}
    assert all(p["stripePriceId"].startswith("price_") and p["mappedBy"] in ("sync", "manual") for p in plans)
    assert stripe.created["price"] == before["price"] and stripe.created["product"] == before["product"]
    pro = next(p for p in plans if p["code"] == "PRO")
    assert stripe.prices[pro["stripePriceId"]]["unit_amount"] == 4900


async def test_a_tenant_is_subscribed_moved_between_plans_and_cancelled_once(owner, stripe, tenants, prices,
                                                                             events, count):
    tenant = uuid.uuid4()
    await tenants.created(tenant, plan="Pro")
    sub = await subscribed(owner, stripe, tenant)
    assert customers_of(stripe, tenant) == 1 and subscriptions_of(stripe, tenant) == 1
    assert sub["items"]["data"][0]["price"]["id"] == prices["PRO"]
    created = await events.wait_for(lambda e: e.event == "billing.subscription.created" and e.tenant_id == tenant)
    assert created.data["plan"] == "PRO" and created.data["status"] == "active"

    changes = stripe.created["price_change"]
    await tenants.plan_changed(tenant, "Enterprise", previous="Pro")
    await subscribed(owner, stripe, tenant, plan="ENTERPRISE")
    assert stripe.created["price_change"] == changes + 1
    update = [params for method, path, params in stripe.calls if path == f"/v1/subscriptions/{sub['id']}"
              and method == "POST"]
    assert update[-1]["proration_behavior"] == "create_prorations"
    assert update[-1]["items"] == [{"id": sub["items"]["data"][0]["id"], "price": prices["ENTERPRISE"]}]
    moved = await events.wait_for(lambda e: e.event == "billing.subscription.updated" and e.tenant_id == tenant)
    assert moved.data["plan"] == "ENTERPRISE" and moved.data["previousPlan"] == "PRO"
    assert moved.data["planChangedInStripe"] is False

    # The customer moves back to Pro in Stripe's portal: announced as a change made in Stripe, once; tenants
    # following it (its tenant.updated) makes no second Stripe call.
    stripe.change_price_in_portal(sub["id"], prices["PRO"])
    portal = await events.wait_for(lambda e: e.event == "billing.subscription.updated" and e.tenant_id == tenant
                                   and e.data["planChangedInStripe"])
    assert portal.data["plan"] == "PRO"
    echo = await tenants.plan_changed(tenant, "Pro", previous="Enterprise")

    async def echo_done() -> bool:
        return await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND done_at IS NOT NULL",
                           e=echo) == 1

    await wait_until(echo_done)
    assert stripe.created["price_change"] == changes + 2  # ours and the portal's, nothing more

    await tenants.deleted(tenant)
    await events.wait_for(lambda e: e.event == "billing.subscription.canceled" and e.tenant_id == tenant)
    assert stripe.subscriptions[sub["id"]]["status"] == "canceled"
    assert (await billing_of(owner, tenant))["status"] == "canceled"


async def test_our_own_plan_change_is_not_announced_as_made_in_stripe_when_its_event_comes_first(
        owner, stripe, tenants, prices, events):
    tenant = uuid.uuid4()
    await tenants.created(tenant, plan="Pro")
    sub = await subscribed(owner, stripe, tenant)
    changes = stripe.created["price_change"]
    # The change is made in Stripe, but its answers are lost (three tries of one attempt, then the next attempts'):
    # Stripe's customer.subscription.updated reaches billing first.
    stripe.lose_answers(9, path=f"/v1/subscriptions/{sub['id']}")
    await tenants.plan_changed(tenant, "Enterprise", previous="Pro")
    moved = await events.wait_for(lambda e: e.event == "billing.subscription.updated" and e.tenant_id == tenant)
    assert moved.data["plan"] == "ENTERPRISE" and moved.data["planChangedInStripe"] is False
    await subscribed(owner, stripe, tenant, plan="ENTERPRISE")
    assert stripe.created["price_change"] == changes + 1


async def test_failed_payments_are_published_each_once_with_the_last_attempt_marked(owner, stripe, tenants,
                                                                                    prices, events):
    tenant = uuid.uuid4()
    await tenants.created(tenant, plan="Pro")
    sub = await subscribed(owner, stripe, tenant)
    stripe.fail_payment(sub["id"])
    stripe.fail_payment(sub["id"])
    invoice = stripe.fail_payment(sub["id"], final=True)

    def failed(e) -> bool:
        return e.event == "billing.payment_failed" and e.tenant_id == tenant

    await events.wait_for(lambda e: failed(e) and e.data["attemptCount"] == 3)
    await events.wait_for(lambda e: e.event == "billing.subscription.updated" and e.tenant_id == tenant
                          and e.data["status"] == "unpaid")
    # Stripe gave up: after the grace period (1.8 s here) tenants is told to suspend, once.
    delinquent = await events.wait_for(lambda e: e.event == "billing.subscription.delinquent" and e.tenant_id == tenant)
    assert delinquent.data["invoiceId"] == invoice["id"] and delinquent.data["reason"] == "payment"
    stripe.pay(sub["id"])
    paid = await events.wait_for(lambda e: e.event == "billing.payment_succeeded" and e.tenant_id == tenant)
    got = sorted((e.data["attemptCount"], e.data["finalAttempt"], e.data["nextPaymentAttempt"] is None)
                 for e in events.matching(failed))
    assert got == [(1, False, False), (2, False, False), (3, True, True)]
    last = next(e for e in events.matching(failed) if e.data["attemptCount"] == 3)
    assert last.data | {"nextPaymentAttempt": None} == last.data
    assert last.data["invoiceId"] == invoice["id"] and last.data["amountDue"] == 4900
    assert last.data["hostedInvoiceUrl"] == invoice["hosted_invoice_url"] and last.data["currency"] == "USD"
    assert paid.data["amountPaid"] == 4900 and paid.data["status"] == "paid"
    assert len(events.matching(lambda e: e.event == "billing.subscription.delinquent" and e.tenant_id == tenant)) == 1
    tenant_view = await billing_of(owner, tenant)
    assert tenant_view["lastPayment"]["invoiceId"] == invoice["id"] and tenant_view["openInvoices"] == []


async def test_stripe_down_then_throttling_loses_and_doubles_nothing(owner, stripe, tenants, prices, count):
    """50 tenants created while Stripe is unreachable, then answering 429 with Retry-After: each ends with
    exactly one customer and one subscription (the outage is seconds here, not 30 s: the job backoff is
    capped at BILLING_RETRY_MAX_SECONDS=1 in these tests)."""
    stripe.down = True
    batch = [uuid.uuid4() for _ in range(50)]
    for tenant in batch:
        await tenants.created(tenant, plan="Free")

    async def refused_while_down() -> bool:
        return await count("SELECT count(*) FROM billing_sync_jobs WHERE tenant_id = ANY(:ids) "
                           "AND last_error IS NOT NULL", ids=batch) >= 10

    await wait_until(refused_while_down, timeout=60)
    assert all(subscriptions_of(stripe, t) == 0 for t in batch)
    stripe.fail_next(5, status=429, retry_after=0.2)
    stripe.fail_next(3, status=500)
    stripe.down = False

    async def all_subscribed() -> bool:
        return all(stripe.subscription_of(t) is not None for t in batch) and all(
            [(await billing_of(owner, t) or {}).get("status") == "active" for t in batch])

    await wait_until(all_subscribed, timeout=90)
    assert [customers_of(stripe, t) for t in batch] == [1] * 50
    assert [subscriptions_of(stripe, t) for t in batch] == [1] * 50


async def test_a_tenant_on_a_plan_without_a_price_waits_for_the_sync_then_is_subscribed(owner, stripe, tenants,
                                                                                        count, configured,
                                                                                        plan_copy):
    code = f"T{uuid.uuid4().hex[:6].upper()}"
    await tenants.plan(code, f"Plan {code}", 900, currency="EUR")  # added in tenants
    plan = await plan_copy(owner, code)
    assert plan["stripePriceId"] is None and plan["amount"] == 900 and plan["currency"] == "EUR", plan
    tenant = uuid.uuid4()
    await tenants.created(tenant, plan=f"Plan {code}")

    async def waiting() -> bool:
        return await count("SELECT count(*) FROM billing_sync_jobs WHERE tenant_id = :t AND done_at IS NULL "
                           "AND last_error LIKE '%has no Stripe price%'", t=tenant) == 1

    await wait_until(waiting)
    assert subscriptions_of(stripe, tenant) == 0
    plans = {p["code"]: p for p in (await owner.post(f"{BILLING}/plans/sync")).json()}
    price = plans[code]["stripePriceId"]
    assert stripe.prices[price]["unit_amount"] == 900 and stripe.prices[price]["currency"] == "eur"
    sub = await subscribed(owner, stripe, tenant, plan=code)  # at once, not after the job's backoff
    assert sub["items"]["data"][0]["price"]["id"] == price

    # Mapping by hand to an existing price: checked with Stripe first, and it must bill the plan's terms.
    resp = await owner.put(f"{BILLING}/plans/{code}", json={"priceId": "price_doesnotexist"})
    assert resp.status_code == 422 and "no price" in resp.json()["detail"]
    resp = await owner.put(f"{BILLING}/plans/{code}", json={"priceId": plans["PRO"]["stripePriceId"]})
    assert resp.status_code == 422 and "4900 USD per month" in resp.json()["detail"], resp.text
    # Same amount, currency and interval, yet not the plan's terms: every 3 months, metered, tiered.
    for change in ({"interval_count": 3}, {"usage_type": "metered"}, {"tiers_mode": "graduated"}):
        other = copy.deepcopy(stripe.prices[price]) | {"id": f"price_{uuid.uuid4().hex[:14]}"}
        if "tiers_mode" in change:
            other |= {"billing_scheme": "tiered", "tiers_mode": "graduated", "unit_amount": None}
        else:
            other["recurring"] |= change
        stripe.prices[other["id"]] = other
        resp = await owner.put(f"{BILLING}/plans/{code}", json={"priceId": other["id"]})
        assert resp.status_code == 422 and "once per interval" in resp.json()["detail"], (change, resp.text)
    resp = await owner.put(f"{BILLING}/plans/{code}", json={"priceId": price})
    assert resp.json()["mappedBy"] == "manual" and resp.json()["amount"] == 900
    # Plans are tenants': billing neither adds one nor changes its terms.
    resp = await owner.put(f"{BILLING}/plans/NOSUCH{code}", json={"priceId": price})
    assert resp.status_code == 404 and "/api/platform/plans" in resp.json()["detail"]
    resp = await owner.put(f"{BILLING}/plans/{code}", json={"name": "Other", "amount": 100})
    assert resp.status_code == 422


async def test_a_deleted_tenant_is_cancelled_even_behind_a_plan_change_stripe_refuses(owner, stripe, tenants, prices,
                                                                                      count):
    tenant = uuid.uuid4()
    await tenants.created(tenant, plan="Pro")
    sub = await subscribed(owner, stripe, tenant)
    # Stripe will not switch the subscription to Enterprise's price (here gone: a 404; an archived price or one of
    # another currency is a 400): the job is refused at every try, and waits for the owner.
    enterprise = stripe.prices.pop(prices["ENTERPRISE"])
    try:
        change = await tenants.plan_changed(tenant, "Enterprise", previous="Pro")

        async def refused() -> bool:
            return await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND done_at IS NULL "
                               "AND attempts >= 2", e=change) == 1

        await wait_until(refused)
        await tenants.deleted(tenant)  # the cancellation is not held behind the refused change

        async def cancelled() -> bool:  # in Stripe, then recorded by billing
            return stripe.subscriptions[sub["id"]]["status"] == "canceled" \
                and (await billing_of(owner, tenant))["status"] == "canceled"

        await wait_until(cancelled, timeout=20)
    finally:
        stripe.prices[enterprise["id"]] = enterprise
    assert await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND done_at IS NOT NULL "
                       "AND last_error LIKE 'superseded: the tenant was deleted%'", e=change) == 1
    assert stripe.subscriptions[sub["id"]]["items"]["data"][0]["price"]["id"] == prices["PRO"]


async def test_a_tenant_deleted_while_waiting_for_its_plans_price_is_never_subscribed(owner, stripe, tenants, count,
                                                                                      configured, plan_copy):
    code = f"T{uuid.uuid4().hex[:6].upper()}"
    await tenants.plan(code, f"Plan {code}", 700, currency="EUR")
    await plan_copy(owner, code)
    tenant = uuid.uuid4()
    create = await tenants.created(tenant, plan=f"Plan {code}")

    async def waiting() -> bool:
        return await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND done_at IS NULL "
                           "AND last_error LIKE '%has no Stripe price%'", e=create) == 1

    await wait_until(waiting)
    cancel = await tenants.deleted(tenant)

    async def cancel_done() -> bool:
        return await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND done_at IS NOT NULL",
                           e=cancel) == 1

    await wait_until(cancel_done, timeout=20)  # the waiting create (retried once a second here) gave way to it
    assert await count("SELECT count(*) FROM billing_sync_jobs WHERE event_id = :e AND last_error LIKE "
                       "'superseded%'", e=create) == 1
    # The plan priced afterwards: nothing is made in Stripe for the deleted tenant (run, the create would have
    # subscribed it, and Stripe invoices a subscription's first period when it is made).
    await owner.post(f"{BILLING}/plans/sync")
    await asyncio.sleep(1.5)
    assert customers_of(stripe, tenant) == 0 and subscriptions_of(stripe, tenant) == 0
    assert await billing_of(owner, tenant) is None


async def test_a_job_waiting_for_the_owner_is_tried_again_rarely_and_said_once(owner, stripe, tenants, count,
                                                                               configured, plan_copy, caplog):
    # A plan without a Stripe price: only the owner can unblock its tenants' jobs (and doing so wakes them at once).
    code = f"T{uuid.uuid4().hex[:6].upper()}"
    await tenants.plan(code, f"Plan {code}", 500, currency="EUR")
    await plan_copy(owner, code)
    tenant = uuid.uuid4()
    with caplog.at_level(logging.DEBUG, logger="billing.sync"):
        await tenants.created(tenant, plan=f"Plan {code}")

        def said_so_far() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "billing.sync" and str(tenant) in r.getMessage()]

        async def tried_three_times() -> bool:
            # The row counts an attempt when it is claimed, before the attempt says anything: both are awaited.
            return await count("SELECT count(*) FROM billing_sync_jobs WHERE tenant_id = :t AND attempts >= 3 "
                               "AND last_error LIKE '%has no Stripe price%'", t=tenant) == 1 and len(said_so_far()) >= 3

        await wait_until(tried_three_times)
    said = said_so_far()
    assert [r.levelno for r in said][:3] == [logging.WARNING, logging.DEBUG, logging.DEBUG], said
    # Waiting, it is tried again once per BILLING_RETRY_MAX_SECONDS (1 s here; 0.8-1 s with jitter), not backing off
    # from BILLING_RETRY_INITIAL_SECONDS (0.2 s here: the third attempt came 0.6 s after the first).
    assert said[2].created - said[0].created >= 1.5, [r.created for r in said]


@pytest.mark.parametrize("lost", ["/v1/customers", "/v1/subscriptions"])
async def test_a_retry_after_stripe_forgot_the_idempotency_key_finds_what_the_lost_try_made(
        owner, stripe, tenants, prices, count, service_url, lost):
    """Stripe makes the customer (or the subscription) but its answer is lost on every try of the job's first
    attempt; then 24 h pass and Stripe forgets the Idempotency-Key. The job's next attempt finds what was
    made instead of making a second one. (Stripe's webhooks are held back: the subscription's own event
    would otherwise tell billing first.)"""
    tenant = uuid.uuid4()
    lost_before = len(stripe.lost_answers)
    stripe.deliver_to(None)
    try:
        stripe.lose_answers(3, path=lost, tenant=tenant, forget_keys_after=True)
        await tenants.created(tenant, plan="Pro")

        async def job_done() -> bool:
            return await count("SELECT count(*) FROM billing_sync_jobs WHERE tenant_id = :t AND done_at IS NOT NULL",
                               t=tenant) == 1

        await wait_until(job_done)
    finally:
        stripe.deliver_to(service_url + "/api/webhooks/stripe")
    assert stripe.lost_answers[lost_before:] == [("POST", lost)] * 3  # the first attempt's tries, then the keys forgotten
    assert await count("SELECT attempts FROM billing_sync_jobs WHERE tenant_id = :t", t=tenant) == 2
    assert customers_of(stripe, tenant) == 1 and subscriptions_of(stripe, tenant) == 1
    sub = await subscribed(owner, stripe, tenant)
    assert sub["items"]["data"][0]["price"]["id"] == prices["PRO"]
