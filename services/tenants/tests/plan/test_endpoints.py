"""Plans are owned by tenants: listed to every caller (tenant users see the active ones), added and changed
by the owner only, each change one `plan.*` event on Kafka; the plans seeded before are published once."""

from __future__ import annotations

import uuid

import asyncpg

from common.testing.checks import assert_problem
from common.testing.events import collect_events

TOPIC = "platform.tenants.events"
PLANS = "/api/platform/plans"


def new_code() -> str:
    return f"P{uuid.uuid4().hex[:7].upper()}"


async def test_the_seeded_plans_are_listed_and_published_once_by_the_migration(owner, database_url,
                                                                               kafka_bootstrap):
    listed = {p["code"]: p for p in (await owner.get(PLANS)).json()}
    assert {c: (listed[c]["name"], listed[c]["amount"], listed[c]["currency"], listed[c]["interval"])
            for c in ("FREE", "PRO", "ENTERPRISE")} == {"FREE": ("Free", 0, "USD", "month"),
                                                        "PRO": ("Pro", 4900, "USD", "month"),
                                                        "ENTERPRISE": ("Enterprise", 29900, "USD", "month")}
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await conn.fetch("SELECT event_id, aggregate_id, payload FROM outbox WHERE event_type = 'plan.created' "
                                "AND payload->'data'->>'code' = ANY($1::text[])", ["FREE", "PRO", "ENTERPRISE"])
    finally:
        await conn.close()
    assert sorted(r["aggregate_id"] for r in rows) == sorted(listed[c]["id"] for c in ("FREE", "PRO", "ENTERPRISE"))
    pro_id = next(r["event_id"] for r in rows if r["aggregate_id"] == listed["PRO"]["id"])
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:  # the relay published it as any event
        seeded = await events.wait_for(lambda e: e.id == pro_id)
    assert seeded.source == "tenants" and seeded.tenant_id is None
    assert seeded.data == {"planId": listed["PRO"]["id"], "code": "PRO", "name": "Pro", "amount": 4900,
                           "currency": "USD", "interval": "month", "active": True,
                           "limits": {"users": 25, "channels": 5}}


async def test_the_owner_adds_and_changes_a_plan_each_change_one_event(owner, kafka_bootstrap):
    code = new_code()
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        resp = await owner.post(PLANS, json={"code": code.lower(), "name": f"Growth {code}", "amount": 1900,
                                             "currency": "eur", "interval": "year", "limits": {"users": 10}})
        assert resp.status_code == 201, resp.text
        plan = resp.json()
        assert (plan["code"], plan["currency"], plan["active"]) == (code, "EUR", True)
        created = await events.wait_for(lambda e: e.event == "plan.created" and e.data["code"] == code)
        assert created.data == {"planId": plan["id"], "code": code, "name": f"Growth {code}", "amount": 1900,
                                "currency": "EUR", "interval": "year", "active": True, "limits": {"users": 10}}

        same = await owner.patch(f"{PLANS}/{code}", json={"amount": 1900, "currency": "EUR"})
        assert same.status_code == 200 and same.json()["updatedAt"] == plan["updatedAt"]  # no change, no event
        changed = await owner.patch(f"{PLANS}/{code.lower()}", json={"amount": 2500, "active": False})
        assert changed.status_code == 200 and changed.json()["amount"] == 2500 and not changed.json()["active"]
        marker = await owner.patch(f"{PLANS}/{code}", json={"name": f"Scale {code}"})
        await events.wait_for(lambda e: e.event == "plan.updated" and e.data["name"] == f"Scale {code}")
        updates = events.matching(lambda e: e.event == "plan.updated" and e.data["code"] == code)
    assert [u.data["changes"] for u in updates] == [["active", "amount"], ["name"]]
    assert updates[0].data["previous"] == {"amount": 1900, "active": True} and updates[0].data["amount"] == 2500
    assert updates[1].data["previous"] == {"name": f"Growth {code}"}
    assert {u.id for u in updates} | {created.id} == {e.id for e in events.matching(lambda e: e.data.get("planId")
                                                                                    == plan["id"])}
    assert marker.json()["code"] == code and (await owner.get(f"{PLANS}/{code}")).json()["name"] == f"Scale {code}"


