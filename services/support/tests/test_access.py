"""Who may call what: every route needs a caller, and a tenant never reaches another tenant's tickets.

The route lists below are checked against the app's routes, so a new endpoint cannot skip these tests.
"""

from __future__ import annotations

import uuid

from common.testing.checks import api_routes as all_routes
from common.testing.checks import assert_problem, assert_routes_declare_auth
from common.testing.plugin import bearer
from support.app import create_app

TICKETS = "/api/platform/support/tickets"
FORGED = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2ln"


def api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route that needs a caller."""
    app = create_app()
    return {(method, path) for method, path, _ in all_routes(app) if path not in app.state.public_routes}


def routes_of(calls) -> set[tuple[str, str]]:
    return {(m, path.replace(tid, "{ticket_id}")) for m, path, _, tid in calls}


async def test_every_route_declares_auth_and_rejects_anonymous_and_forged_callers(anonymous, owner, new_ticket):
    assert assert_routes_declare_auth(create_app()) == 6  # each with an auth dependency
    assert len(api_routes()) == 6
    ticket = await new_ticket(owner, tenantId=uuid.uuid4())
    tid = ticket["id"]
    calls = [("GET", TICKETS, None, tid), ("POST", TICKETS, {"subject": "x", "description": "y"}, tid),
             ("GET", f"{TICKETS}/{tid}", None, tid), ("PUT", f"{TICKETS}/{tid}", {"status": "CLOSED"}, tid),
             ("GET", f"{TICKETS}/{tid}/messages", None, tid),
             ("POST", f"{TICKETS}/{tid}/messages", {"body": "x"}, tid)]
    assert routes_of(calls) == api_routes()
    for method, path, body, _ in calls:
        for headers in ({}, bearer(FORGED), {"Authorization": "Basic eDp5"}):
            resp = await anonymous.request(method, path, json=body, headers=headers)
            assert_problem(resp, 401)
    assert (await owner.get(f"{TICKETS}/{tid}")).json() == ticket
    assert (await owner.get(f"{TICKETS}/{tid}/messages")).json()["total"] == 0


async def test_another_tenants_ticket_is_not_found_on_every_endpoint_and_never_listed(
        owner, admin_a, user_a, admin_b, tenant_a, tenant_b, new_ticket, ticket_events):
    theirs = await new_ticket(admin_a, subject=f"Privado {uuid.uuid4().hex[:8]}", priority="CRITICAL")
    await owner.post(f"{TICKETS}/{theirs['id']}/messages", json={"body": "note", "internal": True})
    await admin_a.post(f"{TICKETS}/{theirs['id']}/messages", json={"body": "public"})
    mine = await new_ticket(admin_b)
    tid = theirs["id"]

    # Every ticket endpoint, with bodies that would be accepted on the caller's own ticket.
    calls = [("GET", f"{TICKETS}/{tid}", None, tid),
             ("PUT", f"{TICKETS}/{tid}", {"status": "CLOSED"}, tid),
             ("PUT", f"{TICKETS}/{tid}", {"subject": "hijacked"}, tid),
             ("PUT", f"{TICKETS}/{tid}", {"priority": "LOW", "assigneeId": str(uuid.uuid4())}, tid),
             ("PUT", f"{TICKETS}/{tid}", {}, tid),
             ("GET", f"{TICKETS}/{tid}/messages", None, tid),
             ("POST", f"{TICKETS}/{tid}/messages", {"body": "hi"}, tid),
             ("POST", f"{TICKETS}/{tid}/messages", {"body": "hi", "internal": True}, tid)]
    unknown = str(uuid.uuid4())
    for method, path, body, _ in calls:
        foreign = await admin_b.request(method, path, json=body)
        missing = await admin_b.request(method, path.replace(tid, unknown), json=body)
        assert_problem(foreign, 404)
        assert_problem(missing, 404)
        assert foreign.json()["detail"] == missing.json()["detail"].replace(unknown, tid)  # indistinguishable

    # The collection endpoints: never listed, never created for another tenant.
    listed = (await admin_b.get(TICKETS, params={"limit": 100})).json()
    assert {t["tenantId"] for t in listed["items"]} == {str(tenant_b.id)}
    assert mine["id"] in {t["id"] for t in listed["items"]}
    for params in ({"tenantId": str(tenant_a.id)}, {"q": theirs["subject"]},
                   {"q": theirs["subject"], "tenantId": str(tenant_a.id)}, {"priority": "CRITICAL"}):
        page = (await admin_b.get(TICKETS, params=params)).json()
        assert tid not in {t["id"] for t in page["items"]}
        assert all(t["tenantId"] == str(tenant_b.id) for t in page["items"])
    assert (await admin_b.get(TICKETS, params={"tenantId": str(tenant_a.id)})).json()["total"] == 0
    created = await admin_b.post(TICKETS, json={"tenantId": str(tenant_a.id), "subject": "x", "description": "y"})
    assert_problem(created, 403)
    assert all(t["tenantId"] == str(tenant_a.id)
               for t in (await admin_a.get(TICKETS, params={"limit": 100})).json()["items"])
    assert routes_of(calls) | {("GET", TICKETS), ("POST", TICKETS)} == api_routes()

    # Tenant A still sees its ticket unchanged (and B's is invisible to A); nothing was published for it.
    assert (await user_a.get(f"{TICKETS}/{tid}")).json() == theirs
    assert_problem(await admin_a.get(f"{TICKETS}/{mine['id']}"), 404)
    assert (await admin_a.get(f"{TICKETS}/{tid}/messages")).json()["total"] == 1
    await owner.put(f"{TICKETS}/{tid}", json={"status": "IN_PROGRESS"})  # fence
    events = await ticket_events(tid, until="ticket.updated")
    assert [e.event for e in events] == ["ticket.created", "ticket.message.added", "ticket.message.added",
                                         "ticket.updated"]
