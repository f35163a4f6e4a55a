"""The lead list by cursor, through the real API: every lead once, in each sort's order, with ties on the sort key;
a cursor of another sort, altered, or with `offset` is a 422 problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from common.testing import pages

LEADS = "/api/platform/leads"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
async def marker(api, database_url) -> str:
    """11 leads sharing a marker, with ties on every sort key: 3 creation and update instants, 3 values, names
    equal but for case."""
    mark = uuid.uuid4().hex[:10]
    ids = []
    for i in range(11):
        name = f"Walk {mark} {i % 4}" if i % 2 else f"WALK {mark} {i % 4}"
        ids.append((await api.create(name=name, value=str(Decimal(100 * (i % 3)))))["id"])
    await pages.set_column(database_url, "leads", "created_at", {i: T0 + timedelta(minutes=n % 3) for n, i in enumerate(ids)})
    await pages.set_column(database_url, "leads", "updated_at", {i: T0 + timedelta(hours=n % 3) for n, i in enumerate(ids)})
    return mark


def _key(sort: str, lead: dict):
    key = sort.lstrip("-")
    if key == "name":
        return lead["name"].lower()
    if key == "value":
        return Decimal(lead["value"])
    return datetime.fromisoformat(lead[key])


@pytest.mark.parametrize("sort", ["-createdAt", "createdAt", "-updatedAt", "updatedAt", "name", "-name", "value",
                                  "-value"])
async def test_walking_by_cursor_lists_every_lead_once_in_the_sorts_order(owner, marker, sort):
    whole = await pages.assert_walks_give_the_whole_list(owner, LEADS, {"q": marker, "sort": sort})
    assert len(whole) == 11
    keys = [_key(sort, lead) for lead in whole]
    assert keys == sorted(keys, reverse=sort.startswith("-")) and len(set(keys)) < len(keys)  # ties included
    # A filter keeps the walk whole.
    await pages.assert_walks_give_the_whole_list(owner, LEADS, {"q": f"{marker} 1", "sort": sort})


async def test_a_foreign_altered_or_offset_mixed_cursor_is_a_422_problem(owner, marker):
    await pages.assert_foreign_or_altered_cursors_are_refused(owner, LEADS, {"q": marker}, "name", "-value")
    await pages.assert_foreign_or_altered_cursors_are_refused(owner, LEADS, {"q": marker}, "-createdAt", "createdAt")


async def test_offset_pages_are_as_before(owner, marker):
    await pages.assert_offset_page_is_a_slice(owner, LEADS, {"q": marker, "sort": "name"})


@pytest.mark.parametrize("sort", ["-createdAt", "name", "-value"])
async def test_a_one_or_two_character_search_finds_word_starts_and_its_walk_finds_every_match_once(api, owner, marker,
                                                                                                   sort):
    # 1-2 letters or digits: where a word of name, email or company starts, served by the trigram index (counted,
    # full pages). No letter or digit: the `ILIKE '%q%'` no index serves (`%` a percent sign): an estimated total,
    # each cursor page a bounded stretch of the order; both walks list every match once, in order.
    rare = uuid.uuid4().hex[:6]
    made = [(await api.create(name=f"Ŧ {rare}", company="50% off"))["id"],
            (await api.create(name=f"plain {rare}", email=f"ŧ{rare}@example.com"))["id"]]
    mine = [lead["id"] for lead in (await owner.get(LEADS, params={"q": marker, "limit": 100})).json()["items"]]
    for q, including in ((marker[:2], mine), ("ŧ", made), ("50", made[:1])):
        walked = await pages.assert_word_start_search_walk_finds_every_match(
            owner, LEADS, {"q": q, "sort": sort}, fields=["name", "email", "company"], including=including)
        keys = [_key(sort, lead) for lead in walked]
        assert keys == sorted(keys, reverse=sort.startswith("-"))
    assert made[0] not in {lead["id"] for lead in await pages.walk(owner, LEADS, {"q": "0%", "sort": sort}, limit=50)}
    for q, including in (("%", made[:1]), ("% ", made[:1])):
        walked = await pages.assert_short_search_walk_finds_every_match(
            owner, LEADS, {"q": q, "sort": sort}, fields=["name", "email", "company"], including=including)
        keys = [_key(sort, lead) for lead in walked]
        assert keys == sorted(keys, reverse=sort.startswith("-"))


@pytest.mark.parametrize("q", ["a7f3", "7f"])
async def test_a_search_of_name_email_and_company_is_one_scan_of_one_trigram_index(database_url, q):
    # The three columns as one text (migration 0005): the list's condition is the index's expression, so a search
    # is one index scan (three per-column indexes made it a BitmapOr of three). Sequential scans off: the table
    # here is small, the question is whether the index can serve the condition at all.
    import asyncpg
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from common.db.repository import search
    from leads.lead.repository import SEARCHED
    from leads.models import Lead

    statement, unindexed = search(select(Lead.id), SEARCHED, q)
    assert unindexed is None
    compiled = statement.compile(dialect=postgresql.dialect(paramstyle="numeric_dollar"))
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) {compiled.string}",
                                                          *(compiled.params[k] for k in compiled.positiontup)))
    finally:
        await conn.close()
    assert plan.count("Bitmap Index Scan on ix_leads_search_trgm") == 1 and "BitmapOr" not in plan, plan
