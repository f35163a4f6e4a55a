"""Stages are data: seeded by the migration, edited by the owner within the pipeline's rules."""

from __future__ import annotations

import uuid

from common.testing.checks import assert_problem

STAGES = "/api/platform/leads/stages"


async def test_the_default_pipeline_is_seeded_in_order(owner):
    stages = (await owner.get(STAGES)).json()
    defaults = [s for s in stages if s["code"] in {"NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"}]
    assert [(s["code"], s["isWon"], s["isLost"], s["isFinal"]) for s in defaults] == [
        ("NEW", False, False, False), ("CONTACTED", False, False, False), ("QUALIFIED", False, False, False),
        ("PROPOSAL", False, False, False), ("WON", True, False, True), ("LOST", False, True, True)]
    assert [s["position"] for s in stages] == sorted(s["position"] for s in stages)
    assert (await owner.get(f"{STAGES}/won")).json()["isWon"] is True


async def test_owner_adds_a_stage_uses_it_and_removes_it_when_empty(api, owner):
    code = f"NEGOTIATION_{uuid.uuid4().hex[:6].upper()}"
    resp = await owner.post(STAGES, json={"code": code.lower(), "name": "Negotiation", "position": 45})
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"code": code, "name": "Negotiation", "position": 45, "isWon": False, "isLost": False,
                           "isFinal": False}
    codes = [s["code"] for s in (await owner.get(STAGES)).json()]
    assert codes.index("PROPOSAL") < codes.index(code) < codes.index("WON")
    assert_problem(await owner.post(STAGES, json={"code": code, "name": "Again"}), 409)

    lead = await api.create()
    await api.move(lead["id"], code)
    assert_problem(await owner.put(f"{STAGES}/{code}", json={"isLost": True}), 409)
    assert_problem(await owner.delete(f"{STAGES}/{code}"), 409)
    renamed = await owner.put(f"{STAGES}/{code}", json={"name": "Negociación", "position": 46})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Negociación"
    await api.move(lead["id"], "PROPOSAL")
    assert (await owner.delete(f"{STAGES}/{code}")).status_code == 204
    assert_problem(await owner.get(f"{STAGES}/{code}"), 404)
    assert [h["to"] for h in (await api.get(lead["id"]))["history"]] == ["NEW", code, "PROPOSAL"]
    assert_problem(await owner.post(f"/api/platform/leads/{lead['id']}/stage", json={"stage": code}), 422)


async def test_stage_rules(owner):
    code = f"DISQUALIFIED_{uuid.uuid4().hex[:6].upper()}"
    lost = await owner.post(STAGES, json={"code": code, "name": "Disqualified", "isLost": True})
    assert lost.status_code == 201 and lost.json()["isFinal"] is True and lost.json()["position"] > 60
    assert_problem(await owner.put(f"{STAGES}/{code}", json={"isFinal": False}), 422)
    assert_problem(await owner.put(f"{STAGES}/{code}", json={"isWon": True}), 422)  # won and lost
    assert_problem(await owner.put(f"{STAGES}/{code}", json={"isWon": True, "isLost": False}), 409)
    assert (await owner.delete(f"{STAGES}/{code}")).status_code == 204
    bad = [{"code": "X1", "name": "x", "isWon": True},  # a second won stage: conflict
           {"code": "NEW", "name": "dup"}]
    for body in bad:
        assert_problem(await owner.post(STAGES, json=body), 409)
    invalid = [{"code": "X2", "name": "x", "isWon": True, "isLost": True},
               {"code": "X3", "name": "x", "isLost": True, "isFinal": False},
               {"code": "has space", "name": "x"}, {"code": "1ABC", "name": "x"}, {"code": "A" * 51, "name": "x"},
               {"code": "X4", "name": ""}, {"code": "X5", "name": "x", "position": -1},
               {"code": "X6", "name": "x", "extra": 1}, {"name": "x"}]
    for body in invalid:
        assert_problem(await owner.post(STAGES, json=body), 422)
    assert_problem(await owner.put(f"{STAGES}/NEW", json={"name": None}), 422)
    assert_problem(await owner.put(f"{STAGES}/NEW", json={"code": "OLD"}), 422)
    assert_problem(await owner.put(f"{STAGES}/NOPE", json={"name": "x"}), 404)
    assert_problem(await owner.delete(f"{STAGES}/NOPE"), 404)
    codes = {s["code"] for s in (await owner.get(STAGES)).json()}
    assert not codes & {"X1", "X2", "X3", "X4", "X5", "X6", code}
