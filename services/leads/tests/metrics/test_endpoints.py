"""Metrics are aggregates over the leads created in the window; expectations come from the test's own leads."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from common.testing.checks import assert_problem

METRICS = "/api/platform/leads/metrics"


def day_of(timestamp: str) -> date:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).date()


async def backdate(db, lead_id: str, sql_expression: str) -> None:
    async with db.begin() as conn:
        await conn.execute(text(f"UPDATE leads SET created_at = {sql_expression} WHERE id = :id"), {"id": lead_id})


async def test_metrics_follow_the_leads_of_the_window(api, owner, db):
    m = uuid.uuid4().hex[:8]
    web, fair, old_src = f"web-{m}", f"fair-{m}", f"old-{m}"

    async def lead(source: str, value: str) -> dict:
        return await api.create(source=source, value=value, company=f"Metrics {m}")

    won_fast, won_slow = await lead(web, "100"), await lead(web, "300")
    lost, open_ = await lead(fair, "50"), await lead(fair, "7.25")
    old = await lead(old_src, "1")
    for x in (won_fast, won_slow):
        await api.convert(x["id"])
    await api.move(lost["id"], "LOST")
    await backdate(db, won_fast["id"], "converted_at - interval '2 days'")
    await backdate(db, won_slow["id"], "converted_at - interval '4 days'")
    await backdate(db, lost["id"], "created_at - interval '1 day'")
    await backdate(db, old["id"], "created_at - interval '40 days'")
    created = {x["id"]: day_of((await api.get(x["id"]))["createdAt"])
               for x in (won_fast, won_slow, lost, open_, old)}

    resp = await owner.get(METRICS, params={"q": m})  # default window: the last 30 days
    assert resp.status_code == 200, resp.text
    metrics = resp.json()
    first, last = date.fromisoformat(metrics["window"]["from"]), date.fromisoformat(metrics["window"]["to"])
    assert metrics["window"]["days"] == 30 and last - first == timedelta(days=29)
    in_window = {k: d for k, d in created.items() if first <= d <= last}
    assert set(in_window) == {won_fast["id"], won_slow["id"], lost["id"], open_["id"]}

    assert metrics["totals"] == {"leads": 4, "open": 1, "converted": 2, "lost": 1}
    assert metrics["conversionRate"] == 0.5
    assert metrics["winRate"] == round(2 / 3, 4)
    assert metrics["averageTimeToConvertSeconds"] == 3 * 86400
    assert [(v["currency"], Decimal(v["total"]), Decimal(v["converted"])) for v in metrics["valueByCurrency"]] == [
        ("USD", Decimal("457.25"), Decimal("400"))]
    assert metrics["bySource"] == [
        {"source": fair, "count": 2, "converted": 0, "conversionRate": 0.0},
        {"source": web, "count": 2, "converted": 2, "conversionRate": 1.0}]
    by_stage = {s["stage"]: (s["count"], Decimal(s["value"])) for s in metrics["byStage"]}
    assert by_stage["NEW"] == (1, Decimal("7.25")) and by_stage["WON"] == (2, Decimal("400"))
    assert by_stage["LOST"] == (1, Decimal("50")) and by_stage["QUALIFIED"] == (0, 0)
    stage_order = [s["code"] for s in (await owner.get("/api/platform/leads/stages")).json()]
    assert [s["stage"] for s in metrics["byStage"]] == stage_order
    per_day = {date.fromisoformat(d["date"]): d["count"] for d in metrics["createdPerDay"]}
    assert list(per_day) == [first + timedelta(days=i) for i in range(30)]
    assert per_day == {d: Counter(in_window.values()).get(d, 0) for d in per_day}

    # Move and convert the open lead: every figure follows.
    await api.move(open_["id"], "PROPOSAL")
    await api.convert(open_["id"])
    after = (await owner.get(METRICS, params={"q": m})).json()
    assert after["totals"] == {"leads": 4, "open": 0, "converted": 3, "lost": 1}
    assert after["conversionRate"] == 0.75 and after["winRate"] == 0.75
    assert after["bySource"][0] == {"source": fair, "count": 2, "converted": 1, "conversionRate": 0.5}
    assert {s["stage"]: s["count"] for s in after["byStage"]}["WON"] == 3
    assert after["averageTimeToConvertSeconds"] < 3 * 86400  # the open lead converted within the day

    # An explicit window with only the old lead; a filter on the source.
    old_day = created[old["id"]].isoformat()
    window = (await owner.get(METRICS, params={"q": m, "from": old_day, "to": old_day})).json()
    assert window["window"] == {"from": old_day, "to": old_day, "days": 1}
    assert window["totals"] == {"leads": 1, "open": 1, "converted": 0, "lost": 0}
    assert window["bySource"] == [{"source": old_src, "count": 1, "converted": 0, "conversionRate": 0.0}]
    assert window["averageTimeToConvertSeconds"] is None and window["conversionRate"] == 0.0
    assert window["createdPerDay"] == [{"date": old_day, "count": 1}]
    only_web = (await owner.get(METRICS, params={"q": m, "source": web, "days": 60})).json()
    assert only_web["totals"]["leads"] == 2 and only_web["window"]["days"] == 60


async def test_bad_windows_are_422(owner):
    for params in ({"days": 0}, {"days": 367}, {"days": "x"}, {"days": 5, "from": "2025-01-01"},
                   {"from": "2025-02-01", "to": "2025-01-01"}, {"from": "2020-01-01", "to": "2025-01-01"},
                   {"from": "0001-01-01"}, {"to": "9999-12-31"}, {"from": "2025-13-01"}, {"source": "a b"}):
        resp = await owner.get(METRICS, params=params)
        assert_problem(resp, 422)
