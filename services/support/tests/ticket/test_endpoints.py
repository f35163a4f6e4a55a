"""Tickets through the real API: events on Kafka, the status machine, customer rights, lists, bad input."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.testing.checks import assert_problem

TICKETS = "/api/platform/support/tickets"


def names(events) -> list[str]:
    return [e.event for e in events]


async def test_owner_opens_a_ticket_for_a_tenant_and_ticket_created_carries_it(
        owner, new_ticket, ticket_events, database_url):
    tenant_id = uuid.uuid4()
    assignee = uuid.uuid4()
    ticket = await new_ticket(owner, tenantId=tenant_id, subject="  No llegan los webhooks ",
                              description="Desde ayer", priority="HIGH", assigneeId=assignee)
    assert ticket["tenantId"] == str(tenant_id) and ticket["subject"] == "No llegan los webhooks"
    assert ticket["status"] == "OPEN" and ticket["priority"] == "HIGH" and ticket["closedAt"] is None
    assert ticket["assigneeId"] == str(assignee)
    [event] = await ticket_events(ticket["id"], until="ticket.created")
    assert event.source == "support" and event.tenant_id == tenant_id
    assert event.data == {"ticketId": ticket["id"], "tenantId": str(tenant_id), "subject": "No llegan los webhooks",
                          "priority": "HIGH", "status": "OPEN", "assigneeId": str(assignee),
                          "createdBy": ticket["createdBy"]}
    assert (await owner.get(f"{TICKETS}/{ticket['id']}")).json() == ticket
    # The Kafka key (the outbox row's aggregate id) is the ticket id.
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            key = (await conn.execute(text("SELECT aggregate_id FROM outbox WHERE event_id = :id"),
                                      {"id": event.id})).scalar_one()
    finally:
        await engine.dispose()
    assert key == ticket["id"]


async def test_tenant_users_open_tickets_for_their_own_tenant_only(admin_a, user_a, owner, tenant_a, tenant_b,
                                                                  new_ticket):
    mine = await new_ticket(admin_a)
    assert mine["tenantId"] == str(tenant_a.id) and mine["createdBy"] == tenant_a.admin["id"]
    named = await new_ticket(user_a, tenantId=tenant_a.id, priority="LOW")
    assert named["tenantId"] == str(tenant_a.id) and named["createdBy"] == tenant_a.user["id"]
    before = (await owner.get(TICKETS, params={"tenantId": str(tenant_b.id)})).json()["total"]
    other = await admin_a.post(TICKETS, json={"tenantId": str(tenant_b.id), "subject": "x", "description": "y"})
    assert_problem(other, 403, detail="own tenant")
    assigned = await admin_a.post(TICKETS, json={"subject": "x", "description": "y",
                                                 "assigneeId": str(uuid.uuid4())})
    assert_problem(assigned, 403, detail="assigns")
    assert (await owner.get(TICKETS, params={"tenantId": str(tenant_b.id)})).json()["total"] == before
    no_tenant = await owner.post(TICKETS, json={"subject": "x", "description": "y"})
    assert_problem(no_tenant, 422, detail="tenantId is required")


async def test_the_status_machine_allows_sensible_moves_and_answers_409_to_the_rest(owner, new_ticket,
                                                                                    ticket_events):
    ticket = await new_ticket(owner, tenantId=uuid.uuid4(), priority="CRITICAL")
    url = f"{TICKETS}/{ticket['id']}"

    async def move(status: str, expect: int = 200) -> dict:
        resp = await owner.put(url, json={"status": status})
        if expect == 409:
            assert_problem(resp, 409)
        assert resp.status_code == expect, (status, resp.text)
        return resp.json()

    for status in ("IN_PROGRESS", "WAITING", "IN_PROGRESS", "RESOLVED"):
        assert (await move(status))["status"] == status
    await move("WAITING", 409)
    await move("IN_PROGRESS", 409)
    closed = await move("CLOSED")
    assert closed["closedAt"] is not None
    for status in ("IN_PROGRESS", "WAITING", "RESOLVED"):
        await move(status, 409)
    assert_problem(await owner.put(url, json={"priority": "LOW"}), 409)  # closed is read-only
    assert (await owner.put(url, json={"status": "CLOSED"})).status_code == 200  # no change, no event
    reopened = await owner.put(url, json={"status": "OPEN", "priority": "HIGH"})
    assert reopened.status_code == 200
    assert reopened.json()["closedAt"] is None and reopened.json()["priority"] == "HIGH"

    events = await ticket_events(ticket["id"], until="ticket.updated", count=5)
    assert names(events) == ["ticket.created"] + ["ticket.updated"] * 4 + ["ticket.closed", "ticket.updated"]
    assert [e.data["status"] for e in events] == ["OPEN", "IN_PROGRESS", "WAITING", "IN_PROGRESS", "RESOLVED",
                                                  "CLOSED", "OPEN"]
    assert [e.data["previous"].get("status") for e in events[1:]] == ["OPEN", "IN_PROGRESS", "WAITING",
                                                                      "IN_PROGRESS", "RESOLVED", "CLOSED"]
    close = events[5]
    assert close.data["priority"] == "CRITICAL" and close.data["changes"] == ["status"]
    assert events[6].data["changes"] == ["priority", "status"]
    assert events[6].data["previous"] == {"status": "CLOSED", "priority": "CRITICAL"}
    assert all(e.tenant_id == uuid.UUID(ticket["tenantId"]) for e in events)


async def test_one_event_per_change_and_a_put_that_changes_nothing_emits_nothing(owner, new_ticket,
                                                                                ticket_events):
    ticket = await new_ticket(owner, tenantId=uuid.uuid4(), priority="LOW")
    url = f"{TICKETS}/{ticket['id']}"
    assert (await owner.put(url, json={})).json() == ticket
    same = {k: ticket[k] for k in ("subject", "description", "priority", "status", "assigneeId")}
    assert (await owner.put(url, json=same)).json() == ticket  # a full PUT of unchanged values
    assignee = str(uuid.uuid4())
    changed = (await owner.put(url, json={"priority": "HIGH", "assigneeId": assignee, "subject": ticket["subject"]}))
    assert changed.json()["priority"] == "HIGH"
    assert datetime.fromisoformat(changed.json()["updatedAt"]) > datetime.fromisoformat(ticket["updatedAt"])
    unassigned = await owner.put(url, json={"assigneeId": None})
    assert unassigned.json()["assigneeId"] is None

    events = await ticket_events(ticket["id"], until="ticket.updated", count=2)
    assert names(events) == ["ticket.created", "ticket.updated", "ticket.updated"]
    assert events[1].data["changes"] == ["assigneeId", "priority"]
    assert events[1].data["previous"] == {"priority": "LOW", "assigneeId": None}
    assert events[1].data["priority"] == "HIGH" and events[1].data["assigneeId"] == assignee
    assert events[2].data["changes"] == ["assigneeId"] and events[2].data["previous"] == {"assigneeId": assignee}


async def test_tenant_users_edit_text_close_and_reopen_a_resolved_ticket_but_do_not_triage(
        admin_a, user_a, owner, new_ticket, ticket_events):
    ticket = await new_ticket(admin_a, priority="MEDIUM")
    url = f"{TICKETS}/{ticket['id']}"
    edited = await user_a.put(url, json={"description": "More detail", "priority": "MEDIUM"})
    assert edited.status_code == 200 and edited.json()["description"] == "More detail"
    for body in ({"priority": "CRITICAL"}, {"assigneeId": str(uuid.uuid4())}, {"status": "IN_PROGRESS"},
                 {"status": "RESOLVED"}, {"status": "WAITING"}, {"subject": "new", "priority": "LOW"}):
        resp = await admin_a.put(url, json=body)
        assert_problem(resp, 403)
    assert (await owner.put(url, json={"status": "RESOLVED"})).status_code == 200
    assert (await admin_a.put(url, json={"status": "OPEN"})).json()["status"] == "OPEN"  # "not fixed"
    closed = await user_a.put(url, json={"status": "CLOSED"})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED"
    assert_problem(await admin_a.put(url, json={"status": "OPEN"}), 403)  # closed is final for customers
    assert_problem(await admin_a.put(url, json={"status": "RESOLVED"}), 409)
    assert_problem(await admin_a.put(url, json={"subject": "after close"}), 409)
    final = (await owner.get(url)).json()
    assert final["status"] == "CLOSED" and final["priority"] == "MEDIUM" and final["assigneeId"] is None
    assert final["subject"] == ticket["subject"]

    events = await ticket_events(ticket["id"], until="ticket.closed")
    assert names(events) == ["ticket.created", "ticket.updated", "ticket.updated", "ticket.updated",
                             "ticket.closed"]
    assert events[1].data["changes"] == ["description"] and events[1].data["previous"] == {}
    assert "description" not in events[1].data
    assert events[4].data["priority"] == "MEDIUM" and events[4].data["previous"] == {"status": "OPEN"}


async def test_list_filters_searches_sorts_and_paginates(owner, new_ticket):
    tenant = uuid.uuid4()
    marker = uuid.uuid4().hex[:10]
    assignee = uuid.uuid4()
    specs = [("LOW", None, f"Factura {marker}", "x"), ("CRITICAL", assignee, "Caída", f"todo {marker.upper()} mal"),
             ("HIGH", None, "Login", "nada"), ("MEDIUM", assignee, "Webhooks", "100%_raro"),
             ("HIGH", None, "Otra", "otra")]
    made = []
    for priority, who, subject, description in specs:
        made.append(await new_ticket(owner, tenantId=tenant, priority=priority, subject=subject,
                                     description=description, **({"assigneeId": who} if who else {})))
    await owner.put(f"{TICKETS}/{made[2]['id']}", json={"status": "IN_PROGRESS"})
    await owner.put(f"{TICKETS}/{made[4]['id']}", json={"status": "CLOSED"})

    async def ids(**params) -> list[str]:
        resp = await owner.get(TICKETS, params={"tenantId": str(tenant), **params})
        assert resp.status_code == 200, resp.text
        return [t["id"] for t in resp.json()["items"]]

    ordinal = {t["id"]: i for i, t in enumerate(made)}

    def idx(found: list[str]) -> list[int]:
        return [ordinal[i] for i in found]

    assert idx(await ids()) == [4, 3, 2, 1, 0]  # newest first
    assert idx(await ids(sort="createdAt")) == [0, 1, 2, 3, 4]
    assert idx(await ids(sort="-priority")) == [1, 2, 4, 3, 0]  # same priority: oldest first
    assert idx(await ids(sort="priority")) == [0, 3, 2, 4, 1]
    assert idx(await ids(sort="-updatedAt"))[:2] == [4, 2]
    assert idx(await ids(sort="updatedAt"))[-2:] == [2, 4]
    assert idx(await ids(status="OPEN")) == [3, 1, 0]
    assert idx(await ids(status=["IN_PROGRESS", "CLOSED"])) == [4, 2]
    assert idx(await ids(priority="HIGH")) == [4, 2]
    assert idx(await ids(priority=["HIGH", "CRITICAL"], status="OPEN")) == [1]
    assert idx(await ids(assigneeId=str(assignee))) == [3, 1]
    assert idx(await ids(q=marker)) == [1, 0]  # subject or description, case-insensitive
    assert idx(await ids(q="caída")) == [1]
    assert idx(await ids(q="0%_")) == [3]  # LIKE wildcards are literal
    assert await ids(q="%") == [made[3]["id"]]
    page = (await owner.get(TICKETS, params={"tenantId": str(tenant), "sort": "createdAt", "limit": 2,
                                             "offset": 2})).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 2
    assert idx([t["id"] for t in page["items"]]) == [2, 3]
    everyone = (await owner.get(TICKETS, params={"q": marker})).json()
    assert everyone["total"] == 2  # the owner lists across tenants


@pytest.mark.parametrize("body", [
    {"subject": "x", "description": "y", "status": "CLOSED"},  # extra field
    {"subject": "", "description": "y"},
    {"subject": "   ", "description": "y"},
    {"subject": "x" * 201, "description": "y"},
    {"subject": "x", "description": "y" * 10_001},
    {"subject": "x"},
    {"subject": "x", "description": "y", "priority": "URGENT"},
    {"subject": "x", "description": "y", "priority": "low"},
    {"subject": "x\x00", "description": "y"},
    {"subject": 12, "description": "y"},
    {"subject": "x", "description": "y", "tenantId": "not-a-uuid"},
    {"subject": "x", "description": "y", "assigneeId": 5},
    ["not", "an", "object"],
    None,
])
async def test_hostile_create_is_a_422_problem_and_creates_nothing(owner, body):
    tenant = str(uuid.uuid4())
    if isinstance(body, dict) and "tenantId" not in body:
        body = body | {"tenantId": tenant}
    resp = await owner.post(TICKETS, json=body)
    assert_problem(resp, 422)
    assert (await owner.get(TICKETS, params={"tenantId": tenant})).json()["total"] == 0


async def test_hostile_updates_are_4xx_and_change_nothing(owner, new_ticket, ticket_events):
    ticket = await new_ticket(owner, tenantId=uuid.uuid4())
    url = f"{TICKETS}/{ticket['id']}"
    for body in ({"status": "DONE"}, {"status": None}, {"subject": None}, {"priority": None}, {"subject": ""},
                 {"description": "d" * 10_001}, {"tenantId": str(uuid.uuid4())}, {"createdBy": str(uuid.uuid4())},
                 {"id": str(uuid.uuid4())}, {"assigneeId": "me"}, {"description": "a\x00b"}, [1], "x"):
        resp = await owner.put(url, json=body)
        assert_problem(resp, 422)
    surrogate = await owner.put(url, content=b'{"subject": "\\ud800"}', headers={"content-type": "application/json"})
    assert_problem(surrogate, 422)
    malformed = await owner.put(url, content=b'{"subject": ', headers={"content-type": "application/json"})
    assert_problem(malformed, 422)
    huge = await owner.put(url, content=b'{"description": "' + b"a" * 2_000_000 + b'"}',
                           headers={"content-type": "application/json"})
    assert_problem(huge, 413)
    assert (await owner.get(url)).json() == ticket
    # Fence: a real change afterwards; nothing before it but the creation.
    await owner.put(url, json={"priority": "LOW"})
    events = await ticket_events(ticket["id"], until="ticket.updated")
    assert names(events) == ["ticket.created", "ticket.updated"]


async def test_bad_ids_and_query_parameters_are_4xx_problems(owner):
    for path in (f"{TICKETS}/not-a-uuid", f"{TICKETS}/not-a-uuid/messages"):
        resp = await owner.get(path)
        assert_problem(resp, 422)
    assert_problem(await owner.put(f"{TICKETS}/{uuid.uuid4()}", json={"status": "CLOSED"}), 404)
    assert_problem(await owner.get(f"{TICKETS}/{uuid.uuid4()}"), 404)
    for params in ({"limit": 10_000}, {"limit": 0}, {"offset": -1}, {"sort": "subject"}, {"status": "DONE"},
                   {"priority": "URGENT"}, {"tenantId": "x"}, {"assigneeId": "x"}, {"q": "a" * 201},
                   {"q": "a\x00"}, {"status": ["OPEN"] * 6}):
        resp = await owner.get(TICKETS, params=params)
        assert_problem(resp, 422)


async def test_the_json_keeps_its_camel_case_fields_and_bodies_take_only_them(owner, new_ticket):
    assignee = str(uuid.uuid4())
    ticket = await new_ticket(owner, tenantId=uuid.uuid4(), assigneeId=assignee)
    assert set(ticket) == {"id", "tenantId", "subject", "description", "priority", "status", "assigneeId",
                           "createdBy", "createdAt", "updatedAt", "closedAt"}
    assert ticket["assigneeId"] == assignee and ticket["closedAt"] is None
    url = f"{TICKETS}/{ticket['id']}"
    assert_problem(await owner.put(url, json={"assignee_id": None}), 422)
    assert_problem(await owner.post(TICKETS, json={"tenant_id": ticket["tenantId"], "subject": "x",
                                                   "description": "y"}), 422)
    unassigned = await owner.put(url, json={"assigneeId": None, "status": "CLOSED"})
    assert unassigned.json()["assigneeId"] is None and unassigned.json()["closedAt"] is not None
    reopened = await owner.put(url, json={"status": "OPEN"})
    message = await owner.post(f"{url}/messages", json={"body": "hola"})
    assert reopened.status_code == 200 and message.status_code == 201, message.text
    assert set(message.json()) == {"id", "ticketId", "authorId", "authorRole", "body", "internal", "createdAt"}
    page = (await owner.get(f"{url}/messages")).json()
    assert page == {"items": [message.json()], "total": 1, "limit": 20, "offset": 0,
                    "totalExact": True}
