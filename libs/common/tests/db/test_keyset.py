"""Keyset (cursor) pages and totals of `Repository.paginate` against real PostgreSQL: every row once, in order,
whatever the ties, NULLs, directions or rows added meanwhile; foreign or altered cursors refused; `Total.exact`."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import DateTime, Numeric, String, func, select
from sqlmodel import Field

from common.api import InvalidCursor, KeysetPage, KeysetPageParamsDep, Page, PageParams, Schema, Total
from common.db.base import TableModel, new_registry
from common.db.repository import Keyset, Repository, trigram_searchable
from common.errors import install_problem_handlers
from common.testing.checks import assert_problem

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Base(TableModel, registry=new_registry()):
    pass


class Row(Base, table=True):
    __tablename__ = "keyset_rows"

    tag: str = Field(sa_type=String(20))
    name: str = Field(sa_type=String(100))
    rank: int = 0
    due: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    price: Decimal = Field(default=Decimal("0"), sa_type=Numeric(10, 2))


class RowRepository(Repository[Row]):
    model = Row


@pytest.fixture
async def database(scratch_database):
    return await scratch_database(Base.metadata)


async def _seed(database, tag: str, n: int = 23) -> list[Row]:
    """`n` rows with ties on every key: 4 names, 3 ranks, 5 creation times, a due date or NULL."""
    rows = [Row(tag=tag, name=f"{'abcd'[i % 4]}", rank=i % 3, created_at=T0 + timedelta(minutes=i % 5),
                due=None if i % 4 == 0 else T0 + timedelta(days=i % 2), price=Decimal(i % 3) / 4) for i in range(n)]
    async with database.sessionmaker() as session, session.begin():
        session.add_all(rows)
    return rows


async def _walk(repo: RowRepository, statement, order_by, *, limit: int, unindexed=None) -> list[uuid.UUID]:
    """Every page from the first by `nextCursor` until it is None."""
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        rows, total = await repo.paginate(statement, limit=limit, offset=0, order_by=order_by, cursor=cursor,
                                          keyset=True, unindexed=unindexed)
        assert len(rows) <= limit
        seen += [r.id for r in rows]
        cursor = total.next_cursor
        if cursor is None:
            return seen
        if unindexed is None:
            assert len(rows) == limit  # a short page is the last one (bounded scans aside)


ORDERS = {
    "created desc (ties)": [Row.created_at.desc()],
    "created asc (ties)": [Row.created_at],
    "lower(name) (ties)": [func.lower(Row.name).asc()],
    "name desc (ties)": [Row.name.desc()],
    "rank, created (two keys)": [Row.rank.asc(), Row.created_at.asc()],
    "rank desc, name asc (mixed)": [Row.rank.desc(), Row.name.asc()],
    "due (NULLs last)": [Row.due.asc()],
    "due desc (NULLs first)": [Row.due.desc()],
    "price (numeric)": [Row.price.desc()],
}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize("limit", [1, 4, 23, 50])
async def test_walking_by_cursor_gives_every_row_once_in_the_order_of_the_offset_pages(database, order, limit):
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag)
    async with database.sessionmaker() as session:
        repo = RowRepository(session)
        statement = select(Row).where(Row.tag == tag)
        everything, total = await repo.paginate(statement, limit=100, offset=0, order_by=order)
        assert total == 23 and total.exact and total.next_cursor is None  # offset pages carry no cursor
        walked = await _walk(repo, statement, order, limit=limit)
    assert walked == [r.id for r in everything]


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
async def test_an_unindexed_filter_reads_bounded_stretches_and_the_walk_still_gives_every_match_once(
        database, monkeypatch, order):
    monkeypatch.setattr("common.db.repository.SCAN_ROWS", 4)
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag)
    async with database.sessionmaker() as session:
        repo = RowRepository(session)
        statement = select(Row).where(Row.tag == tag)
        rare = Row.name == "b"  # 6 of the 23 rows
        expected, _ = await repo.paginate(statement.where(rare), limit=100, offset=0, order_by=order)
        for limit in (1, 3, 10):
            walked = await _walk(repo, statement, order, limit=limit, unindexed=rare)
            assert walked == [r.id for r in expected]
        # The first page and pages by offset apply the filter as it is (each as far as its matches are): page 1
        # and page 2 by offset together are the first 8 matches, none skipped.
        first, total = await repo.paginate(statement, limit=4, offset=0, order_by=order, keyset=True, unindexed=rare)
        by_offset, total = await repo.paginate(statement, limit=4, offset=4, order_by=order, unindexed=rare)
        assert [r.id for r in first] + [r.id for r in by_offset] == [r.id for r in expected][:8] and not total.exact


async def test_a_deep_cursor_page_is_the_same_as_the_offset_page_and_the_first_page_has_a_cursor(database):
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag, n=40)
    async with database.sessionmaker() as session:
        repo = RowRepository(session)
        statement = select(Row).where(Row.tag == tag)
        order = [Row.created_at.desc()]
        first, total = await repo.paginate(statement, limit=30, offset=0, order_by=order, keyset=True)
        assert total.next_cursor is not None and total == 40
        deep, deep_total = await repo.paginate(statement, limit=5, offset=0, order_by=order,
                                               cursor=total.next_cursor)
        by_offset, _ = await repo.paginate(statement, limit=5, offset=30, order_by=order)
        assert [r.id for r in deep] == [r.id for r in by_offset] and deep_total == 40  # the list's total
        last, last_total = await repo.paginate(statement, limit=5, offset=0, order_by=order,
                                               cursor=deep_total.next_cursor)
        assert len(last) == 5 and last_total.next_cursor is None  # exactly at the end: no empty page after


async def test_rows_added_or_removed_between_pages_never_make_one_repeat_or_skip_another(database):
    tag = uuid.uuid4().hex[:8]
    rows = await _seed(database, tag, n=12)
    order = [Row.created_at.desc()]
    statement = select(Row).where(Row.tag == tag)
    async with database.sessionmaker() as session:
        first, total = await RowRepository(session).paginate(statement, limit=4, offset=0, order_by=order,
                                                             keyset=True)
    # Meanwhile: newer rows (before the cursor), an older one (after it), one not yet listed removed.
    newer = [Row(tag=tag, name="new", created_at=T0 + timedelta(hours=1)) for _ in range(3)]
    older = Row(tag=tag, name="old", created_at=T0 - timedelta(hours=1))
    seen = {r.id for r in first}
    gone = next(r for r in rows if r.id not in seen)
    async with database.sessionmaker() as session, session.begin():
        session.add_all([*newer, older])
        await session.delete(await session.get(Row, gone.id))
    walked = [r.id for r in first]
    cursor = total.next_cursor
    async with database.sessionmaker() as session:
        while cursor:
            page, total = await RowRepository(session).paginate(statement, limit=4, offset=0, order_by=order,
                                                                cursor=cursor)
            walked += [r.id for r in page]
            cursor = total.next_cursor
    assert len(walked) == len(set(walked))  # none twice
    assert set(walked) == {r.id for r in rows} - {gone.id} | {older.id}  # none skipped; newer ones are before


async def test_a_cursor_of_another_order_or_an_altered_one_is_refused_as_invalid(database):
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag)
    statement = select(Row).where(Row.tag == tag)
    async with database.sessionmaker() as session:
        repo = RowRepository(session)
        _, total = await repo.paginate(statement, limit=3, offset=0, order_by=[Row.created_at.desc()], keyset=True)
        good = total.next_cursor
        version, sort, values = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))

        def made(*body) -> str:
            return base64.urlsafe_b64encode(json.dumps(list(body)).encode()).decode().rstrip("=")

        bad = [
            "not a cursor", "%%%", good[:-3], made(version + 1, sort, values),
            made(version, sort, values[:1]), made(version, sort, [["s", "yesterday"], values[1]]),
            made(version, sort, [["t", "not a date"], values[1]]), made(version, sort, [values[0], ["u", "x"]]),
            made(version, sort, [values[0], ["u", 7]]), made(version, sort, [["m", "1e"], values[1]]),
            made(version, sort, [["?", 1], values[1]]), made(version, sort, [values[0], ["s", "a\x00"]]),
            made({"a": 1}), made(version, sort, "values"), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        ]
        for cursor in bad:
            with pytest.raises(InvalidCursor):
                await repo.paginate(statement, limit=3, offset=0, order_by=[Row.created_at.desc()], cursor=cursor)
        for other in ([Row.created_at.asc()], [Row.name.desc()], [Row.created_at.desc(), Row.name.asc()]):
            with pytest.raises(InvalidCursor):
                await repo.paginate(statement, limit=3, offset=0, order_by=other, cursor=good)
        # Same order, another statement: the cursor is the position in the order, the filters are the caller's.
        rows, _ = await repo.paginate(select(Row), limit=3, offset=0, order_by=[Row.created_at.desc()], cursor=good)
        assert len(rows) == 3


def test_cursor_values_keep_their_type_and_a_key_of_another_type_is_refused():
    keys = Keyset([Row.created_at.desc(), Row.rank.asc(), Row.price.asc(), Row.due.asc(), Row.id.desc()])
    values = [T0, 2, Decimal("0.25"), None, uuid.uuid4()]
    assert keys._read(keys.cursor(values)) == values
    with pytest.raises(TypeError):
        keys.cursor([T0, object(), Decimal(0), None, uuid.uuid4()])
    with pytest.raises(InvalidCursor):  # a string where the key is an integer
        keys._read(keys.cursor([T0, "x", Decimal(0), None, uuid.uuid4()]))


async def test_a_cursor_value_the_key_s_type_cannot_hold_is_invalid_never_a_database_error(database):
    """Hand-made cursors whose values the driver would refuse for the key's column (a float or a string for an
    integer, an integer past int4, a naive time for a timestamptz, a time that overflows when made UTC, a number
    past numeric's range): each is `InvalidCursor` (the API's 422), and the query is never sent."""
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag)
    statement = select(Row).where(Row.tag == tag)
    order = [Row.rank.asc(), Row.created_at.asc(), Row.price.asc()]
    keys = Keyset([*order, Row.id.asc()])

    def made(rank, created, price) -> str:
        body = [Keyset.VERSION, keys.sort, [rank, created, price, ["u", str(uuid.uuid4())]]]
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")

    at, price = ["t", T0.isoformat()], ["m", "0.25"]
    bad = [
        made(["f", 1.5], at, price), made(["i", 1.5], at, price), made(["s", "1"], at, price),
        made(["b", True], at, price), made(["i", 2**31], at, price), made(["i", -(2**31) - 1], at, price),
        made(["i", 1], ["t", "2026-01-01T00:00:00"], price),  # naive, for a timestamptz
        made(["i", 1], ["t", "0001-01-01T00:00:00+05:00"], price),  # before year 1 in UTC
        made(["i", 1], ["t", "9999-12-31T23:00:00-05:00"], price),  # after year 9999 in UTC
        made(["i", 1], ["d", "2026-01-01"], price), made(["i", 1], ["s", "2026-01-01T00:00:00+00:00"], price),
        made(["i", 1], at, ["f", 0.25]), made(["i", 1], at, ["m", "NaN"]), made(["i", 1], at, ["m", "Infinity"]),
        made(["i", 1], at, ["m", "1e100000"]), made(["i", 1], at, ["s", "0.25"]),
    ]
    async with database.sessionmaker() as session:
        repo = RowRepository(session)
        for cursor in bad:
            with pytest.raises(InvalidCursor):
                await repo.paginate(statement, limit=3, offset=0, order_by=order, cursor=cursor)
        for good in (made(["i", 1], at, price), made(["i", 1], ["t", "2026-01-01T05:00:00+05:00"], ["i", 0]),
                     made(["i", -(2**31)], at, price)):
            rows, _ = await repo.paginate(statement, limit=3, offset=0, order_by=order, cursor=good)
            assert rows


async def test_total_says_whether_it_was_counted(database, monkeypatch):
    monkeypatch.setattr("common.db.repository.EXACT_TOTAL_UP_TO", 5)
    tag = uuid.uuid4().hex[:8]
    await _seed(database, tag, n=8)
    async with database.sessionmaker() as session:
        await session.execute(select(func.count()).select_from(Row))
        repo = RowRepository(session)
        few = select(Row).where(Row.tag == tag, Row.rank == 0)  # 3 rows: counted
        many = select(Row).where(Row.tag == tag)  # 8 rows, above the cap: estimated
        rows, total = await repo.paginate(few, limit=2, offset=0, order_by=[Row.name])
        assert (len(rows), total, total.exact) == (2, 3, True)
        _, total = await repo.paginate(many, limit=2, offset=0, order_by=[Row.name])
        assert total >= 6 and not total.exact
        rows, total = await repo.paginate(select(Row).where(Row.tag == tag), limit=2, offset=0, order_by=[Row.name],
                                          unindexed=Row.rank == 0)
        assert not total.exact and total >= 1 and len(rows) == 2  # the page is read all the same


def test_trigram_searchable_follows_pg_trgm():
    # Checked against PostgreSQL's plans for `name ILIKE '%q%'` with a gin_trgm_ops index.
    assert [q for q in ("7f", "ab", "a", "__", "a7f3", "abc", " ab", "a b", "ab-", "é7x")
            if trigram_searchable(q)] == ["a7f3", "abc", " ab", "a b", "ab-", "é7x"]


class ItemRead(Schema):
    id: uuid.UUID
    name: str


def test_page_of_reads_exactness_and_the_next_cursor_from_the_total():
    rows = [ItemRead(id=uuid.uuid4(), name="a")]
    params = PageParams(limit=1, offset=0)
    plain = Page[ItemRead].of(rows, 5, params).model_dump(mode="json")
    assert plain["totalExact"] is True and "nextCursor" not in plain
    estimated = Page[ItemRead].of(rows, Total(5000, exact=False, next_cursor="abc"), params).model_dump(mode="json")
    assert (estimated["total"], estimated["totalExact"]) == (5000, False) and "nextCursor" not in estimated
    keyset = KeysetPage[ItemRead].of(rows, Total(5, next_cursor="abc"), params).model_dump(mode="json")
    assert (keyset["totalExact"], keyset["nextCursor"]) == (True, "abc")
    assert KeysetPage[ItemRead].of(rows, 5, params).next_cursor is None


async def test_cursor_with_offset_is_a_422_problem_and_both_fields_are_in_the_openapi():
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/rows", response_model=KeysetPage[ItemRead])
    async def listing(page: KeysetPageParamsDep) -> KeysetPage[ItemRead]:
        return KeysetPage[ItemRead].of([], Total(0), page)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert_problem(await client.get("/rows", params={"cursor": "abc", "offset": 5}), 422, detail="offset")
        assert (await client.get("/rows", params={"cursor": "abc"})).json()["nextCursor"] is None
        assert_problem(await client.get("/rows", params={"cursor": "x" * 4097}), 422)
        spec = (await client.get("/openapi.json")).json()
    fields = spec["components"]["schemas"]["KeysetPage_ItemRead_"]["properties"]
    assert {"totalExact", "nextCursor"} <= set(fields)
    assert "cursor" in {p["name"] for p in spec["paths"]["/rows"]["get"]["parameters"]}
