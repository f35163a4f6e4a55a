"""Messages and internal notes: tenant users never see a note, in lists, gets or the ticket itself."""

from __future__ import annotations

import uuid

import pytest

from common.testing.checks import assert_problem

TICKETS = "/api/platform/support/tickets"


async def test_messages_and_internal_notes(owner, admin_a, user_a, tenant_a, new_ticket, ticket_events):
    ticket = await new_ticket(admin_a, priority="HIGH")
    url = f"{TICKETS}/{ticket['id']}/messages"
    question = await admin_a.post(url, json={"body": "  ¿Alguna novedad?  "})
    assert question.status_code == 201, question.text
    assert question.json()["body"] == "¿Alguna novedad?" and question.json()["internal"] is False
    assert question.json()["authorId"] == tenant_a.admin["id"] and question.json()["authorRole"] == "TENANT_ADMIN"
    note = await owner.post(url, json={"body": "Cliente importante: escalar", "internal": True})
    assert note.status_code == 201 and note.json()["internal"] is True
    answer = await owner.post(url, json={"body": "Lo estamos revisando", "internal": False})
    assert answer.json()["authorRole"] == "PLATFORM_OWNER"
    refused = await user_a.post(url, json={"body": "secret?", "internal": True})
    assert_problem(refused, 403, detail="internal notes")

    for customer in (admin_a, user_a):
        page = (await customer.get(url)).json()
        assert page["total"] == 2
        assert [m["id"] for m in page["items"]] == [question.json()["id"], answer.json()["id"]]
        assert all(not m["internal"] for m in page["items"])
        second = (await customer.get(url, params={"limit": 1, "offset": 1})).json()
        assert [m["id"] for m in second["items"]] == [answer.json()["id"]] and second["total"] == 2
        assert (await customer.get(f"{TICKETS}/{ticket['id']}")).json() == ticket  # a note changes no ticket
        listed = (await customer.get(TICKETS, params={"q": ticket["subject"]})).json()["items"]
        assert listed == [ticket]
    everything = (await owner.get(url)).json()
    assert everything["total"] == 3
    assert [m["id"] for m in everything["items"]] == [question.json()["id"], note.json()["id"],
                                                      answer.json()["id"]]

    events = await ticket_events(ticket["id"], until="ticket.message.added", count=3)
    assert [e.event for e in events] == ["ticket.created"] + ["ticket.message.added"] * 3
    added = events[1:]
    assert [e.data["internal"] for e in added] == [False, True, False]
    assert [e.data["messageId"] for e in added] == [question.json()["id"], note.json()["id"], answer.json()["id"]]
    for e in added:
        assert e.tenant_id == tenant_a.id and e.data["tenantId"] == str(tenant_a.id)
        assert e.data["priority"] == "HIGH" and e.data["status"] == "OPEN" and e.data["ticketId"] == ticket["id"]
    assert added[0].data["authorId"] == tenant_a.admin["id"] and added[0].data["body"] == "¿Alguna novedad?"


async def test_a_closed_ticket_takes_no_messages_until_the_owner_reopens_it(owner, admin_a, new_ticket,
                                                                          ticket_events):
    ticket = await new_ticket(admin_a)
    url = f"{TICKETS}/{ticket['id']}"
    assert (await admin_a.put(url, json={"status": "CLOSED"})).status_code == 200
    for c, body in ((admin_a, {"body": "hola"}), (owner, {"body": "nota", "internal": True}),
                    (owner, {"body": "hola"})):
        resp = await c.post(f"{url}/messages", json=body)
        assert_problem(resp, 409, detail="CLOSED")
    assert (await owner.put(url, json={"status": "OPEN"})).status_code == 200
    reply = await admin_a.post(f"{url}/messages", json={"body": "sigue fallando"})
    assert reply.status_code == 201
    events = await ticket_events(ticket["id"], until="ticket.message.added")
    assert [e.event for e in events] == ["ticket.created", "ticket.closed", "ticket.updated",
                                         "ticket.message.added"]
    assert (await admin_a.get(f"{url}/messages")).json()["total"] == 1


@pytest.mark.parametrize("body", [
    {}, {"body": ""}, {"body": "   "}, {"body": "x" * 10_001}, {"body": "x", "internal": "yes"},
    {"body": "x", "internal": 1}, {"body": "x", "authorId": str(uuid.uuid4())}, {"body": None},
    {"body": "nul\x00"}, ["body"],
])
async def test_hostile_messages_are_422_and_add_nothing(owner, new_ticket, body):
    ticket = await new_ticket(owner, tenantId=uuid.uuid4())
    url = f"{TICKETS}/{ticket['id']}/messages"
    resp = await owner.post(url, json=body)
    assert_problem(resp, 422)
    assert (await owner.get(url)).json()["total"] == 0
