"""Stripe's webhook: nothing unverified is stored; a verified event is stored once and applied by the worker,
newest state winning whatever the order."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from common.testing.checks import assert_problem
from common.testing.fake_stripe import stripe_signature

WEBHOOK = "/api/webhooks/stripe"


def event(type: str, obj: dict[str, Any], created: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": type, "created": created,
            "api_version": "2026-06-24.dahlia", "livemode": False, "pending_webhooks": 1,
            "data": {"object": obj, **extra}}


def subscription(tenant_id: uuid.UUID, sub_id: str, status: str, price: str, *, period_end: int | None = None,
                 old_shape: bool = False) -> dict[str, Any]:
    item = {"id": f"si_{sub_id}", "object": "subscription_item", "price": {"id": price, "object": "price"}}
    obj = {"id": sub_id, "object": "subscription", "customer": f"cus_{sub_id}", "status": status,
           "metadata": {"tenantId": str(tenant_id)}, "cancel_at_period_end": False,
           "items": {"object": "list", "data": [item]}}
    if old_shape:
        obj["current_period_end"] = period_end
    else:
        item["current_period_end"] = period_end
    return obj


def invoice(tenant_id: uuid.UUID, inv_id: str, sub_id: str, *, status: str, attempts: int, next_attempt: int | None,
            old_shape: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": inv_id, "object": "invoice", "customer": f"cus_{sub_id}", "status": status,
                           "amount_due": 4900, "amount_paid": 4900 if status == "paid" else 0, "currency": "usd",
                           "attempt_count": attempts, "next_payment_attempt": next_attempt,
                           "hosted_invoice_url": f"https://invoice.stripe.com/i/{inv_id}"}
    if old_shape:
        obj["subscription"] = sub_id
        obj["subscription_details"] = {"metadata": {"tenantId": str(tenant_id)}}
    else:
        obj["parent"] = {"type": "subscription_details",
                         "subscription_details": {"subscription": sub_id, "metadata": {"tenantId": str(tenant_id)}}}
    return obj


@pytest.fixture
def post(anonymous, stripe):
    async def send(body: bytes | dict[str, Any], *, secret: str | None = None, timestamp: int | None = None,
                   signature: str | None = None, headers: dict[str, str] | None = None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sig = signature if signature is not None else stripe_signature(raw, secret or stripe.webhook_secret, timestamp)
        return await anonymous.post(WEBHOOK, content=raw, headers={"Stripe-Signature": sig,
                                                                  "Content-Type": "application/json", **(headers or {})})

    return send


async def stored(count) -> int:
    return await count("SELECT count(*) FROM stripe_events")


async def test_unverified_or_malformed_requests_are_refused_and_store_nothing(configured, post, anonymous, count):
    before = await stored(count)
    good = event("customer.subscription.updated", subscription(uuid.uuid4(), "sub_x", "active", "price_x"),
                 int(time.time()))
    raw = json.dumps(good).encode()
    assert_problem(await post(good, secret="whsec_forged0000000000000000"), 400, detail="does not verify")
    assert_problem(await anonymous.post(WEBHOOK, content=raw), 400, detail="missing stripe-signature")
    assert_problem(await post(good, timestamp=int(time.time()) - 301), 400, detail="does not verify")
    # Not hex, not even ASCII (a 500 once: the SDK's compare_digest raised TypeError).
    non_ascii = f"t={int(time.time())},v1=\u00e9".encode()
    assert_problem(await anonymous.post(WEBHOOK, content=raw, headers={"Stripe-Signature": non_ascii}), 400,
                   detail="does not verify")
    assert_problem(await post(b"not json at all"), 400, detail="not json")
    assert_problem(await post(b"[1, 2]"), 400, detail="not a stripe event")
    assert_problem(await post({"id": "evt_1", "type": "x"}), 400, detail="created")
    assert_problem(await post({**good, "id": "nope"}), 400, detail="id")
    # Signed, but holding text PostgreSQL's jsonb refuses: the sender's fault, not a 500.
    assert_problem(await post({**good, "description": "nul \u0000 byte"}), 400, detail="cannot store")
    big = json.dumps({**good, "pad": "x" * (2 * 1024 * 1024)}).encode()
    assert (await post(big)).status_code == 413
    assert await stored(count) == before


async def test_a_signature_replayed_with_another_body_is_refused(configured, post, stripe, count):
    before = await stored(count)
    first = event("customer.subscription.updated", subscription(uuid.uuid4(), "sub_r", "active", "price_r"),
                  int(time.time()))
    header = stripe_signature(json.dumps(first).encode(), stripe.webhook_secret)
    changed = {**first, "type": "customer.subscription.deleted"}
    assert_problem(await post(changed, signature=header), 400, detail="does not verify")
    assert await stored(count) == before


async def wait_until(predicate, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_unknown_types_are_acknowledged_stored_once_and_ignored(configured, post, count):
    unknown = event("charge.refunded", {"id": "ch_1", "object": "charge"}, int(time.time()))
    first, again = await post(unknown), await post(unknown)
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": True, "duplicate": False} and again.json()["duplicate"] is True
    sid = unknown["id"]

    async def ignored() -> bool:
        return await count("SELECT count(*) FROM stripe_events WHERE stripe_event_id = :i AND outcome = 'ignored'",
                           i=sid) == 1

    await wait_until(ignored)


async def test_an_event_of_the_other_mode_is_acknowledged_counted_and_not_applied(configured, post, count,
                                                                                  events):
    """The keys are test keys: a live event (signed with this endpoint's secret) changes nothing. It is
    answered 2xx, because Stripe retries any other answer for days."""
    def other_mode() -> float:
        return REGISTRY.get_sample_value("billing_stripe_events_other_mode_total", {"livemode": "live"}) or 0.0

    tenant, sub, inv = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:10]}", f"in_{uuid.uuid4().hex[:10]}"
    before, seen = await stored(count), other_mode()
    live = event("invoice.payment_failed", invoice(tenant, inv, sub, status="open", attempts=1, next_attempt=None),
                 int(time.time())) | {"livemode": True}
    resp = await post(live)
    assert resp.status_code == 200 and resp.json() == {"received": True, "duplicate": False, "ignored": "livemode"}
    assert (await post(live)).json()["ignored"] == "livemode"  # Stripe's redelivery: the same answer
    assert await stored(count) == before and other_mode() == seen + 2
    assert_problem(await post(event("charge.refunded", {"id": "ch_2"}, int(time.time())) | {"livemode": "yes"}), 400,
                   detail="livemode")
    # The same failure in test mode is applied: the only billing.payment_failed of the tenant is that one.
    marker = event("invoice.payment_failed", invoice(tenant, inv, sub, status="open", attempts=2, next_attempt=None),
                   int(time.time()))
    assert (await post(marker)).json() == {"received": True, "duplicate": False}
    await events.wait_for(lambda e: e.event == "billing.payment_failed" and e.tenant_id == tenant)
    failed = events.matching(lambda e: e.event == "billing.payment_failed" and e.tenant_id == tenant)
    assert [e.data["attemptCount"] for e in failed] == [2]
    assert await count("SELECT count(*) FROM stripe_events WHERE stripe_event_id = :i", i=live["id"]) == 0


async def test_the_newest_state_wins_in_both_payload_shapes(configured, post, owner, events):
    tenant, sub, inv = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:10]}", f"in_{uuid.uuid4().hex[:10]}"
    t0 = int(time.time())
    history = [
        event("customer.subscription.created", subscription(tenant, sub, "active", "price_a", period_end=t0 + 100,
                                                            old_shape=True), t0),
        event("invoice.payment_failed", invoice(tenant, inv, sub, status="open", attempts=1, next_attempt=t0 + 50,
                                                old_shape=True), t0 + 1),
        event("customer.subscription.updated", subscription(tenant, sub, "past_due", "price_a", period_end=t0 + 100),
              t0 + 2, previous_attributes={"status": "active"}),
        event("invoice.payment_succeeded", invoice(tenant, inv, sub, status="paid", attempts=2, next_attempt=None),
              t0 + 3),
        event("customer.subscription.updated", subscription(tenant, sub, "active", "price_a", period_end=t0 + 200),
              t0 + 4, previous_attributes={"status": "past_due"}),
    ]
    for e in reversed(history):  # newest first, then the old ones again
        assert (await post(e)).status_code == 200
    for e in history:
        assert (await post(e)).status_code == 200

    async def settled() -> bool:
        resp = await owner.get(f"/api/platform/billing/tenants/{tenant}")
        return resp.status_code == 200 and resp.json()["status"] == "active" and resp.json()["lastPayment"] is not None

    await wait_until(settled)
    got = (await owner.get(f"/api/platform/billing/tenants/{tenant}")).json()
    assert got["currentPeriodEnd"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(t0 + 200)))
    assert got["openInvoices"] == [] and got["lastPayment"]["invoiceId"] == inv
    invoices = (await owner.get("/api/platform/billing/invoices", params={"tenantId": str(tenant)})).json()
    assert [(i["status"], i["attemptCount"]) for i in invoices["items"]] == [("paid", 2)]
    # Each change published once; what arrived after a newer state published nothing.
    await events.wait_for(lambda e: e.event == "billing.payment_succeeded" and e.data["invoiceId"] == inv)
    await post(event("charge.refunded", {"id": "ch_marker"}, int(time.time())))
    names = [e.event for e in events.matching(lambda e: e.data.get("tenantId") == str(tenant))]
    assert names.count("billing.subscription.created") == 1 and names.count("billing.payment_succeeded") == 1
    assert len(names) == len(set((e.event, e.data.get("status"), e.data.get("attemptCount"))
                                 for e in events.matching(lambda e: e.data.get("tenantId") == str(tenant))))


async def test_processed_events_are_purged_after_the_retention(configured, post, count, db, database_url):
    from billing.config import Settings
    from billing.context import Billing
    from billing.subscription import grace
    from common.db import Database

    old, recent = (event("charge.refunded", {"id": f"ch_{i}"}, int(time.time())) for i in range(2))
    for e in (old, recent):
        assert (await post(e)).status_code == 200

    async def both_processed() -> bool:
        return await count("SELECT count(*) FROM stripe_events WHERE stripe_event_id IN (:a, :b) "
                           "AND processed_at IS NOT NULL", a=old["id"], b=recent["id"]) == 2

    await wait_until(both_processed)
    async with db.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE stripe_events SET processed_at = now() - interval '31 days' "
                                "WHERE stripe_event_id = :a"), {"a": old["id"]})
    database = Database(database_url)
    try:
        assert await grace.purge(database, Billing(settings=Settings(database_url=database_url))) >= 1
    finally:
        await database.dispose()
    assert await count("SELECT count(*) FROM stripe_events WHERE stripe_event_id = :a", a=old["id"]) == 0
    assert await count("SELECT count(*) FROM stripe_events WHERE stripe_event_id = :b", b=recent["id"]) == 1


async def test_a_late_first_payment_of_an_older_invoice_leaves_the_newer_overdue_one_delinquent(configured, post,
                                                                                                 events, count):
    tenant, sub = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:10]}"
    older, newer = f"in_{uuid.uuid4().hex[:10]}", f"in_{uuid.uuid4().hex[:10]}"
    t0, month = int(time.time()), 30 * 86400

    def bill(inv_id: str, created: int, **state: Any) -> dict[str, Any]:
        return invoice(tenant, inv_id, sub, **state) | {"created": created}  # Stripe's time of the invoice

    def paid(e, inv_id: str) -> bool:
        return e.event == "billing.payment_succeeded" and e.data["invoiceId"] == inv_id

    async def overdue(invoice_id: str | None) -> int:
        where = "overdue_since IS NULL" if invoice_id is None else \
            "overdue_invoice_id = :inv AND delinquent_at IS NOT NULL"
        return await count(f"SELECT count(*) FROM billing_subscriptions WHERE stripe_subscription_id = :sub "
                           f"AND {where}", sub=sub, inv=invoice_id)

    await post(event("customer.subscription.created", subscription(tenant, sub, "active", "price_a",
                                                                    period_end=t0 + month), t0))
    # Stripe gives up on this month's invoice: after the grace period the tenant is delinquent.
    await post(event("invoice.payment_failed", bill(newer, t0, status="open", attempts=4, next_attempt=None), t0 + 1))
    await post(event("customer.subscription.updated", subscription(tenant, sub, "unpaid", "price_a",
                                                                    period_end=t0 + month), t0 + 2,
                     previous_attributes={"status": "active"}))
    await events.wait_for(lambda e: e.event == "billing.subscription.delinquent" and e.data["invoiceId"] == newer)

    # Last month's invoice, never seen before, is paid now: published, but the delinquency stays.
    await post(event("invoice.payment_succeeded", bill(older, t0 - month, status="paid", attempts=1,
                                                       next_attempt=None), t0 + 3))
    late = await events.wait_for(lambda e: paid(e, older))
    assert await overdue(newer) == 1
    assert late.data["status"] == "paid" and late.data.get("settlesDelinquency") is False

    # The overdue invoice itself is paid: that ends it.
    await post(event("invoice.payment_succeeded", bill(newer, t0, status="paid", attempts=5, next_attempt=None),
                     t0 + 4))
    settled = await events.wait_for(lambda e: paid(e, newer))
    assert settled.data["settlesDelinquency"] is True
    assert await overdue(None) == 1
    assert len(events.matching(lambda e: e.event == "billing.subscription.delinquent"
                               and e.data["subscriptionId"] == sub)) == 1
