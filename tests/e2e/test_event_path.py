"""The foundation's promise, through the gateway: an API call becomes a signed webhook at a verified
HTTPS subscriber; an unverified one receives nothing; restarts lose nothing and double nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import httpx
from standardwebhooks import Webhook


async def create_endpoint(gateway, headers, hook, events=("tenant.*",)):
    resp = await gateway.post("/api/platform/webhooks", headers=headers,
                              json={"url": hook.url, "events": list(events), "description": "e2e"})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def create_tenant(gateway, headers, name=None):
    resp = await gateway.post("/api/platform/tenants", headers=headers,
                              json={"name": name or f"E2E {uuid.uuid4().hex[:10]}", "plan": "Pro"})
    assert resp.status_code == 201, resp.text
    return resp.json()


def tenant_events(hook, tenant_ids):
    return [r for r in hook.events() if r.json()["data"].get("tenantId") in tenant_ids]


async def test_login_webhook_tenant_signed_delivery(gateway, owner_headers, receiver):
    hook = receiver.hook()
    silent = receiver.hook(challenge="none")
    endpoint = await create_endpoint(gateway, owner_headers, hook)
    assert endpoint["status"] == "ACTIVE", endpoint
    assert endpoint["secret"].startswith("whsec_")
    unverified = await create_endpoint(gateway, owner_headers, silent)
    assert unverified["status"] == "PENDING_VERIFICATION"
    assert len(hook.verifications()) == 1 and len(silent.verifications()) == 1

    resp = await gateway.post("/api/platform/tenants", headers=owner_headers,
                              json={"name": f"E2E {uuid.uuid4().hex[:10]}", "plan": "Pro"})
    assert resp.status_code == 201
    tenant, trace_id = resp.json(), resp.headers["x-trace-id"]
    await hook.wait_for(lambda h: tenant_events(h, {tenant["id"]}), timeout=10)
    [request] = tenant_events(hook, {tenant["id"]})
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["event"] == "tenant.created"
    assert payload["data"] == {"tenantId": tenant["id"], "name": tenant["name"], "plan": "Pro", "status": "ACTIVE"}
    assert request.headers["webhook-id"] == payload["id"]
    # One trace from the API call to the subscriber: HTTP → outbox row → Kafka headers → webhook.
    version, webhook_trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert webhook_trace_id == trace_id

    # The endpoint that never echoed the challenge gets nothing, not even later events.
    await create_tenant(gateway, owner_headers)
    await asyncio.sleep(1.0)
    assert silent.events() == []
    detail = (await gateway.get(f"/api/platform/webhooks/{unverified['id']}", headers=owner_headers)).json()
    assert detail["status"] == "PENDING_VERIFICATION"
    assert "secret" not in detail or not str(detail.get("secret", "")).startswith("whsec_")


async def _restart(stack, name, sig):
    proc = stack.services[name]
    proc.process.send_signal(sig)
    await asyncio.to_thread(proc.process.wait, 30)
    stack.spawn_service(name, proc.port)
    await stack.wait_ready(name)


async def _burst_across_restart(gateway, owner_headers, receiver, stack, service, sig):
    hook = receiver.hook()
    endpoint = await create_endpoint(gateway, owner_headers, hook)
    assert endpoint["status"] == "ACTIVE"
    created: list[str] = []

    async def burst(n):
        for _ in range(n):
            created.append((await create_tenant(gateway, owner_headers))["id"])

    await burst(15)
    new_secret = None
    if service == "webhook-dispatcher":  # the subscriber rolls its secret too (24 h grace by default)
        rotated = await gateway.post(f"/api/platform/webhooks/{endpoint['id']}/rotate-secret",
                                     headers=owner_headers, json={})
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
    restarting = asyncio.create_task(_restart(stack, service, sig))
    if service != "tenants":
        await burst(15)  # while the dispatcher is down or starting: the events wait on Kafka
    await restarting
    after_restart = len(created)
    await burst(10)
    ids = set(created)
    await hook.wait_for(lambda h: {r.json()["data"]["tenantId"] for r in tenant_events(h, ids)} == ids,
                        timeout=90)
    await asyncio.sleep(1.0)  # room for a late duplicate
    received = tenant_events(hook, ids)
    # What an outside subscriber checks: every request is signed, and one tenant is one webhook-id
    # (a re-send after a crash repeats the id and the body, so the subscriber can drop it).
    webhook_id_of: dict[str, set[str]] = {}
    for r in received:
        payload = Webhook(endpoint["secret"]).verify(r.body, r.headers)
        assert payload["id"] == r.headers["webhook-id"]
        webhook_id_of.setdefault(payload["data"]["tenantId"], set()).add(payload["id"])
        if new_secret and payload["data"]["tenantId"] in created[after_restart:]:
            Webhook(new_secret).verify(r.body, r.headers)  # signed with both during the grace period
    assert all(len(seen) == 1 for seen in webhook_id_of.values()), webhook_id_of
    return [r.headers["webhook-id"] for r in received], ids


async def test_dispatcher_stopped_mid_stream_loses_nothing_and_doubles_nothing(gateway, owner_headers,
                                                                             receiver, stack):
    ids_seen, ids = await _burst_across_restart(gateway, owner_headers, receiver, stack,
                                                "webhook-dispatcher", signal.SIGTERM)
    assert len(ids_seen) == len(set(ids_seen)) == len(ids)


async def test_dispatcher_killed_mid_stream_loses_nothing(gateway, owner_headers, receiver, stack):
    ids_seen, ids = await _burst_across_restart(gateway, owner_headers, receiver, stack,
                                                "webhook-dispatcher", signal.SIGKILL)
    assert set(ids_seen) and len(set(ids_seen)) == len(ids)


async def test_tenants_killed_mid_stream_loses_nothing_and_doubles_nothing(gateway, owner_headers,
                                                                         receiver, stack):
    ids_seen, ids = await _burst_across_restart(gateway, owner_headers, receiver, stack, "tenants",
                                                signal.SIGKILL)
    assert len(ids_seen) == len(set(ids_seen)) == len(ids)


async def test_hostile_input_through_the_gateway_is_4xx_problem(stack, owner_headers):
    cases = [
        ("POST", "/api/platform/tenants", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/api/platform/tenants", {"json": {"name": ["x"]}}),
        ("POST", "/api/platform/tenants", {"content": b"x" * 3_000_000,
                                           "headers": {"content-type": "application/json"}}),
        ("GET", "/api/platform/tenants/%00", {}),
        ("POST", "/api/platform/webhooks", {"json": {"url": "https://169.254.169.254/latest", "events": ["*"]}}),
        ("POST", "/api/platform/webhooks", {"json": {"url": "https://0x7f000002/", "events": ["*"]}}),
        ("POST", "/api/platform/webhooks", {"json": {"url": "https://[::ffff:10.0.0.1]/", "events": ["*"]}}),
        ("POST", "/api/platform/webhooks", {"json": {"url": "https://user:pw@example.com/", "events": ["*"]}}),
        ("POST", "/api/auth/login", {"json": {"email": 5, "password": None}}),
        ("GET", "/api/platform/nothing-here", {}),
    ]
    for method, path, kwargs in cases:
        headers = owner_headers | kwargs.pop("headers", {})
        # A fresh connection per case: after a 413 the gateway closes the connection (body unread).
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=15) as gateway:
            resp = await gateway.request(method, path, headers=headers, **kwargs)
        assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text[:300])
        assert resp.headers["content-type"].startswith("application/problem+json"), (path, resp.headers)
        json.loads(resp.text)
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=15) as gateway:
        for token in ("", "Bearer", "Bearer x.y.z", "Basic abc"):
            resp = await gateway.get("/api/platform/tenants", headers={"Authorization": token})
            assert resp.status_code == 401


async def test_docs_serve_every_service_spec_offline(gateway):
    from devstack.services import SERVICES

    page = await gateway.get("/api/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text.lower()
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for spec in SERVICES:
        resp = await gateway.get(f"/api/docs/openapi/{spec.name}.json")
        assert resp.status_code == 200, spec.name
        assert resp.json()["openapi"].startswith("3.")
