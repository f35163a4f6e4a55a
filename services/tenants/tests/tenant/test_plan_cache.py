"""Plans are cached per process: a plan added or switched off in the database counts after a refresh."""

from __future__ import annotations

import uuid

import asyncpg

from common.testing.checks import assert_problem
from tenants.plan.cache import plans


async def test_plans_follow_the_database_once_the_cache_refreshes(owner, database_url):
    url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    code = "beta" + uuid.uuid4().hex[:6]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO plans (id, code, name, amount, currency, interval, limits, sort_order, "
                           "active) VALUES ($1, $2, $3, 900, 'USD', 'month', '{}', 99, true)",
                           uuid.uuid4(), code, code.title())
        plans.clear()
        made = await owner.post("/api/platform/tenants", json={"name": f"Cache {code}", "plan": code.upper()})
        assert made.status_code == 201 and made.json()["plan"] == code.title()

        await conn.execute("UPDATE plans SET active = false WHERE code = $1", code)
        plans.clear()
        refused = await owner.post("/api/platform/tenants", json={"name": f"Cache2 {code}", "plan": code})
        assert code.title() not in assert_problem(refused, 422, detail="Unknown plan")["detail"].split(":")[-1]
        # Tenants already on the plan still read fine (their plan is loaded, not cached).
        assert (await owner.get(f"/api/platform/tenants/{made.json()['id']}")).json()["plan"] == code.title()
    finally:
        await conn.execute("DELETE FROM tenants WHERE plan_id IN (SELECT id FROM plans WHERE code = $1)", code)
        await conn.execute("DELETE FROM plans WHERE code = $1", code)
        await conn.close()
        plans.clear()
