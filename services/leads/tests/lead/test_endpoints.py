"""Leads through the real API: every change puts exactly one event on Kafka, keyed by the lead id."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from common.testing.checks import assert_problem

LEADS = "/api/platform/leads"


def of(lead_id: str):
    return lambda e: e.data.get("leadId") == lead_id


async def test_create_returns_the_lead_in_the_first_stage_and_publishes_lead_created(api, events):
    lead = await api.create(name="Ana Gómez", email="ana@example.com", phone="+54 11 5555-0000",
                            company="Acme SA", source="Referral", value="1500.5", currency="eur",
                            notes="Met at the fair")
    event = await events.wait_for(lambda e: e.event == "lead.created" and of(lead["id"])(e))
    headers = events.headers_of(event.id)
    assert lead["stage"] == "NEW" and lead["source"] == "referral" and lead["currency"] == "EUR"
    assert Decimal(lead["value"]) == Decimal("1500.50") and lead["convertedAt"] is None
    assert lead["ownOperation"] is False and lead["tenantId"] is None
    assert event.source == "leads" and event.tenant_id is None and headers["event"] == "lead.created"
    assert event.data | {"value": Decimal(event.data["value"])} == {
        "leadId": lead["id"], "name": "Ana Gómez", "email": "ana@example.com", "company": "Acme SA",
        "source": "referral", "stage": "NEW", "value": Decimal("1500.50"), "ownOperation": False,
        "phone": "+54 11 5555-0000", "currency": "EUR", "assigneeId": None, "conversationId": None}
    detail = await api.get(lead["id"])
    assert [(h["from"], h["to"]) for h in detail["history"]] == [(None, "NEW")]
    assert detail["createdBy"] is not None


async def test_update_reports_changes_and_previous_values_and_a_no_op_emits_nothing(api, events):
    lead = await api.create(company="Old Co", value=10)
    same = await api.update(lead["id"], company="Old Co", value="10.00", source="manual")
    assert same["updatedAt"] == lead["updatedAt"]
    assignee = str(uuid.uuid4())
    changed = await api.update(lead["id"], company="New Co", value=99.9, assigneeId=assignee, email=None)
    event = await events.wait_for(lambda e: e.event == "lead.updated" and of(lead["id"])(e))
    await api.update(lead["id"], notes="sentinel")
    await events.wait_for(lambda e: e.event == "lead.updated" and "notes" in e.data["changes"]
                          and of(lead["id"])(e))
    updates = events.matching(lambda e: e.event == "lead.updated" and of(lead["id"])(e))
    assert changed["company"] == "New Co" and Decimal(changed["value"]) == Decimal("99.90")
    assert event.data["changes"] == ["assigneeId", "company", "value"]
    assert event.data["previous"] == {"assigneeId": None, "company": "Old Co", "value": "10.00"}
    assert event.data["company"] == "New Co" and event.data["assigneeId"] == assignee
    assert len(updates) == 2


async def test_put_cannot_change_the_stage_or_null_a_required_field(api, owner):
    lead = await api.create()
    before = await api.get(lead["id"])
    for body in ({"stage": "QUALIFIED"}, {"convertedAt": "2025-01-01T00:00:00Z"}, {"tenantId": str(uuid.uuid4())},
                 {"name": None}, {"value": None}, {"ownOperation": None}, {"value": -1}):
        resp = await owner.put(f"{LEADS}/{lead['id']}", json=body)
        assert_problem(resp, 422)
    assert await api.get(lead["id"]) == before


async def test_stage_moves_record_history_and_emit_from_and_to(api, owner, events):
    lead = await api.create()
    await api.move(lead["id"], "contacted", note="called")
    moved = await api.move(lead["id"], "QUALIFIED")
    await events.wait_for(lambda e: e.event == "lead.stage.changed" and e.data["to"] == "QUALIFIED"
                          and of(lead["id"])(e))
    changes = events.matching(lambda e: e.event == "lead.stage.changed" and of(lead["id"])(e))
    assert moved["stage"] == "QUALIFIED"
    assert [(e.data["from"], e.data["to"], e.data["stage"]) for e in changes] == [
        ("NEW", "CONTACTED", "CONTACTED"), ("CONTACTED", "QUALIFIED", "QUALIFIED")]
    assert changes[0].data["note"] == "called"
    history = (await api.get(lead["id"]))["history"]
    assert [(h["from"], h["to"], h["note"]) for h in history] == [
        (None, "NEW", None), ("NEW", "CONTACTED", "called"), ("CONTACTED", "QUALIFIED", None)]
    assert all(h["by"] == history[0]["by"] for h in history)


async def test_invalid_moves_are_conflicts_and_unknown_stages_are_422(api, owner):
    lead = await api.create()
    same = await owner.post(f"{LEADS}/{lead['id']}/stage", json={"stage": "NEW"})
    into_won = await owner.post(f"{LEADS}/{lead['id']}/stage", json={"stage": "WON"})
    unknown = await owner.post(f"{LEADS}/{lead['id']}/stage", json={"stage": "NOPE"})
    assert_problem(same, 409, detail="already in stage")
    assert_problem(into_won, 409, detail="convert")
    assert_problem(unknown, 422, detail="Unknown stage")
    await api.move(lead["id"], "LOST")
    out_of_lost = await owner.post(f"{LEADS}/{lead['id']}/stage", json={"stage": "NEW"})
    assert_problem(out_of_lost, 409, detail="final stage")
    assert_problem(await owner.post(f"{LEADS}/{uuid.uuid4()}/stage", json={"stage": "NEW"}), 404)
    assert (await api.get(lead["id"]))["stage"] == "LOST"


async def test_convert_moves_to_won_records_the_time_and_only_once(api, owner, events):
    lead = await api.create(value=500)
    await api.move(lead["id"], "PROPOSAL")
    tenant_id = str(uuid.uuid4())
    converted = await api.convert(lead["id"], tenantId=tenant_id, note="signed")
    again = await owner.post(f"{LEADS}/{lead['id']}/convert")
    moved_after = await owner.post(f"{LEADS}/{lead['id']}/stage", json={"stage": "LOST"})
    event = await events.wait_for(lambda e: e.event == "lead.converted" and of(lead["id"])(e))
    assert converted["stage"] == "WON" and converted["convertedAt"] and converted["tenantId"] == tenant_id
    assert_problem(again, 409, detail="already converted")
    assert_problem(moved_after, 409)
    assert event.data["convertedAt"].replace("+00:00", "Z")[:19] == converted["convertedAt"][:19]
    assert event.data["tenantId"] == tenant_id and event.data["stage"] == "WON" and event.data["from"] == "PROPOSAL"
    assert (await api.get(lead["id"]))["history"][-1] | {"at": None} == {
        "from": "PROPOSAL", "to": "WON", "at": None, "by": converted["createdBy"], "note": "signed"}


async def test_a_lost_lead_cannot_be_converted(api, owner):
    lead = await api.create()
    await api.move(lead["id"], "LOST")
    resp = await owner.post(f"{LEADS}/{lead['id']}/convert", json={})
    assert_problem(resp, 409, detail="lost")
    after = await api.get(lead["id"])
    assert after["stage"] == "LOST" and after["convertedAt"] is None


async def test_exact_event_sequence_of_one_lead(api, owner, events):
    lead = await api.create(source="web")
    lid = lead["id"]
    await api.update(lid, source="web")  # no change: no event
    await api.update(lid, name="Renamed")
    await api.move(lid, "CONTACTED")
    assert_problem(await owner.post(f"{LEADS}/{lid}/stage", json={"stage": "CONTACTED"}), 409)
    await api.move(lid, "PROPOSAL")
    assert_problem(await owner.post(f"{LEADS}/{lid}/stage", json={"stage": "WON"}), 409)
    await api.convert(lid)
    assert_problem(await owner.post(f"{LEADS}/{lid}/convert"), 409)
    await api.update(lid, notes="last")  # sentinel: everything before it was published first
    await events.wait_for(lambda e: e.event == "lead.updated" and "notes" in e.data["changes"] and of(lid)(e))
    mine = events.matching(of(lid))
    assert [e.event for e in mine] == ["lead.created", "lead.updated", "lead.stage.changed", "lead.stage.changed",
                                       "lead.converted", "lead.updated"]
    assert len({e.id for e in mine}) == len(mine)


async def test_create_in_a_given_open_stage_but_not_a_final_or_unknown_one(api, owner):
    lead = await api.create(stage="qualified")
    assert lead["stage"] == "QUALIFIED"
    assert (await api.get(lead["id"]))["history"][0]["to"] == "QUALIFIED"
    assert_problem(await owner.post(LEADS, json={"name": "x", "stage": "WON"}), 409)
    assert_problem(await owner.post(LEADS, json={"name": "x", "stage": "NOPE"}), 422)


async def test_list_filters_search_sorts_and_paginates(api):
    m = uuid.uuid4().hex[:8]
    a = await api.create(name=f"Alpha {m}", source=f"web-{m}", value=300)
    b = await api.create(name="Bravo", company=f"Co {m}", source=f"event-{m}", value=100)
    c = await api.create(name="Charlie", email=f"c-{m}@example.com", source=f"web-{m}", value=200,
                         ownOperation=True)
    await api.move(b["id"], "CONTACTED")
    by_value = await api.list(q=m, sort="-value", limit=2)
    assert by_value["total"] == 3 and [x["id"] for x in by_value["items"]] == [a["id"], c["id"]]
    assert [x["id"] for x in (await api.list(q=m, sort="-value", limit=2, offset=2))["items"]] == [b["id"]]
    assert [x["id"] for x in (await api.list(q=m, sort="name"))["items"]] == [a["id"], b["id"], c["id"]]
    assert {x["id"] for x in (await api.list(source=f"WEB-{m}"))["items"]} == {a["id"], c["id"]}
    assert [x["id"] for x in (await api.list(q=m, stage="contacted"))["items"]] == [b["id"]]
    assert [x["id"] for x in (await api.list(q=m, ownOperation=True))["items"]] == [c["id"]]
    assert (await api.list(q=m, ownOperation=False))["total"] == 2
    future = (await api.list(q=m, createdFrom="2999-01-01T00:00:00Z"))["total"]
    past = (await api.list(q=m, createdTo="2000-01-01"))["total"]
    window = (await api.list(q=m, createdFrom=a["createdAt"], createdTo=c["createdAt"]))["items"]
    assert (future, past) == (0, 0)
    assert [x["id"] for x in window] == [b["id"], a["id"]]  # newest first; `createdTo` is exclusive
    assert (await api.list(q="100%_\\"))["total"] == 0  # LIKE wildcards are literal
    extremes = await api.list(q=m, createdFrom="0001-01-01T00:00:00", createdTo="9999-12-31T23:59:59")
    assert extremes["total"] == 3


async def test_operations_list_shows_only_own_operation_leads(api, owner):
    m = uuid.uuid4().hex[:8]
    mine = await api.create(name=f"Own {m}", ownOperation=True, source="event")
    await api.create(name=f"Client {m}")
    page = await api.list("/api/platform/operations/leads", q=m)
    assert [x["id"] for x in page["items"]] == [mine["id"]] and page["total"] == 1
    assert (await api.list("/api/platform/operations/leads", q=m, source="web"))["total"] == 0
    assert (await api.list("/api/platform/operations/leads", q=m, stage="NEW"))["total"] == 1
    assert_problem(await owner.get("/api/platform/operations/leads", params={"stage": "NOPE"}), 422)


@pytest.mark.parametrize("body", [
    {},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 201},
    {"name": 123},
    {"name": "x", "value": -0.01},
    {"name": "x", "value": "1e20"},
    {"name": "x", "value": "0.001"},
    {"name": "x", "value": "NaN"},
    {"name": "x", "value": "Infinity"},
    {"name": "x", "currency": "EURO"},
    {"name": "x", "source": "with space"},
    {"name": "x", "source": "s" * 51},
    {"name": "x", "email": "not-an-email"},
    {"name": "x", "phone": "call me"},
    {"name": "x", "notes": "n" * 5001},
    {"name": "x", "stage": "NOPE"},
    {"name": "x", "ownOperation": "maybe"},
    {"name": "x", "tenantId": "00000000-0000-0000-0000-000000000000"},
    {"name": "x", "convertedAt": "2025-01-01T00:00:00Z"},
    {"name": "x", "id": "00000000-0000-0000-0000-000000000000"},
    {"name": "x", "assigneeId": "not-a-uuid"},
    {"name": "nul\u0000byte"},
    ["not", "an", "object"],
])
async def test_hostile_create_is_a_4xx_problem_and_changes_nothing(api, owner, body):
    before = (await api.list())["total"]
    resp = await owner.post(LEADS, json=body)
    assert_problem(resp, 422)
    assert (await api.list())["total"] == before


async def test_hostile_requests_on_one_lead_change_nothing(api, owner):
    lead = await api.create(value=5)
    lid = lead["id"]
    calls = [
        ("PUT", f"{LEADS}/{lid}", {"name": "y", "unknown": 1}),
        ("PUT", f"{LEADS}/{lid}", {"email": "x@"}),
        ("PUT", f"{LEADS}/{lid}", ["a"]),
        ("POST", f"{LEADS}/{lid}/stage", {}),
        ("POST", f"{LEADS}/{lid}/stage", {"stage": "CONTACTED", "note": "n" * 1001}),
        ("POST", f"{LEADS}/{lid}/stage", {"stage": "CONTACTED", "extra": True}),
        ("POST", f"{LEADS}/{lid}/stage", {"stage": "'; drop table leads; --"}),
        ("POST", f"{LEADS}/{lid}/convert", {"tenantId": "nope"}),
        ("POST", f"{LEADS}/{lid}/convert", {"by": "me"}),
        ("GET", f"{LEADS}/not-a-uuid", None),
        ("PUT", f"{LEADS}/not-a-uuid", {"name": "x"}),
        ("GET", LEADS + "?limit=1000", None),
        ("GET", LEADS + "?sort=password", None),
        ("GET", LEADS + "?createdFrom=yesterday", None),
        ("GET", LEADS + "?createdFrom=2025-02-01&createdTo=2025-01-01", None),
        ("GET", LEADS + "?createdFrom=0001-01-01T00:00:00%2B05:00", None),
        ("GET", LEADS + "?q=" + "q" * 201, None),
        ("GET", LEADS + "?q=a%1Fb", None),  # the separator of the three columns searched as one text
        ("GET", LEADS + "?q=a%00", None),
        ("GET", LEADS + "/metrics?q=a%1Fb", None),
        ("GET", LEADS + "?stage=NOPE", None),
        ("GET", LEADS + "?ownOperation=perhaps", None),
    ]
    for method, path, body in calls:
        resp = await owner.request(method, path, json=body)
        assert_problem(resp, 422)
    for method, path in [("GET", f"{LEADS}/{uuid.uuid4()}"), ("PUT", f"{LEADS}/{uuid.uuid4()}"),
                         ("POST", f"{LEADS}/{uuid.uuid4()}/convert")]:
        resp = await owner.request(method, path, json={"name": "x"} if method == "PUT" else None)
        assert_problem(resp, 404, detail="not found")
    huge = await owner.post(LEADS, content=b'{"name": "' + b"a" * 2_000_000 + b'"}',
                            headers={"content-type": "application/json"})
    assert_problem(huge, 413)
    broken = await owner.post(LEADS, content=b'{"name": ', headers={"content-type": "application/json"})
    assert_problem(broken, 422)
    after = await api.get(lid)
    assert {k: after[k] for k in lead} == lead and len(after["history"]) == 1


async def test_the_json_keeps_its_camel_case_fields_and_bodies_take_only_them(api, owner):
    lead = await api.create(assigneeId=str(uuid.uuid4()), ownOperation=True)
    assert set(lead) == {"id", "name", "email", "phone", "company", "source", "value", "currency", "stage",
                         "assigneeId", "notes", "ownOperation", "tenantId", "convertedAt", "createdBy",
                         "conversationId", "createdAt", "updatedAt"}
    assert lead["ownOperation"] is True and lead["assigneeId"] is not None
    detail = await api.get(lead["id"])
    assert set(detail) == set(lead) | {"history"}
    assert set(detail["history"][0]) == {"from", "to", "at", "by", "note"}
    assert_problem(await owner.post(LEADS, json={"name": "x", "own_operation": True}), 422)
    assert_problem(await owner.put(f"{LEADS}/{lead['id']}", json={"assignee_id": None}), 422)
    stage = (await owner.get(f"{LEADS}/stages/NEW")).json()
    assert stage == {"code": "NEW", "name": "New", "position": stage["position"], "isWon": False,
                     "isLost": False, "isFinal": False}
    board = (await owner.get(f"{LEADS}/pipeline", params={"q": lead["name"]})).json()
    assert set(board) == {"stages", "count", "totalValue"}
    assert set(board["stages"][0]) == {"stage", "count", "totalValue", "valueByCurrency", "leads"}
    metrics = (await owner.get(f"{LEADS}/metrics", params={"q": lead["name"]})).json()
    assert set(metrics) == {"window", "totals", "conversionRate", "winRate", "averageTimeToConvertSeconds",
                            "valueByCurrency", "bySource", "byStage", "createdPerDay"}
    assert set(metrics["window"]) == {"from", "to", "days"} and metrics["bySource"][0]["conversionRate"] == 0
