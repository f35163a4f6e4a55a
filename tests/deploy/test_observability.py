"""Opt-in (`make test-observability`): a real Prometheus (Debian package `prometheus`) scrapes the platform
started as `make run` starts it, during a workload of about a minute (tenants created and updated, a healthy
webhook subscriber, one answering 500 until its deliveries are dead letters, one answering 410 Gone, failed
and throttled logins; billing on a fake Stripe: settings, plans, a subscription per tenant, a final failed
payment; conversations on a fake Graph API: a Cloud API channel, an agent, inbound messages, one provider error). Then, through Prometheus's HTTP API: every dashboard panel's query returns data,
every alert rule evaluates without error and every series it selects exists. With OVERVIEW_PNG=<path> the
overview dashboard is drawn from the run's data into that PNG (deploy/grafana/render.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from common.testing.fake_stripe import fake_stripe
from common.testing.fake_whatsapp import fake_graph, sign, text_message, wamid
from common.testing.fixtures import server_fixture
from common.testing.receiver import webhook_receiver
from common.testing.servers import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql_queries import (
    DASHBOARDS,
    ROOT,
    alert_rules,
    dashboard_queries,
    parse,
    selectors,
)

pytestmark = [
    pytest.mark.skipif(os.environ.get("PLATAFORMA_OBSERVABILITY") != "1",
                       reason="opt-in: make test-observability (a real Prometheus against the running platform)"),
    pytest.mark.timeout(900),
]
OWNER_EMAIL, OWNER_PASSWORD = "owner@obs.local", "Obs-Owner-Passw0rd"
WORKLOAD_SECONDS = float(os.environ.get("OBSERVABILITY_WORKLOAD_SECONDS", "60"))
# Series that exist only when something goes wrong, which this healthy-enough run does not provoke.
ONLY_ON_TROUBLE = {"event_consumer_errors_total"}
GRAFANA = {'"$service"': '".*"', '"$instance"': '".*"', "$__rate_interval": "1m"}


def grafana(expr: str) -> str:
    for name, value in GRAFANA.items():
        expr = expr.replace(name, value)
    return expr


subscriber = server_fixture(webhook_receiver, "subscriber", scope="module")


@pytest.fixture(scope="module")
async def saas():
    """The outside SaaS billing and conversations call, faked at the HTTP boundary: Stripe and Meta's Graph API."""
    async with fake_stripe() as stripe, fake_graph() as graph:
        yield SimpleNamespace(stripe=stripe, graph=graph)


@pytest.fixture(scope="module")
async def stack(tmp_path_factory, postgres, kafka_broker, subscriber, saas):
    from devstack.services import SERVICES
    from devstack.supervisor import Stack

    databases = {f"{s.env_prefix}_DATABASE_URL": postgres.async_url(f"obs_{s.database}") for s in SERVICES}
    stack = Stack(tmp_path_factory.mktemp("obs-stack"), extra_env={
        **databases,
        "KAFKA_CONSUMER_GROUP_PREFIX": f"obs-{uuid.uuid4().hex[:6]}.",
        "PLATFORM_OWNER_EMAIL": OWNER_EMAIL,
        "PLATFORM_OWNER_PASSWORD": OWNER_PASSWORD,
        "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32",
        "WEBHOOK_CA_BUNDLE": str(subscriber.ca_bundle_path),
        "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "STRIPE_API_BASE": saas.stripe.url,
        "BILLING_SUSPEND_GRACE_HOURS": "0",
        "BILLING_GRACE_CHECK_SECONDS": "1",
        "BILLING_RETRY_INITIAL_SECONDS": "0.5",
        "BILLING_RETRY_MAX_SECONDS": "2",
        "WHATSAPP_GRAPH_API_BASE": saas.graph.base_url,
    })
    stack.postgres, stack.broker = postgres, kafka_broker
    try:
        await stack.start_services([s.name for s in SERVICES], ports={s.name: free_port() for s in SERVICES})
        await stack.start_gateway(port=free_port())
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(scope="module")
async def prometheus(stack, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; make test-observability does it)")
    workdir = tmp_path_factory.mktemp("prometheus")
    # Every process of every service: conversations' worker serves its own /metrics (a side port).
    ports = [(name, port) for name, proc in stack.services.items()
             for port in (proc.port, *map(int, stack.side_ports(name).values()))]
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(ROOT / "deploy/prometheus/alerts.yml")],
        "scrape_configs": [{"job_name": "plataforma", "static_configs": [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}} for name, port in ports]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    resp = await client.get("/api/v1/targets")  # 503 while its storage starts
                    targets = resp.json()["data"]["activeTargets"] if resp.status_code == 200 else []
                    if len(targets) == len(ports) and all(t["health"] == "up" for t in targets):
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (workdir / "prometheus.log").read_text()[-2000:]
                await asyncio.sleep(0.5)
            yield client
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        log.close()


