"""The pipeline board follows the leads as they move."""

from __future__ import annotations

import uuid
from decimal import Decimal

from common.testing.checks import assert_problem

PIPELINE = "/api/platform/leads/pipeline"


def column(board: dict, code: str) -> dict:
    return next(c for c in board["stages"] if c["stage"]["code"] == code)


def summary(board: dict) -> dict[str, tuple[int, Decimal]]:
    return {c["stage"]["code"]: (c["count"], Decimal(c["totalValue"])) for c in board["stages"] if c["count"]}


async def test_counts_and_values_per_stage_change_as_leads_move(api, owner):
    source = f"pipe-{uuid.uuid4().hex[:8]}"
    a = await api.create(source=source, value="100")
    b = await api.create(source=source, value="250.50")
    c = await api.create(source=source, value="40")
    await api.create(source=source, value="10", currency="EUR")
    board = await api.list(PIPELINE, source=source)
    stages = (await owner.get("/api/platform/leads/stages")).json()
    assert [col["stage"] for col in board["stages"]] == stages  # every stage, in stage order
    assert summary(board) == {"NEW": (4, Decimal("400.50"))}
    assert {k: Decimal(v) for k, v in column(board, "NEW")["valueByCurrency"].items()} == {
        "EUR": Decimal("10"), "USD": Decimal("390.50")}
    assert board["count"] == 4 and Decimal(board["totalValue"]) == Decimal("400.50")

    await api.move(a["id"], "CONTACTED")
    await api.move(b["id"], "QUALIFIED")
    await api.move(b["id"], "PROPOSAL")
    await api.convert(b["id"])
    await api.move(c["id"], "LOST")
    board = await api.list(PIPELINE, source=source)
    assert summary(board) == {"NEW": (1, Decimal("10")), "CONTACTED": (1, Decimal("100")),
                              "WON": (1, Decimal("250.50")), "LOST": (1, Decimal("40"))}
    assert [x["id"] for x in column(board, "WON")["leads"]["items"]] == [b["id"]]
    assert column(board, "PROPOSAL")["leads"] == {"items": [], "total": 0, "limit": 20, "offset": 0,
                                                  "totalExact": True}


async def test_each_stage_is_paginated_on_its_own(api):
    source = f"page-{uuid.uuid4().hex[:8]}"
    new = [await api.create(source=source, name=f"N{i}", value=i) for i in range(3)]
    contacted = await api.create(source=source, name="C")
    await api.move(contacted["id"], "CONTACTED")
    first = await api.list(PIPELINE, source=source, limit=2, sort="name")
    assert [x["id"] for x in column(first, "NEW")["leads"]["items"]] == [new[0]["id"], new[1]["id"]]
    assert column(first, "NEW")["leads"]["total"] == 3
    assert [x["id"] for x in column(first, "CONTACTED")["leads"]["items"]] == [contacted["id"]]
    second = await api.list(PIPELINE, source=source, limit=2, offset=2, sort="name")
    assert [x["id"] for x in column(second, "NEW")["leads"]["items"]] == [new[2]["id"]]
    assert column(second, "CONTACTED")["leads"]["items"] == []
    only_new = await api.list(PIPELINE, source=source, stage="new", limit=1, offset=1, sort="-value")
    assert [c["stage"]["code"] for c in only_new["stages"]] == ["NEW"]
    assert [x["id"] for x in only_new["stages"][0]["leads"]["items"]] == [new[1]["id"]]


async def test_bad_pipeline_queries_are_422(owner):
    for params in ({"stage": "NOPE"}, {"limit": 0}, {"offset": -1}, {"sort": "x"}, {"ownOperation": "x"}):
        resp = await owner.get(PIPELINE, params=params)
        assert_problem(resp, 422)
