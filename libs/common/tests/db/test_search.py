"""A list's `q` (`search`/`matching`) against real PostgreSQL with a trigram index: 3+ characters anywhere, 1-2
letters or digits where a word starts, and every first page served by the index at 10,000 rows (EXPLAIN)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Index, String, event, func, select, text
from sqlmodel import Field

from common.db.base import TableModel, new_registry
from common.db.repository import Repository, matching, search


class Base(TableModel, registry=new_registry()):
    pass


class Named(Base, table=True):
    __tablename__ = "search_rows"
    __table_args__ = (Index("ix_search_rows_name_trgm", "name", postgresql_using="gin",
                            postgresql_ops={"name": "gin_trgm_ops"},
                            postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"}),)

    name: str = Field(sa_type=String(100))


class NamedRepository(Repository[Named]):
    model = Named


NAMES = ["Acme Corp", "The Acme", "x@acme.com", "ac", "(AC) Hardware", "Lilac", "Lilacme", "Tracks", "Zz Top",
         "a-b", "50% off", "q.e.d", "b*", "c\\d", "d(e", "e[f]", "f|g", "Ǆemal Ŧe"]


@pytest.fixture(scope="module")
async def database(module_scratch_database):
    db = await module_scratch_database()
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        await conn.run_sync(Base.metadata.create_all)
        # 10,000 rows as bench (h) seeds tenants, and the names the rule is about.
        await conn.execute(text("INSERT INTO search_rows (id, name, created_at, updated_at) SELECT "
                                "gen_random_uuid(), 'Seed ' || md5(i::text), now(), now() "
                                "FROM generate_series(1, 10000) AS i"))
    async with db.sessionmaker() as session, session.begin():
        session.add_all([Named(name=n) for n in NAMES])
    async with db.autocommit.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE search_rows"))
    return db


async def _found(database, q: str) -> set[str]:
    async with database.sessionmaker() as session:
        statement, unindexed = search(select(Named).where(~Named.name.startswith("Seed ")), [Named.name], q)
        rows, total = await NamedRepository(session).paginate(statement, limit=100, offset=0, unindexed=unindexed)
    return {row.name for row in rows}


async def test_one_or_two_letters_or_digits_match_where_a_word_starts(database):
    assert await _found(database, "ac") == {"Acme Corp", "The Acme", "x@acme.com", "ac", "(AC) Hardware"}
    assert await _found(database, "AC") == await _found(database, "ac")
    assert await _found(database, "l") == {"Lilac", "Lilacme"}
    assert await _found(database, "b") == {"a-b", "b*"}  # after punctuation
    assert await _found(database, "a-") == {"a-b"}
    assert await _found(database, "zz") == {"Zz Top"}
    # Taken literally, a regular expression's own characters too.
    assert [await _found(database, q) for q in ("q.", "b*", "c\\", "d(", "e[", "f|", "e.")] == \
        [{"q.e.d"}, {"b*"}, {"c\\d"}, {"d(e"}, {"e[f]"}, {"f|g"}, {"q.e.d"}]
    # Letters beyond ASCII, their case folded.
    assert await _found(database, "ŧ") == {"Ǆemal Ŧe"}
    # 3+ characters: anywhere, as before.
    assert await _found(database, "lac") == {"Lilac", "Lilacme"}
    assert await _found(database, "acme") == {"Acme Corp", "The Acme", "x@acme.com", "Lilacme"}
    # No letter or digit: a substring, the one kind no trigram index serves (paginate's `unindexed`).
    assert await _found(database, "%") == {"50% off"}
    # 3+ characters with no trigram (one digit among punctuation): a substring too, no index serves it.
    assert await _found(database, "0% ") == {"50% off"}
    assert [matching([Named.name], q)[1] for q in ("ac", "a", "a-", "@g", "acm", "%", "@", "..", "0%_", "a--")] == \
        [True, True, True, True, True, False, False, False, False, False]


def _plans_of(database) -> tuple[list[tuple[str, Any]], Any]:
    statements: list[tuple[str, Any]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))
    return statements, seen


@pytest.mark.parametrize("q", ["zz", "7f", "s", "a7f3"])
async def test_the_first_page_of_any_search_is_served_by_the_trigram_index_at_10000_rows(database, q):
    statements, seen = _plans_of(database)
    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.sessionmaker() as session:
            statement, unindexed = search(select(Named), [Named.name], q)
            assert unindexed is None
            rows, total = await NamedRepository(session).paginate(statement, limit=20, offset=0, keyset=True,
                                                                  order_by=[Named.created_at.desc()])
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    assert statements
    async with database.engine.connect() as conn:
        for sql, parameters in statements:
            plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {sql}", tuple(parameters))).scalars())
            # A count (up to 1,001 rows) or a page: never every row. `s` matches every row's first word: its count
            # stops at 1,001 and its page walks the order until 20 match.
            assert "Seq Scan" not in plan or q == "s", plan
            if q != "s":
                assert "ix_search_rows_name_trgm" in plan, plan
    if q == "zz":
        assert ([r.name for r in rows], int(total), total.exact) == (["Zz Top"], 1, True)


@pytest.mark.parametrize("q", ["7f", "a7f3"])
async def test_a_search_with_few_matches_finds_them_once_and_reads_its_page_by_primary_key(database, q):
    """`paginate(searched=...)`: the count also orders the few matches it found, so the search (its trigram index
    scan and the recheck of every candidate) runs in one statement, and the page's rows are read by id."""
    statements, seen = _plans_of(database)
    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.sessionmaker() as session:
            statement, unindexed = search(select(Named), [Named.name], q)
            rows, total = await NamedRepository(session).paginate(statement, limit=20, offset=0, keyset=True,
                                                                  order_by=[Named.created_at.desc()],
                                                                  searched=select(Named))
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    async with database.sessionmaker() as session:
        expected = list((await session.execute(statement.order_by(Named.created_at.desc(), Named.id.desc()))
                         ).scalars())
    assert (int(total), total.exact) == (len(expected), True) and 0 < len(expected) <= 200
    assert [r.id for r in rows] == [r.id for r in expected[:20]]
    assert len(statements) == 2, [s for s, _ in statements]
    async with database.engine.connect() as conn:
        plans = ["\n".join((await conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {sql}", tuple(parameters))).scalars())
                 for sql, parameters in statements]
    assert "ix_search_rows_name_trgm" in plans[0], plans[0]
    assert "ix_search_rows_name_trgm" not in plans[1] and "~*" not in plans[1], plans[1]


@pytest.mark.parametrize("few_per_page", [10, 1])
async def test_a_searched_list_gives_the_same_pages_by_offset_and_by_cursor_whether_its_matches_are_few_or_not(
        database, monkeypatch, few_per_page):
    """Few matches (found first by the count) or more (`FEW_PER_PAGE` 1: read as any list's), ordered by a key
    with ties (the name, lower-cased) and by id: the pages, totals and cursors agree."""
    monkeypatch.setattr("common.db.repository.FEW_PER_PAGE", few_per_page)
    statement, _ = search(select(Named), [Named.name], "7f")
    order_by = [func.lower(Named.name).desc()]
    async with database.sessionmaker() as session:
        expected = [r.id for r in (await session.execute(
            statement.order_by(func.lower(Named.name).desc(), Named.id.desc()))).scalars()]
        repo = NamedRepository(session)
        by_offset = []
        for offset in range(0, len(expected) + 7, 7):
            rows, total = await repo.paginate(statement, limit=7, offset=offset, order_by=order_by,
                                              searched=select(Named))
            assert (int(total), total.exact) == (len(expected), True)
            by_offset += [r.id for r in rows]
        by_cursor, cursor = [], None
        for _ in range(len(expected)):
            rows, total = await repo.paginate(statement, limit=7, offset=0, order_by=order_by, cursor=cursor,
                                              keyset=True, searched=select(Named))
            assert (int(total), total.exact) == (len(expected), True)
            by_cursor += [r.id for r in rows]
            if not (cursor := total.next_cursor):
                break
    assert 7 < len(expected) <= 70
    assert by_offset == expected and by_cursor == expected


async def test_a_page_read_by_id_after_the_count_checks_the_lists_other_filters_again(database):
    """The few matches the count found are read again by id: a row that left the list in between (here renamed
    out of its filter, as a tenant soft-deleted would be) is not shown, though the count had it."""
    listed = select(Named).where(~Named.name.startswith("Gone "))  # the list's own filter
    statement, _ = search(listed, [Named.name], "vanishing")
    async with database.sessionmaker() as session, session.begin():
        session.add(Named(name="Vanishing Acme"))
    statements = []

    def rename_after_the_count(conn, cursor, sql, parameters, context, executemany):
        statements.append(sql)
        if len(statements) == 1:  # the count has run: the row leaves the list before the page is read
            conn.connection.cursor().execute("UPDATE search_rows SET name = 'Gone Vanishing Acme' WHERE name = 'Vanishing Acme'")

    event.listen(database.engine.sync_engine, "after_cursor_execute", rename_after_the_count)
    try:
        async with database.sessionmaker() as session:
            rows, total = await NamedRepository(session).paginate(statement, limit=20, offset=0,
                                                                  order_by=[Named.name], searched=listed)
    finally:
        event.remove(database.engine.sync_engine, "after_cursor_execute", rename_after_the_count)
        async with database.sessionmaker() as session, session.begin():
            await session.execute(text("DELETE FROM search_rows WHERE name LIKE '%Vanishing Acme'"))
    assert len(statements) == 2 and int(total) == 1
    assert rows == []