@pytest.fixture(scope="module")
async def workload(stack, subscriber, prometheus, saas):
    """About a minute of traffic; returns (start, end) unix times."""
    start = time.time()
    healthy, failing, gone = subscriber.hook(), subscriber.hook(), subscriber.hook()
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=15) as gateway:
        login = await gateway.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        # Refresh rotates the token; using the old one again is a reuse (401, the family is revoked).
        old = login.json()["refreshToken"]
        assert (await gateway.post("/api/auth/refresh", json={"refreshToken": old})).status_code == 200
        assert (await gateway.post("/api/auth/refresh", json={"refreshToken": old})).status_code == 401
        # A machine's API key: services check it with auth's introspection.
        key = await gateway.post("/api/auth/api-keys", headers=headers, json={"name": "observability"})
        assert key.status_code == 201, key.text
        for token in (key.json()["key"], "plk_not-a-key"):
            await gateway.get("/api/platform/tenants?limit=1", headers={"Authorization": f"Bearer {token}"})
        for hook, events in ((healthy, ["*"]), (failing, ["tenant.created"]), (gone, ["tenant.updated"])):
            resp = await gateway.post("/api/platform/webhooks", headers=headers,
                                      json={"url": hook.url, "events": events, "description": "observability"})
            assert resp.status_code == 201 and resp.json()["status"] == "ACTIVE", resp.text
        failing.set_behaviour(status=500)
        gone.set_behaviour(status=410)
        await billing_on_fake_stripe(gateway, headers, saas.stripe, stack.gateway.url)
        await whatsapp_conversations(gateway, headers, saas.graph)
        for _ in range(7):  # a few wrong passwords: 401s, then the throttle's 429s
            await gateway.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": "wrong-password"})
        created = 0
        while time.time() - start < WORKLOAD_SECONDS:
            batch = await asyncio.gather(*(gateway.post("/api/platform/tenants", headers=headers, json={
                "name": f"Obs {uuid.uuid4().hex[:10]}", "plan": "Pro"}) for _ in range(5)))
            for resp in batch:
                assert resp.status_code == 201, resp.text
                created += 1
                last_tenant = resp.json()["id"]
                if created % 3 == 0:
                    updated = await gateway.put(f"/api/platform/tenants/{resp.json()['id']}", headers=headers,
                                                  json={"name": f"Obs {uuid.uuid4().hex[:10]}"})
                    assert updated.status_code == 200, updated.text
            await gateway.get("/api/platform/tenants?limit=20", headers=headers)
            await gateway.get(f"/api/platform/tenants/{uuid.uuid4()}", headers=headers)  # a 404
            await asyncio.sleep(0.1)
        await healthy.wait_for(lambda h: h.event_count >= created, timeout=60)
        # Stripe gives up on one tenant's payment: billing.payment_failed, then (no grace) delinquent.
        subscription = await until(lambda: saas.stripe.subscription_of(last_tenant), timeout=60)
        saas.stripe.fail_payment(subscription["id"], final=True)
        await until(lambda: gateway.get(f"/api/platform/tenants/{last_tenant}", headers=headers),
                    check=lambda r: r.json()["status"] == "SUSPENDED", timeout=60)
    # Two more scrapes and rule evaluations after the last request.
    await asyncio.sleep(6)
    return start, time.time()


