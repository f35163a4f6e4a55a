"""Tenant lifecycle through the real API; each change must put exactly one event on Kafka."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from common.testing.checks import assert_problem, assert_routes_declare_auth
from common.testing.events import collect_events
from common.testing.plugin import bearer
from tenants.app import create_app

TOPIC = "platform.tenants.events"


def unique_name(prefix: str = "Empresa") -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


async def create(owner, **body):
    body.setdefault("name", unique_name())
    resp = await owner.post("/api/platform/tenants", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_create_returns_the_tenant_and_publishes_tenant_created(owner, kafka_bootstrap):
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        tenant = await create(owner, name="Empresa Cliente " + uuid.uuid4().hex[:6], plan="Pro")
        assert tenant["status"] == "ACTIVE" and tenant["plan"] == "Pro"
        event = await events.wait_for(lambda e: e.event == "tenant.created" and str(e.tenant_id) == tenant["id"])
    assert event.source == "tenants"
    assert event.data == {"tenantId": tenant["id"], "name": tenant["name"], "plan": "Pro", "status": "ACTIVE"}
    assert (await owner.get(f"/api/platform/tenants/{tenant['id']}")).json()["name"] == tenant["name"]


async def test_the_json_keeps_its_camel_case_fields_and_bodies_take_only_them(owner):
    tenant = await create(owner, contactEmail="Ops@Example.com", settings={"locale": "es"})
    assert set(tenant) == {"id", "name", "plan", "status", "contactEmail", "settings", "statusReason",
                           "createdAt", "updatedAt", "deletedAt"}
    assert tenant["contactEmail"] == "Ops@example.com" and tenant["settings"] == {"locale": "es"}
    assert tenant["statusReason"] is None and tenant["deletedAt"] is None
    assert tenant["createdAt"] == tenant["updatedAt"]
    url = f"/api/platform/tenants/{tenant['id']}"
    changed = await owner.put(url, json={"contactEmail": "billing@example.com"})
    assert changed.status_code == 200 and changed.json()["contactEmail"] == "billing@example.com"
    assert_problem(await owner.put(url, json={"contact_email": "x@example.com"}), 422)
    suspended = (await owner.post(f"{url}/suspend", json={"reason": "unpaid"})).json()
    assert suspended["statusReason"] == "unpaid" and set(suspended) == set(tenant)
    listed = (await owner.get("/api/platform/tenants", params={"q": tenant["name"]})).json()
    assert set(listed) == {"items", "total", "limit", "offset", "totalExact", "nextCursor"}
    assert listed["items"][0] == suspended


async def test_update_says_which_fields_changed_and_a_no_op_emits_nothing(owner, kafka_bootstrap):
    tenant = await create(owner, plan="Free")
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        same = await owner.put(f"/api/platform/tenants/{tenant['id']}", json={"plan": "free"})
        assert same.status_code == 200
        resp = await owner.put(f"/api/platform/tenants/{tenant['id']}", json={"plan": "Enterprise"})
        assert resp.json()["plan"] == "Enterprise"
        event = await events.wait_for(lambda e: e.event == "tenant.updated" and str(e.tenant_id) == tenant["id"])
        await owner.post(f"/api/platform/tenants/{tenant['id']}/suspend")
        await events.wait_for(lambda e: e.event == "tenant.suspended" and str(e.tenant_id) == tenant["id"])
        updates = events.matching(lambda e: e.event == "tenant.updated" and str(e.tenant_id) == tenant["id"])
    assert event.data["changes"] == ["plan"]
    assert event.data["previous"] == {"plan": "Free"}
    assert len(updates) == 1


async def test_lifecycle_suspend_reactivate_delete_each_emit_one_event(owner, kafka_bootstrap):
    tenant = await create(owner)
    tid = tenant["id"]
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        assert (await owner.post(f"/api/platform/tenants/{tid}/suspend", json={"reason": "unpaid"})).json()[
            "status"] == "SUSPENDED"
        assert_problem(await owner.post(f"/api/platform/tenants/{tid}/suspend"), 409, detail="cannot become")
        assert (await owner.post(f"/api/platform/tenants/{tid}/reactivate")).json()["status"] == "ACTIVE"
        assert_problem(await owner.post(f"/api/platform/tenants/{tid}/reactivate"), 409, detail="cannot become")
        assert (await owner.delete(f"/api/platform/tenants/{tid}")).status_code == 204
        assert (await owner.delete(f"/api/platform/tenants/{tid}")).status_code == 204
        conflict = await owner.put(f"/api/platform/tenants/{tid}", json={"name": "again"})
        assert_problem(conflict, 409, detail="deleted tenant")
        await events.wait_for(lambda e: e.event == "tenant.deleted" and str(e.tenant_id) == tid)
        mine = [e.event for e in events.matching(lambda e: str(e.tenant_id) == tid)]
    assert mine == ["tenant.created", "tenant.suspended", "tenant.reactivated", "tenant.deleted"]
    assert (await owner.get(f"/api/platform/tenants/{tid}")).json()["status"] == "DELETED"


async def test_list_filters_search_and_paginates(owner):
    marker = uuid.uuid4().hex[:8]
    made = [await create(owner, name=f"Lista {marker} {i}", plan="Pro" if i % 2 else "Free") for i in range(5)]
    await owner.post(f"/api/platform/tenants/{made[0]['id']}/suspend")
    page = (await owner.get("/api/platform/tenants", params={"q": marker, "sort": "name", "limit": 2})).json()
    assert page["total"] == 5 and [t["name"] for t in page["items"]] == [f"Lista {marker} 0", f"Lista {marker} 1"]
    pro = (await owner.get("/api/platform/tenants", params={"q": marker, "plan": "Pro"})).json()
    assert {t["name"] for t in pro["items"]} == {f"Lista {marker} 1", f"Lista {marker} 3"}
    suspended = (await owner.get("/api/platform/tenants", params={"q": marker, "status": "SUSPENDED"})).json()
    assert [t["id"] for t in suspended["items"]] == [made[0]["id"]]
    await owner.delete(f"/api/platform/tenants/{made[1]['id']}")
    live = (await owner.get("/api/platform/tenants", params={"q": marker})).json()
    assert made[1]["id"] not in {t["id"] for t in live["items"]}


async def test_duplicate_live_name_conflicts_but_a_deleted_name_can_be_reused(owner, kafka_bootstrap, database_url):
    name = unique_name()
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        first = await create(owner, name=name)
        dup = await owner.post("/api/platform/tenants", json={"name": name.upper()})
        assert_problem(dup, 409, detail="already exists")
        await owner.delete(f"/api/platform/tenants/{first['id']}")
        again = await owner.post("/api/platform/tenants", json={"name": name})
        assert again.status_code == 201
        both = {first["id"], again.json()["id"]}

        def created() -> set[str]:
            return {str(e.tenant_id) for e in events.matching(lambda e: e.event == "tenant.created"
                                                               and e.data["name"].lower() == name.lower())}

        await events.wait_for(lambda _: created() >= both)
    assert created() == both
    # The refused create wrote no event (the row and its event are one statement): the outbox, the log
    # every published event comes from, holds exactly the two.
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        written = await conn.fetch("SELECT payload->'data'->>'tenantId' AS tenant FROM outbox "
                                   "WHERE event_type = 'tenant.created' AND lower(payload->'data'->>'name') = $1",
                                   name.lower())
    finally:
        await conn.close()
    assert {row["tenant"] for row in written} == both


@pytest.mark.parametrize("body", [
    {"name": "x", "plan": "Platinum"},
    {"name": ""},
    {"name": 123},
    {"name": "x", "status": "DELETED"},
    {"name": "x", "contactEmail": "not-an-email"},
    ["not", "an", "object"],
])
async def test_bad_input_is_a_422_problem_and_changes_nothing(owner, body):
    before = (await owner.get("/api/platform/tenants")).json()["total"]
    assert_problem(await owner.post("/api/platform/tenants", json=body), 422)
    assert (await owner.get("/api/platform/tenants")).json()["total"] == before


async def test_malformed_json_huge_bodies_and_bad_ids_are_4xx(owner):
    resp = await owner.post("/api/platform/tenants", content=b'{"name": ', headers={"content-type": "application/json"})
    assert_problem(resp, 422)
    huge = await owner.post("/api/platform/tenants", content=b'{"name": "' + b"a" * 2_000_000 + b'"}',
                            headers={"content-type": "application/json"})
    assert_problem(huge, 413)
    assert_problem(await owner.get("/api/platform/tenants/not-a-uuid"), 422)
    assert_problem(await owner.get(f"/api/platform/tenants/{uuid.uuid4()}"), 404, detail="not found")
    assert_problem(await owner.get("/api/platform/tenants", params={"limit": 10_000}), 422)


async def test_every_route_requires_the_platform_owner(anonymous, tenant_user, owner):
    assert assert_routes_declare_auth(create_app()) == 11  # 7 here, 4 of plans (tests/plan: who may call them)
    tenant = await create(owner)
    admin = await tenant_user("TENANT_ADMIN", tenant["id"])
    calls = [("GET", "/api/platform/tenants"), ("POST", "/api/platform/tenants"),
             ("GET", f"/api/platform/tenants/{tenant['id']}"), ("PUT", f"/api/platform/tenants/{tenant['id']}"),
             ("DELETE", f"/api/platform/tenants/{tenant['id']}"),
             ("POST", f"/api/platform/tenants/{tenant['id']}/suspend"),
             ("POST", f"/api/platform/tenants/{tenant['id']}/reactivate")]
    forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2ln"
    for method, path in calls:
        assert_problem(await anonymous.request(method, path, json={}), 401)
        assert_problem(await anonymous.request(method, path, json={}, headers=bearer(forged)), 401)
        assert_problem(await admin.request(method, path, json={}), 403)
    assert (await owner.get(f"/api/platform/tenants/{tenant['id']}")).json()["status"] == "ACTIVE"