async def test_a_new_plan_takes_tenants_at_once_and_a_switched_off_one_takes_no_more(owner):
    code = new_code()
    assert (await owner.post(PLANS, json={"code": code, "name": f"Team {code}", "amount": 900})).status_code == 201
    made = await owner.post("/api/platform/tenants", json={"name": f"On {code}", "plan": code})
    assert made.status_code == 201 and made.json()["plan"] == f"Team {code}"
    assert (await owner.patch(f"{PLANS}/{code}", json={"active": False})).status_code == 200
    refused = await owner.post("/api/platform/tenants", json={"name": f"Late {code}", "plan": code})
    assert_problem(refused, 422, detail="Unknown plan")
    assert (await owner.get(f"/api/platform/tenants/{made.json()['id']}")).json()["plan"] == f"Team {code}"


async def test_bad_plans_are_refused_and_nothing_is_changed(owner):
    code = new_code()
    assert (await owner.post(PLANS, json={"code": code, "name": f"Solo {code}", "amount": 500})).status_code == 201
    assert_problem(await owner.post(PLANS, json={"code": code, "name": "Other", "amount": 1}), 409)
    assert_problem(await owner.post(PLANS, json={"code": new_code(), "name": "pro", "amount": 1}), 409,
                   detail="PRO")  # a name may not be another plan's code: tenants pick a plan by either
    assert_problem(await owner.patch(f"{PLANS}/{code}", json={"name": "Enterprise"}), 409)
    for body in ({"code": "1abc", "name": "x", "amount": 1}, {"code": new_code(), "name": "x", "amount": -1},
                 {"code": new_code(), "name": "x", "amount": 100_000_000},
                 {"code": new_code(), "name": "x", "amount": 1, "currency": "EURO"},
                 {"code": new_code(), "name": "x", "amount": 1, "interval": "fortnight"},
                 {"code": new_code(), "name": "", "amount": 1}, {"code": new_code(), "name": "x\x00", "amount": 1},
                 {"code": new_code(), "name": "x", "amount": 1, "monthlyPrice": 1}):
        assert_problem(await owner.post(PLANS, json=body), 422)
    assert_problem(await owner.patch(f"{PLANS}/{code}", json={"code": "OTHER"}), 422)
    assert_problem(await owner.patch(f"{PLANS}/{code}", json={"amount": "lots"}), 422)
    assert_problem(await owner.patch(f"{PLANS}/NOPE{code}", json={"amount": 1}), 404)
    plan = (await owner.get(f"{PLANS}/{code}")).json()
    assert (plan["name"], plan["amount"], plan["currency"]) == (f"Solo {code}", 500, "USD")


async def test_only_the_owner_changes_plans_tenant_users_read_the_active_ones(owner, anonymous, tenant_user):
    code = new_code()
    await owner.post(PLANS, json={"code": code, "name": f"Hidden {code}", "amount": 1, "active": False})
    user = await tenant_user("TENANT_ADMIN")
    seen = {p["code"] for p in (await user.get(PLANS)).json()}
    assert {"FREE", "PRO", "ENTERPRISE"} <= seen and code not in seen
    assert {p["code"] for p in (await user.get(PLANS, params={"active": "false"})).json()} == set()
    assert_problem(await user.get(f"{PLANS}/{code}"), 404)
    assert code in {p["code"] for p in (await owner.get(PLANS, params={"active": "false"})).json()}
    assert_problem(await user.post(PLANS, json={"code": new_code(), "name": "Mine", "amount": 0}), 403)
    assert_problem(await user.patch(f"{PLANS}/PRO", json={"amount": 0}), 403)
    assert_problem(await anonymous.get(PLANS), 401)
    assert (await owner.get(f"{PLANS}/PRO")).json()["amount"] == 4900