async def until(probe, *, check=bool, timeout: float):
    """Await `probe()` (a value or an awaitable) until `check` accepts it; no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if check(value):
            return value
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.2)


async def billing_on_fake_stripe(gateway: httpx.AsyncClient, headers: dict, stripe, gateway_url: str) -> None:
    """Stripe connected and plans synced: each new tenant gets a customer and a subscription (Stripe calls),
    Stripe's events come back signed to the gateway's /api/webhooks/stripe."""
    stripe.deliver_to(f"{gateway_url}/api/webhooks/stripe")
    resp = await gateway.put("/api/platform/integrations/stripe", headers=headers, json={
        "publishableKey": stripe.publishable_key, "secretKey": stripe.secret_key, "webhookSecret": stripe.webhook_secret})
    assert resp.status_code == 200, resp.text
    resp = await gateway.post("/api/platform/billing/plans/sync", headers=headers)
    assert resp.status_code == 200, resp.text


async def whatsapp_conversations(gateway: httpx.AsyncClient, headers: dict, graph) -> None:
    """A Cloud API channel with an agent; three contacts write (signed webhooks through the gateway), the agent
    greets them through the fake Graph API, whose first send fails once (a provider error, retried)."""
    number, token, secret = str(uuid.uuid4().int)[:15], "EAAG" + uuid.uuid4().hex, "obs-" + uuid.uuid4().hex
    graph.add_number(number, token=token)
    channel = await gateway.post("/api/platform/operations/channels", headers=headers, json={
        "name": "obs", "type": "CLOUD_API", "phoneNumberId": number, "accessToken": token, "appSecret": secret})
    assert channel.status_code == 201, channel.text
    agent = await gateway.post("/api/platform/operations/agents", headers=headers, json={
        "name": "obs", "channelId": channel.json()["id"], "greeting": "Hola"})
    assert agent.status_code == 201, agent.text
    graph.fail_next(131000)
    contacts = [f"5731{uuid.uuid4().int % 10**8:08d}" for _ in range(3)]
    for contact in contacts:
        raw = json.dumps(text_message(number, contact, "hola", message_id=wamid())).encode()
        resp = await gateway.post(f"/api/webhooks/whatsapp/{channel.json()['id']}", content=raw, headers={
            "content-type": "application/json", "X-Hub-Signature-256": sign(secret, raw)})
        assert resp.status_code == 200, resp.text
    await until(lambda: {m["to"] for m in graph.sent} >= set(contacts), check=bool, timeout=60)


async def instant(client: httpx.AsyncClient, expr: str) -> list:
    body = (await client.get("/api/v1/query", params={"query": grafana(expr)})).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


async def test_every_dashboard_panel_returns_data(prometheus, workload):
    empty = []
    for path in DASHBOARDS:
        for expr in dashboard_queries(path):
            if not await instant(prometheus, expr):
                names = {n for n, _ in selectors(parse(expr), [], {})}
                if not names & ONLY_ON_TROUBLE:
                    empty.append(f"{path.name}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


async def test_every_alert_evaluates_and_selects_existing_series(prometheus, workload):
    rules = (await prometheus.get("/api/v1/rules")).json()["data"]["groups"]
    loaded = {r["name"]: r for g in rules for r in g["rules"]}
    assert set(loaded) == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in loaded.values()), [r for r in loaded.values() if r["health"] != "ok"]
    missing = []
    for rule in alert_rules():
        for name, _ in selectors(parse(rule["expr"]), [], {}):
            if name in ONLY_ON_TROUBLE:
                continue
            if not await instant(prometheus, f"count({name})"):
                missing.append(f"{rule['alert']}: {name}")
    assert not missing, missing


async def test_alerts_that_the_workload_provokes_are_pending_or_firing(prometheus, workload):
    alerts = (await prometheus.get("/api/v1/alerts")).json()["data"]["alerts"]
    active = {a["labels"]["alertname"] for a in alerts}
    # The 410 subscriber was disabled; the state is visible to Prometheus within seconds.
    assert "WebhookEndpointDisabled" in active, alerts


async def test_overview_picture(prometheus, workload):
    out = os.environ.get("OVERVIEW_PNG")
    if not out:
        pytest.skip("set OVERVIEW_PNG=<path> to draw the overview dashboard from this run")
    sys.path.insert(0, str(ROOT / "deploy/grafana"))
    from render import render_png

    board = json.loads((ROOT / "deploy/grafana/dashboards/overview.json").read_text())
    start, end = workload
    path = await asyncio.to_thread(render_png, board, str(prometheus.base_url).rstrip("/"), start - 30, end,
                                   Path(out))
    assert path.stat().st_size > 10_000
