"""The whole sales and support story through the gateway, with a webhook subscriber that must receive
every tenant, ticket and lead event of it exactly once, in order per resource (the endpoint is
`ordered`: an unordered endpoint delivers one resource's events in parallel, so their order is not
promised there)."""

from __future__ import annotations

import uuid
from collections import defaultdict

from standardwebhooks import Webhook

EVENT_TYPES = {
    "tenant.created", "tenant.updated", "tenant.suspended", "tenant.reactivated", "tenant.deleted",
    "ticket.created", "ticket.updated", "ticket.closed", "ticket.message.added",
    "lead.created", "lead.updated", "lead.converted", "lead.stage.changed",
}


def resource_of(payload: dict) -> str:
    data = payload["data"]
    return data.get("ticketId") or data.get("leadId") or data["tenantId"]


async def test_sales_and_support_story_reaches_the_subscriber_once_and_in_order(gateway, owner_headers, receiver):
    hook = receiver.hook()
    created = await gateway.post("/api/platform/webhooks", headers=owner_headers,
                                 json={"url": hook.url, "events": ["tenant.*", "ticket.*", "lead.*"],
                                       "ordered": True})
    assert created.status_code == 201 and created.json()["status"] == "ACTIVE", created.text
    secret = created.json()["secret"]
    expected: list[tuple[str, str]] = []  # (resource id, event) in the order the story causes them

    async def call(method, path, status=200, headers=owner_headers, **kw):
        resp = await gateway.request(method, path, headers=headers, **kw)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    # Sales: a lead moves through the pipeline, the metrics see it, then it converts.
    source = f"story-{uuid.uuid4().hex[:6]}"
    before = await call("GET", "/api/platform/leads/metrics", params={"source": source})
    lead = await call("POST", "/api/platform/leads", 201,
                      json={"name": "Empresa Historia", "email": "ceo@historia.example", "source": source,
                            "value": "1200"})
    expected.append((lead["id"], "lead.created"))
    await call("PUT", f"/api/platform/leads/{lead['id']}", json={"company": "Historia SA"})
    expected.append((lead["id"], "lead.updated"))
    for stage in ("CONTACTED", "QUALIFIED", "PROPOSAL"):
        await call("POST", f"/api/platform/leads/{lead['id']}/stage", json={"stage": stage})
        expected.append((lead["id"], "lead.stage.changed"))
    pipeline = await call("GET", "/api/platform/leads/pipeline", params={"source": source})
    proposal = next(s for s in pipeline["stages"] if s["stage"]["code"] == "PROPOSAL")
    assert proposal["count"] == 1 and [x["id"] for x in proposal["leads"]["items"]] == [lead["id"]]
    await call("POST", f"/api/platform/leads/{lead['id']}/convert", json={})
    expected.append((lead["id"], "lead.converted"))
    after = await call("GET", "/api/platform/leads/metrics", params={"source": source})
    assert after["totals"]["converted"] == before["totals"]["converted"] + 1
    assert after["conversionRate"] == 1.0

    # The customer becomes a tenant, with an admin of its own.
    tenant = await call("POST", "/api/platform/tenants", 201, json={"name": f"Historia {uuid.uuid4().hex[:6]}",
                                                                    "plan": "Pro"})
    expected.append((tenant["id"], "tenant.created"))
    await call("PUT", f"/api/platform/tenants/{tenant['id']}", json={"plan": "Enterprise"})
    expected.append((tenant["id"], "tenant.updated"))
    admin_email, admin_password = f"admin-{uuid.uuid4().hex[:6]}@historia.example", "Adm1n-Passw0rd"
    await call("POST", "/api/auth/users", 201, json={"email": admin_email, "password": admin_password,
                                                     "platformRole": "TENANT_ADMIN", "tenantId": tenant["id"]})
    login = await call("POST", "/api/auth/login", json={"email": admin_email, "password": admin_password})
    admin = {"Authorization": f"Bearer {login['accessToken']}"}

    # Support: the tenant's admin opens a critical ticket; the owner answers and closes it.
    ticket = await call("POST", "/api/platform/support/tickets", 201, headers=admin,
                        json={"subject": "Production is down", "description": "Nothing loads", "priority": "CRITICAL"})
    expected.append((ticket["id"], "ticket.created"))
    await call("PUT", f"/api/platform/support/tickets/{ticket['id']}", json={"status": "IN_PROGRESS"})
    expected.append((ticket["id"], "ticket.updated"))
    await call("POST", f"/api/platform/support/tickets/{ticket['id']}/messages", 201,
               json={"body": "We are on it"})
    expected.append((ticket["id"], "ticket.message.added"))
    await call("PUT", f"/api/platform/support/tickets/{ticket['id']}", json={"status": "CLOSED"})
    expected.append((ticket["id"], "ticket.closed"))
    mine = await call("GET", "/api/platform/support/tickets", headers=admin)
    assert [t["id"] for t in mine["items"]] == [ticket["id"]]

    # The tenant's remaining lifecycle.
    await call("POST", f"/api/platform/tenants/{tenant['id']}/suspend", json={"reason": "story"})
    expected.append((tenant["id"], "tenant.suspended"))
    await call("POST", f"/api/platform/tenants/{tenant['id']}/reactivate")
    expected.append((tenant["id"], "tenant.reactivated"))
    await call("DELETE", f"/api/platform/tenants/{tenant['id']}", 204)
    expected.append((tenant["id"], "tenant.deleted"))

    resources = {r for r, _ in expected}

    def story(h):
        return [r for r in h.events() if resource_of(r.json()) in resources]

    await hook.wait_for(lambda h: len(story(h)) >= len(expected), timeout=30)
    received = story(hook)
    payloads = [Webhook(secret).verify(r.body, r.headers) for r in received]
    assert {p["event"] for p in payloads} == EVENT_TYPES
    assert len({p["id"] for p in payloads}) == len(payloads) == len(expected)  # exactly once
    per_resource_expected, per_resource_received = defaultdict(list), defaultdict(list)
    for resource, event in expected:
        per_resource_expected[resource].append(event)
    for p in payloads:
        per_resource_received[resource_of(p)].append(p["event"])
    assert per_resource_received == per_resource_expected  # in order per resource
    ticket_created = next(p for p in payloads if p["event"] == "ticket.created")
    assert ticket_created["data"]["priority"] == "CRITICAL" and ticket_created["tenantId"] == tenant["id"]
