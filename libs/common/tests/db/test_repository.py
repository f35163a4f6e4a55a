"""The repository base against real PostgreSQL: get, get for update, add, count, paginate, escaped search."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import String, UniqueConstraint, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Field

import common.db.repository as common_repository
from common.db.base import TableModel, new_registry
from common.db.repository import Repository, contains


class Base(TableModel, registry=new_registry()):
    pass


class Item(Base, table=True):
    __tablename__ = "items"

    name: str = Field(sa_type=String(100))
    rank: int = 0


class ItemRepository(Repository[Item]):
    model = Item


class Tag(Base, table=True):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("name", name="uq_tags_name"), UniqueConstraint("rank", name="uq_tags_rank"))

    name: str = Field(sa_type=String(100))
    rank: int = 0


class TakenName(Exception):
    pass


class TagRepository(Repository[Tag]):
    model = Tag
    violations = {"uq_tags_name": TakenName}


@pytest.fixture
async def database(scratch_database):
    return await scratch_database(Base.metadata)


async def _add(database, *names: str, rank: int = 0) -> list[Item]:
    async with database.sessionmaker() as session, session.begin():
        repo = ItemRepository(session)
        return [await repo.add(Item(name=name, rank=rank)) for name in names]


async def test_add_flushes_and_get_finds_by_id_or_answers_none(database):
    [item] = await _add(database, "first")
    async with database.sessionmaker() as session:
        found = await ItemRepository(session).get(item.id)
        assert found is not None and found.name == "first" and found.created_at is not None
        assert await ItemRepository(session).get(uuid.uuid4()) is None


async def test_get_for_update_locks_the_row_until_the_transaction_ends(database):
    [item] = await _add(database, "locked")
    async with database.sessionmaker() as holder, holder.begin():
        assert await ItemRepository(holder).get(item.id, for_update=True) is not None
        async with database.sessionmaker() as other, other.begin():
            await other.execute(text("SET LOCAL lock_timeout = '50ms'"))
            assert await ItemRepository(other).get(item.id) is not None  # a plain read is not blocked
            with pytest.raises(DBAPIError, match="lock timeout"):
                await ItemRepository(other).get(item.id, for_update=True)
    async with database.sessionmaker() as session, session.begin():  # released at the holder's commit
        assert await ItemRepository(session).get(item.id, for_update=True) is not None


async def test_count_ignores_order_and_paginate_returns_one_page_and_the_total(database):
    tag = uuid.uuid4().hex[:6]
    made = await _add(database, *(f"{tag}-{i}" for i in range(5)), rank=1)  # equal ranks: ties broken by id
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        mine = select(Item).where(Item.name.startswith(tag))
        assert await repo.count(mine.order_by(Item.name.desc())) == 5
        pages = [await repo.paginate(mine, limit=2, offset=offset, order_by=[Item.rank.asc()])
                 for offset in (0, 2, 4)]
        assert [total for _, total in pages] == [5, 5, 5]
        assert [len(rows) for rows, _ in pages] == [2, 2, 1]
        seen = [row.id for rows, _ in pages for row in rows]
        assert sorted(seen) == sorted(item.id for item in made)  # no row twice, none missing
        assert seen == sorted(seen)  # same rank: id order
        assert await repo.paginate(mine, limit=2, offset=10) == ([], 5)
        ordered, _ = await repo.paginate(mine, limit=5, offset=0, order_by=[Item.name.desc()])
        assert [row.name for row in ordered] == [f"{tag}-{i}" for i in reversed(range(5))]


@pytest.mark.parametrize(("q", "expected"), [
    ("50%", {"50% off"}),
    ("a_b", {"a_b"}),
    ("back\\slash", {"back\\slash"}),
    ("OFF", {"50% off"}),
    ("%", {"50% off"}),
    ("_", {"a_b"}),
])
async def test_contains_takes_like_wildcards_literally_and_ignores_case(database, q, expected):
    tag = uuid.uuid4().hex[:6]
    await _add(database, *(f"{tag} {name}" for name in ("50% off", "500 items", "a_b", "axb", "back\\slash")))
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        rows = await repo.all(select(Item).where(Item.name.startswith(tag), contains([Item.name], q)))
    assert {row.name.removeprefix(f"{tag} ") for row in rows} == expected


async def test_contains_searches_any_of_several_columns(database):
    tag = uuid.uuid4().hex[:6]
    [item] = await _add(database, f"{tag} plain")
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        found = await repo.get_one(select(Item).where(contains([Item.name, Item.id.cast(String)], str(item.id)[:8])))
        assert found is not None and found.id == item.id
        assert await repo.get_one(select(Item).where(contains([Item.name], f"{tag} nothing"))) is None


async def test_ties_follow_the_direction_of_the_first_sort_key(database):
    tag = uuid.uuid4().hex[:6]
    await _add(database, *(f"{tag}-{i}" for i in range(4)), rank=7)
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        mine = select(Item).where(Item.name.startswith(tag))
        down, _ = await repo.paginate(mine, limit=4, offset=0, order_by=[Item.rank.desc()])
        up, _ = await repo.paginate(mine, limit=4, offset=0, order_by=[Item.rank.asc()])
    assert [r.id for r in down] == sorted((r.id for r in down), reverse=True)  # one (rank, id) index, backwards
    assert [r.id for r in up] == list(reversed([r.id for r in down]))


async def test_a_total_past_the_exact_limit_is_the_planners_estimate_never_below_what_was_counted(
        database, monkeypatch):
    monkeypatch.setattr("common.db.repository.EXACT_TOTAL_UP_TO", 3)
    tag = uuid.uuid4().hex[:6]
    await _add(database, *(f"{tag}-{i}" for i in range(6)))
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        few = select(Item).where(Item.name.in_([f"{tag}-0", f"{tag}-1"]))  # bound parameters, expanded
        assert await repo.page_total(few) == (2, True)
        total, exact = await repo.page_total(select(Item).where(Item.name.startswith(tag), Item.rank == 0))
        assert not exact and total >= 4  # counted up to the limit + 1, then the estimate (>= that)
        rows, paged_total = await repo.paginate(select(Item).where(Item.name.startswith(tag)), limit=2,
                                                offset=4, order_by=[Item.name.asc()])
        # An estimate never ends the list early: the page is read whatever the total says.
        assert [r.name for r in rows] == [f"{tag}-4", f"{tag}-5"] and paged_total >= 4


async def test_an_estimate_is_reused_for_the_same_statement_and_parameters_for_a_few_seconds(database, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("common.db.repository.time.monotonic", lambda: clock[0])
    mine, other = (uuid.uuid4().int % 2**31 for _ in range(2))
    tag = uuid.uuid4().hex[:6]
    await _add(database, *(f"{tag}-{i}" for i in range(3)), rank=mine)

    def ranked(rank: int):
        return select(Item.id).where(Item.rank == rank)

    async with database.sessionmaker() as session:
        await session.execute(text("ANALYZE items"))
        repo = ItemRepository(session)
        before = await repo.estimate(ranked(mine))
        assert before < 100
        async with database.sessionmaker() as writer, writer.begin():  # many more rows, and statistics that know them
            writer.add_all(Item(name=f"{tag}-more-{i}", rank=rank) for rank in (mine, other) for i in range(500))
        await session.execute(text("ANALYZE items"))
        assert await repo.estimate(ranked(mine)) == before  # the same statement and parameters: kept
        assert await repo.estimate(ranked(other)) >= 400  # other parameters: planned
        clock[0] += 5.1  # past ESTIMATE_SECONDS
        assert await repo.estimate(ranked(mine)) >= 400
        # The most recently read are kept, the oldest dropped past ESTIMATES_KEPT.
        monkeypatch.setattr("common.db.repository.ESTIMATES_KEPT", 2)
        for rank in (mine, other, mine + 1):
            await repo.estimate(ranked(rank))
        assert len(common_repository._ESTIMATES) == 2


async def test_flush_raises_the_repositorys_exception_for_a_named_constraint_and_other_violations_as_they_are(
        database):
    name = uuid.uuid4().hex
    rank = uuid.uuid4().int % 2**31
    async with database.sessionmaker() as session, session.begin():
        await TagRepository(session).add(Tag(name=name, rank=rank))
    async with database.sessionmaker() as session:
        with pytest.raises(TakenName):
            await TagRepository(session).add(Tag(name=name, rank=rank + 1))
    async with database.sessionmaker() as session:
        with pytest.raises(IntegrityError):  # a constraint the repository does not name
            await TagRepository(session).add(Tag(name=f"{name}-2", rank=rank))
    async with database.sessionmaker() as session:  # nothing of the refused rows was written
        assert await TagRepository(session).count(select(Tag).where(Tag.name.startswith(name))) == 1


@pytest.mark.parametrize(("exact_up_to", "deep_offset", "few_per_page"),
                         [(1000, 1000, 10), (1000, 1000, 1), (3, 1000, 10), (3, 2, 10)],
                         ids=["few-counted-first", "counted-plain", "estimated-plain", "deep-ids-first"])
async def test_every_way_of_reading_a_page_gives_the_same_pages_in_order(database, monkeypatch, exact_up_to,
                                                                         deep_offset, few_per_page):
    """`paginate` reads a few counted rows, a deep page and a plain page differently; the pages are the same."""
    monkeypatch.setattr("common.db.repository.EXACT_TOTAL_UP_TO", exact_up_to)
    monkeypatch.setattr("common.db.repository.DEEP_OFFSET", deep_offset)
    monkeypatch.setattr("common.db.repository.FEW_PER_PAGE", few_per_page)
    tag = uuid.uuid4().hex[:6]
    names = [f"{tag}-{i:02d}" for i in range(9)]
    await _add(database, *reversed(names))
    async with database.sessionmaker() as session:
        repo = ItemRepository(session)
        statement = select(Item).where(Item.name.startswith(tag))
        for order_by, expected in (([Item.name.asc()], names), ([Item.name], names),  # a bare attribute too
                                  ([func.lower(Item.name).desc()], names[::-1])):
            pages = [[item.name for item in (await repo.paginate(statement, limit=4, offset=offset,
                                                                 order_by=order_by))[0]] for offset in (0, 4, 8)]
            assert pages == [expected[:4], expected[4:8], expected[8:]]
