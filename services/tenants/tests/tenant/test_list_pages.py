"""The tenants list by cursor and its totals, through the real API: every tenant once, in each sort's order, with
ties on the sort key and tenants created meanwhile; foreign or altered cursors are 422 problems; `totalExact`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from common.testing.checks import assert_problem
from common.testing.pages import (
    assert_short_search_walk_finds_every_match,
    assert_word_start_search_walk_finds_every_match,
    walk,
)

URL = "/api/platform/tenants"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


async def _connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))


async def _insert(database_url: str, rows: list[tuple[str, str, str, datetime]]) -> list[str]:
    """Tenants (name, plan code, status, created_at) straight into the table: ties on created_at and on names
    (deleted ones) that the API would not make; their ids."""
    conn = await _connect(database_url)
    try:
        ids = [uuid.uuid4() for _ in rows]
        await conn.executemany(
            "INSERT INTO tenants (id, name, plan_id, status, settings, created_at, updated_at, deleted_at) "
            "SELECT $1, $2, id, $4::text, '{}'::jsonb, $5::timestamptz, $5, CASE WHEN $4::text = 'DELETED' THEN $5::timestamptz END "
            "FROM plans WHERE code = $3",
            [(i, name, plan, status, at) for i, (name, plan, status, at) in zip(ids, rows, strict=True)])
    finally:
        await conn.close()
    return [str(i) for i in ids]


@pytest.fixture
async def seeded(database_url):
    """18 tenants sharing a marker: created in 4 instants (ties), 3 plans, 3 suspended, 5 deleted with the same
    name in different cases."""
    marker = uuid.uuid4().hex[:10]
    rows = []
    for i in range(18):
        status = "DELETED" if i >= 13 else "SUSPENDED" if i % 4 == 1 else "ACTIVE"
        name = f"Walk {marker} gone".upper() if i % 2 and status == "DELETED" else (
            f"Walk {marker} gone" if status == "DELETED" else f"Walk {marker} {i:02d}")
        rows.append((name, ("FREE", "PRO", "ENTERPRISE")[i % 3], status, T0 + timedelta(minutes=i % 4)))
    await _insert(database_url, rows)
    return marker


SORTS = ["-createdAt", "createdAt", "name", "-name"]
FILTERS = {"live": {}, "deleted": {"status": "DELETED"}, "suspended": {"status": "SUSPENDED"}, "pro": {"plan": "Pro"}}


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
async def test_walking_by_cursor_lists_every_tenant_once_in_the_sorts_order(owner, seeded, sort, filters):
    params = {"q": seeded, "sort": sort} | filters
    whole = (await owner.get(URL, params=params | {"limit": 100})).json()
    assert whole["totalExact"] is True and whole["nextCursor"] is None and whole["total"] == len(whole["items"]) > 0
    for limit in (1, 2, 5):
        walked = await walk(owner, URL, params, limit=limit)
        assert [t["id"] for t in walked] == [t["id"] for t in whole["items"]]
    key = sort.lstrip("-")
    keys = [t[key].lower() if key == "name" else datetime.fromisoformat(t[key]) for t in whole["items"]]
    assert keys == sorted(keys, reverse=sort.startswith("-"))  # the sort's order (ids break the ties)


async def test_tenants_created_or_deleted_between_pages_never_make_one_repeat_or_skip_another(
        owner, seeded, database_url):
    params = {"q": seeded, "sort": "-createdAt", "limit": 4}
    first = (await owner.get(URL, params=params)).json()
    before = (await owner.get(URL, params=params | {"limit": 100})).json()["items"]
    [newer, older] = await _insert(database_url, [(f"Walk {seeded} newer", "PRO", "ACTIVE", T0 + timedelta(days=1)),
                                                  (f"Walk {seeded} older", "PRO", "ACTIVE", T0 - timedelta(days=1))])
    unseen = before[-1]["id"]
    assert (await owner.delete(f"{URL}/{unseen}")).status_code == 204
    walked = [t["id"] for t in first["items"]]
    cursor = first["nextCursor"]
    while cursor:
        page = (await owner.get(URL, params=params | {"cursor": cursor})).json()
        walked += [t["id"] for t in page["items"]]
        cursor = page["nextCursor"]
    assert len(walked) == len(set(walked))
    assert set(walked) == {t["id"] for t in before} - {unseen} | {older}
    assert newer not in walked  # created before the cursor's position: the next walk from the start has it


async def test_a_foreign_altered_or_offset_mixed_cursor_is_a_422_problem(owner, seeded):
    by_name = (await owner.get(URL, params={"q": seeded, "sort": "name", "limit": 2})).json()["nextCursor"]
    by_date = (await owner.get(URL, params={"q": seeded, "limit": 2})).json()["nextCursor"]
    assert by_name and by_date
    for params in ({"cursor": by_name}, {"cursor": by_name, "sort": "-name"}, {"cursor": by_date, "sort": "name"},
                   {"cursor": by_date[:-2] + "xy"}, {"cursor": "bm90IGEgY3Vyc29y"}, {"cursor": "%%%%"},
                   {"cursor": by_date, "offset": 2}, {"cursor": "x" * 4097}):
        assert_problem(await owner.get(URL, params=params), 422)
    # Same sort, other filters: a position in the order, valid (the page after it in the filtered list).
    assert (await owner.get(URL, params={"cursor": by_date, "status": "SUSPENDED"})).status_code == 200


async def test_total_exact_unless_estimated(owner, seeded, database_url):
    exact = (await owner.get(URL, params={"q": seeded})).json()
    assert exact["totalExact"] is True and exact["total"] == 13  # the live ones
    # A 2-character search: where a word starts, served by the trigram index, counted as any other.
    short = (await owner.get(URL, params={"q": seeded[:2]})).json()
    assert short["totalExact"] is True and short["total"] >= 13
    # No letter or digit: no trigram index can serve it, it is not counted (every row would be read).
    bare = (await owner.get(URL, params={"q": " "})).json()
    assert bare["totalExact"] is False and bare["total"] >= 1
    assert set(bare) == {"items", "total", "limit", "offset", "totalExact", "nextCursor"}
    # Above 1,000 matches: counted up to 1,000, then PostgreSQL's estimate.
    many = uuid.uuid4().hex[:10]
    conn = await _connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO tenants (id, name, plan_id, status, settings, created_at, updated_at) "
            "SELECT gen_random_uuid(), $1 || ' ' || i, (SELECT id FROM plans WHERE code = 'FREE'), 'ACTIVE', "
            "'{}'::jsonb, now(), now() FROM generate_series(1, 1001) AS i", f"Many {many}")
        await conn.execute("ANALYZE tenants")
        big = (await owner.get(URL, params={"q": many})).json()
        assert big["totalExact"] is False and big["total"] >= 1001
        at_cap = (await owner.get(URL, params={"q": f"Many {many} 1"})).json()  # 1, 10-19, 100-199, 1000-1001
        assert at_cap["totalExact"] is True and at_cap["total"] == 1 + 10 + 100 + 2
    finally:
        await conn.execute("DELETE FROM tenants WHERE name LIKE $1", f"Many {many} %")
        await conn.close()


@pytest.mark.parametrize("sort", SORTS)
async def test_a_two_character_search_walked_by_cursor_finds_every_match_once(owner, seeded, sort):
    # 2 characters: where a word starts, served by the trigram index (counted, full pages). No letter or digit: no
    # index serves it, each page reads a bounded stretch of the order (a page may be short, even empty, before the
    # end). Following `nextCursor` lists every match once, in order, either way.
    mine = {t["id"] for t in (await owner.get(URL, params={"q": seeded, "limit": 100})).json()["items"]}
    for q, check in ((seeded[:2], assert_word_start_search_walk_finds_every_match),
                     (" ", assert_short_search_walk_finds_every_match)):
        walked = await check(owner, URL, {"q": q, "sort": sort}, fields=["name"], including=mine)
        key = sort.lstrip("-")
        keys = [t[key].lower() if key == "name" else datetime.fromisoformat(t[key]) for t in walked]
        assert keys == sorted(keys, reverse=sort.startswith("-"))


async def test_a_search_with_few_matches_is_searched_once_and_its_page_read_by_id_with_the_plan(database_url, seeded):
    # `paginate(searched=True)`: the count returns the few ids it found; the page reads those by primary key (the
    # plan eager-loaded as ever), not the search's index scan and recheck a second time.
    from sqlalchemy import event

    from common.db.engine import Database
    from tenants.tenant.repository import TenantRepository
    from tenants.tenant.schemas import TenantSort

    db = Database(database_url, pool_size=1)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.sessionmaker() as session:
            rows, total = await TenantRepository(session).list(status=None, plan=None, q=seeded,
                                                               sort=TenantSort.name, limit=5, offset=0)
            assert (int(total), total.exact) == (13, True)
            assert [t.name for t in rows] == [f"Walk {seeded} {i:02d}" for i in range(5)]
            assert {t.plan.code for t in rows} == {"FREE", "PRO", "ENTERPRISE"}
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        await db.dispose()
    assert len(statements) == 2, statements
    assert "ILIKE" in statements[0].upper() and "ILIKE" not in statements[1].upper(), statements
