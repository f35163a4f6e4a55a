"""One repository base (STYLE habit 13, after Polar's `kit/repository/base.py`).

A service's repository names its model and adds only the queries that are its own:

    class TenantRepository(Repository[Tenant]):
        model = Tenant

        async def by_name(self, name: str) -> Tenant | None: ...

Get, get-for-update, add, flush (constraint violations named in `violations` raised as the service's
own exceptions), a page with its total, escaped LIKE search and sorting are here once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    case,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import operators, sqltypes, visitors
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.util import ClauseAdapter

from common.api.pagination import InvalidCursor, Total

M = TypeVar("M")


def contains(columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str) -> ColumnElement[bool]:
    """Case-insensitive substring match of `q` on any of `columns`, LIKE's `%`, `_` and `\\` taken
    literally (a search for "50%" finds "50%", not everything starting with "50")."""
    return or_(*(column.icontains(q, autoescape=True) for column in columns))


def trigram_searchable(q: str) -> bool:
    """Whether a trigram index (pg_trgm) can serve `contains(..., q)` (`ILIKE '%q%'`), by pg_trgm's own rule: it
    looks up the trigrams of each word of `q` (a run of letters and digits), padded with two blanks before and
    one after where a non-word character, not the pattern's `%`, borders it. A word shorter than 3 characters
    between the `%`s has none (`7f`, `ab`): the index cannot narrow the search, every row would be read."""
    for word in re.finditer(r"[^\W_]+", q):
        padded = len(word.group()) + (2 if word.start() > 0 else 0) + (1 if word.end() < len(q) else 0)
        if padded >= 3:
            return True
    return False


# Put between the columns of one searched expression (`SEARCH_SEPARATOR.join`, e.g. leads' name, email and
# company under one trigram index): no word runs across it, and each column's start is a word's start.
SEARCH_SEPARATOR = "\x1f"
# What a word starts after, besides the text's start: white space, ASCII punctuation, SEARCH_SEPARATOR. Listed
# one by one on purpose: pg_trgm reads a regular expression's trigrams only through small character classes
# (`[^[:alnum:]]` has too many characters: it gave none, every row was read).
_WORD_BREAKS = " \t\n\r" + string.punctuation + SEARCH_SEPARATOR
_AT_WORD_START = "(^|[" + "".join("\\" + c for c in _WORD_BREAKS) + "])"
_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}")


def starts_word(columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str) -> ColumnElement[bool]:
    """Case-insensitive match of `q` where a word starts in any of `columns`: at the start or right after white
    space or punctuation (`ac` finds "Acme Corp", "The Acme" and "x@acme.com", not "Lilac"). A regular
    expression pg_trgm serves: the word of `q` is known to start there, so it has the trigrams `"  a"`, `" ac"`
    even at 1-2 characters."""
    pattern = _AT_WORD_START + "".join("\\" + c if c in _REGEX_SPECIAL else c for c in q)
    return or_(*(column.regexp_match(pattern, flags="i") for column in columns))


def matching(columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str) -> tuple[ColumnElement[bool], bool]:
    """What a list's `q` finds in `columns` (each with a trigram index), and whether the index serves it:
    - a substring (`contains`) when pg_trgm can look it up (`trigram_searchable`: 3+ letters or digits in a row,
      or fewer with punctuation before them, e.g. `@g`);
    - else, 1-2 characters with a letter or digit (`ac`, `7f`, `a-`): where a word starts (`starts_word`), which a
      user typing 1-2 characters means, and which the index serves;
    - else a substring no index serves (False): no letter or digit (`%`, `@`), or 3+ characters with no
      trigram (`0%_`, `a--`: the rule stays "3 or more characters, anywhere")."""
    columns = list(columns)
    if trigram_searchable(q):
        return contains(columns, q), True
    if len(q) <= 2 and re.search(r"[^\W_]", q):
        return starts_word(columns, q), True
    return contains(columns, q), False


# The rule `matching` keeps, for the OpenAPI description of each list's `q` (after what it searches).
SEARCH_RULE = ("case-insensitive: 3 or more characters anywhere (`acm` finds \"Acme\" and \"Lilacme\"); 1-2 letters "
               "or digits where a word starts, at the start or after a space or punctuation (`ac` finds \"Acme "
               "Corp\", \"The Acme\" and \"x@acme.com\", not \"Lilac\"). A search of punctuation the trigram index "
               "cannot serve (`%`, `0%_`) has an estimated total")


def search(statement: Select[Any], columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]],
           q: str | None) -> tuple[Select[Any], ColumnElement[bool] | None]:
    """`statement` searched for `q` (`matching` on `columns`, each with a trigram index), for `paginate`: a `q` the
    indexes serve is in the statement; one they cannot (e.g. no letter or digit) is returned apart, to pass as
    `paginate(..., unindexed=)` (an estimated total, bounded cursor pages) instead of counting every row's match.
    A list calls both through `Repository.search_page`."""
    if not q:
        return statement, None
    found, indexed = matching(columns, q)
    if indexed:
        return statement.where(found), None
    return statement, found


class Repository(Generic[M]):
    model: ClassVar[type[Any]]
    # Constraint name -> the exception its violation means for this model, e.g. a taken unique email:
    # `{"uq_users_email_lower": DuplicateEmail}`. `flush()` raises it instead of the IntegrityError, and the
    # service answers it (a 409). No savepoint: the request's transaction is rolled back anyway (and
    # `begin_nested()` flushes before its SAVEPOINT, so one never caught a flush's violation here).
    violations: ClassVar[Mapping[str, Callable[[], Exception]]] = {}

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def select(self) -> Select[tuple[M]]:
        """The base statement every read starts from; override to add joins or eager loads."""
        return select(self.model)

    async def get(self, id: uuid.UUID, *, for_update: bool = False) -> M | None:
        stmt = self.select().where(self.model.id == id)
        if for_update:
            stmt = stmt.with_for_update(of=self.model)
        return (await self.session.execute(stmt)).unique().scalar_one_or_none()

    async def get_one(self, statement: Select[tuple[M]]) -> M | None:
        return (await self.session.execute(statement)).unique().scalar_one_or_none()

    async def all(self, statement: Select[tuple[M]]) -> list[M]:
        return list((await self.session.execute(statement)).unique().scalars())

    async def add(self, obj: M, *, flush: bool = True) -> M:
        self.session.add(obj)
        if flush:
            await self.flush()
        return obj

    async def flush(self) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            message = str(exc.orig)
            for constraint, meaning in self.violations.items():
                if constraint in message:
                    raise meaning() from exc
            raise

    async def count(self, statement: Select[Any]) -> int:
        """Rows `statement` would return (its ORDER BY, LIMIT and eager loads do not matter)."""
        counted = select(func.count()).select_from(statement.order_by(None).subquery())
        return (await self.session.execute(counted)).scalar_one()

    async def search_page(self, statement: Select[tuple[M]],
                          columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str | None, *,
                          limit: int, offset: int, order_by: Sequence[ColumnElement[Any]] = (),
                          cursor: str | None = None, keyset: bool = False) -> tuple[list[M], Total]:
        """`paginate` of a list with a `q` searched in `columns` (`search`): `statement` holds the list's other
        filters, and is what the few matches of an indexed search are read again through (`searched`)."""
        found, unindexed = search(statement, columns, q)
        return await self.paginate(found, limit=limit, offset=offset, order_by=order_by, cursor=cursor,
                                   keyset=keyset, unindexed=unindexed, searched=statement if q else None)

    async def paginate(self, statement: Select[tuple[M]], *, limit: int, offset: int,
                       order_by: Sequence[ColumnElement[Any]] = (), cursor: str | None = None,
                       keyset: bool = False, unindexed: ColumnElement[bool] | None = None,
                       searched: Select[tuple[M]] | None = None) -> tuple[list[M], Total]:
        """One page of `statement` (ordered by `order_by`, then `id` so pages never overlap) and its total
        (`page_total`: exact up to EXACT_TOTAL_UP_TO rows, PostgreSQL's estimate above; `Total.exact` says which).

        `id` follows the direction of the first sort key, so one index on `(key, id)` serves both
        directions (read backwards for the descending one).

        Keyset (`cursor`, or `keyset=True` for a list that takes one): the total also carries the next page's
        cursor (the last row's sort values and id, see `Keyset`; None at the end), and a `cursor` starts the page
        right after the row it was made from: `WHERE (key, id) > (…)` on the order's index, a range scan of the
        page's size however deep the page is. Not with `offset` (the cursor is the position).

        `unindexed`: a filter no index serves (e.g. a `q` with no letter or digit, see `matching`). Counting its
        matches would read every row: the total is the planner's estimate (not exact). A page by cursor reads at
        most SCAN_ROWS rows of the order: when they hold fewer than `limit` matches the page is short (even empty)
        and its cursor goes on after the last row read. The first page and offset pages read as far as their
        matches are (a short first page would make an offset client skip the matches after it).

        `searched`: `statement` holds an indexed search (`search`), whose matches are usually few, and this is the
        list's statement before it (its filters, its eager loads). The count then also returns the ids it found when
        they are at most FEW_PER_PAGE pages' worth (`_counted`), and the page is read from those by primary key
        through `searched` (the list's other filters checked again on those few rows, as they are then: a row
        soft-deleted in between is not shown): the search's index scan and the recheck of every candidate run once
        instead of twice.
        Measured at 10,000 rows (PostgreSQL backend CPU per page, medians of 3 alternated rounds, loaded machine):
        tenants q=7f (49 matches) 1.10 -> 0.73 ms, q=a7f3 (1) 0.87 -> 0.47, leads q=7f (134) 1.40 -> 0.90; no
        match (0.2-0.27) and more than 1,000 matches (q=s, 1.47 -> 1.50) as before: the same count, with at most 200
        ids beside it. (Ordering the matches in the count statement instead cost 0.1-0.3 ms more for those two.)"""
        # A bare ORM attribute (`Model.created_at`) is no SQL clause yet: made one, its column is found below
        # (else the ids query would order by a table it does not select from: a cross join, wrong pages).
        order_by = [c.__clause_element__() if hasattr(c, "__clause_element__") else c for c in order_by]
        tiebreak = self.model.id.desc() if order_by and _descending(order_by[0]) else self.model.id.asc()
        pages = Keyset([*order_by, tiebreak]) if keyset or cursor else None
        found: list[Any] | None = None
        if searched is not None and unindexed is None:
            total, exact, found = await self._counted(statement, ids_up_to=FEW_PER_PAGE * limit)
            if found is not None:
                # The few matches the count found, read again by id (as they are now), ordered and paged by
                # the plain path: no second search.
                statement = searched.where(self.model.id == any_(
                    bindparam("found_ids", found, type_=postgresql.ARRAY(self.model.id.type))))
        elif unindexed is None:
            total, exact = await self.page_total(statement)  # the list's, wherever the page starts
        else:
            total, exact = await self.estimate(self._ids(statement.where(unindexed))), False
        if pages is not None and cursor:
            statement = statement.where(pages.after(cursor))
        if unindexed is not None:
            if pages is not None and cursor:
                return await self._scan(statement, unindexed, pages, limit=limit, total=total)
            statement = statement.where(unindexed)
        if total == 0 or (exact and offset >= total):
            return [], Total(total, exact=exact)
        few = found is None and (exact or unindexed is not None) and total <= FEW_PER_PAGE * limit
        fetch = limit + 1 if pages is not None else limit  # one more: is there a next page?
        if few or (offset >= DEEP_OFFSET and found is None):
            # The page's ids first (reading only the columns the order needs), then its rows by id:
            # - few rows match (counted, or estimated for a filter no index serves): find them first
            #   (MATERIALIZED: planned for the filter alone, e.g. a trigram index) and order those. Left to itself
            #   the planner may walk an index in the list's order hoping to meet matches soon: through the whole
            #   table when they are rare (100x slower);
            # - a deep page: the `offset` rows skipped are read as ids only (an index-only scan of the order's
            #   index), not as whole rows (3-10x cheaper at offset 8,000).
            keys = {c.key: c for clause in (*order_by, tiebreak) for c in visitors.iterate(clause)
                    if isinstance(c, Column)}
            matches = statement.with_only_columns(*keys.values()).order_by(None).cte("matching")
            if few:
                matches = matches.prefix_with("MATERIALIZED")
            adapt = ClauseAdapter(matches).traverse
            ids = (select(matches.c.id).order_by(*(adapt(c) for c in order_by), adapt(tiebreak))
                   .limit(fetch).offset(offset))
            page = statement.where(self.model.id.in_(ids)).order_by(*order_by, tiebreak)
        else:
            page = statement.order_by(*order_by, tiebreak).limit(fetch).offset(offset)
        if pages is None:
            return await self.all(page), Total(total, exact=exact)
        rows, last = await self._keyed(page, pages, limit)
        return rows, Total(total, exact=exact, next_cursor=pages.cursor(last) if last else None)

    async def _keyed(self, page: Select[Any], pages: Keyset, limit: int) -> tuple[list[M], Sequence[Any] | None]:
        """The first `limit` rows of `page` (read with one more), and the sort values of the last when more follow."""
        rows = (await self.session.execute(page.add_columns(*pages.values))).unique().all()
        more = len(rows) > limit
        rows = rows[:limit]
        return [row[0] for row in rows], tuple(rows[-1])[1:] if more else None

    async def _scan(self, statement: Select[tuple[M]], unindexed: ColumnElement[bool], pages: Keyset, *,
                    limit: int, total: int) -> tuple[list[M], Total]:
        """A keyset page of `statement` filtered by `unindexed`, from at most SCAN_ROWS rows of the order: the
        SCAN_ROWS-th row's sort values first (an index-only scan), then the matches up to it (a bounded range)."""
        bound = (await self.session.execute(statement.with_only_columns(*pages.values).order_by(*pages.order_by)
                                            .offset(SCAN_ROWS - 1).limit(1))).first()
        page = statement.where(unindexed)
        if bound is not None:
            page = page.where(pages.through(tuple(bound)))
        rows, last = await self._keyed(page.order_by(*pages.order_by).limit(limit + 1), pages, limit)
        if last is None and bound is not None:
            last = tuple(bound)  # fewer matches than a page among the rows read: go on after the last one read
        return rows, Total(total, exact=False, next_cursor=pages.cursor(last) if last else None)

    async def page_total(self, statement: Select[Any]) -> tuple[int, bool]:
        """(rows `statement` returns, whether that is exact). Counting is O(rows), so a list's total is
        counted only up to EXACT_TOTAL_UP_TO; past it, the planner's estimate of the same statement (one
        EXPLAIN, O(1) whatever the table's size) -- never below what was counted."""
        total, exact, _ = await self._counted(statement)
        return total, exact

    async def _counted(self, statement: Select[Any], *, ids_up_to: int = 0) -> tuple[int, bool, list[Any] | None]:
        """`page_total`, and the ids it counted when they are at most `ids_up_to`, from the same scan (one
        statement; the `searched` page of `paginate`); else None."""
        unordered = self._ids(statement)
        capped = unordered.limit(EXACT_TOTAL_UP_TO + 1).subquery()
        count = func.count()
        ids = case((count <= ids_up_to, func.array_agg(capped.c.id))) if ids_up_to else null()
        counted, found = (await self.session.execute(select(count, ids).select_from(capped))).one()
        if counted <= EXACT_TOTAL_UP_TO:
            return counted, True, found
        return max(counted, await self.estimate(unordered)), False, found

    def _ids(self, statement: Select[Any]) -> Select[Any]:
        """`statement`'s ids, unordered: what a count or an estimate needs (no eager-load join to plan, and an
        index holding the id may answer alone)."""
        return statement.order_by(None).with_only_columns(self.model.id, maintain_column_froms=True)

    async def estimate(self, statement: Select[Any]) -> int:
        """The planner's row estimate of `statement` (EXPLAIN, nothing executed), kept ESTIMATE_SECONDS per
        process for the same statement and parameters: an EXPLAIN is a round trip and a planning of its own (~30 %
        of a page's database CPU past 1,000 rows, bench (h)), and the planner's statistics it reads change far
        more slowly (ANALYZE)."""
        conn = await self.session.connection()
        # Looked up by SQLAlchemy's own cache key of the statement and its parameters' values (~10 us): compiling it
        # costs 0.1-0.2 ms of this process's CPU, more than a kept estimate saves it.
        shape = statement._generate_cache_key()  # None: a statement SQLAlchemy does not cache, nor do we
        key = shape and (str(conn.engine.url), shape.key, repr([b.effective_value for b in shape.bindparams]))
        now = time.monotonic()
        kept = _ESTIMATES.get(key) if key else None
        if kept is not None and kept[0] > now:
            return kept[1]
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        processors = compiled._bind_processors
        values = compiled.construct_params()
        params = tuple(processors[name](values[name]) if name in processors else values[name]
                       for name in compiled.positiontup or ())
        result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)
        plan = result.scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        rows = int(plan[0]["Plan"]["Plan Rows"])
        if not key:
            return rows
        _ESTIMATES.pop(key, None)
        _ESTIMATES[key] = (now + ESTIMATE_SECONDS, rows)
        while len(_ESTIMATES) > ESTIMATES_KEPT:
            del _ESTIMATES[next(iter(_ESTIMATES))]  # the oldest first (insertion order)
        return rows


# Beyond this many rows a list's `total` is PostgreSQL's estimate: counting 10,000 rows exactly cost more
# database CPU than the page itself (ms instead of tenths of a ms), and it grows with the table.
EXACT_TOTAL_UP_TO = 1000
# How long the planner's estimate of one statement with the same parameters is reused, and how many are kept (the
# oldest dropped first). A list's total past EXACT_TOTAL_UP_TO is an estimate anyway, never below what was counted.
ESTIMATE_SECONDS = 5.0
ESTIMATES_KEPT = 1024
_ESTIMATES: dict[tuple[str, Any, str], tuple[float, int]] = {}
# From this offset on, a page's skipped rows are read as ids only (see `paginate`).
DEEP_OFFSET = 100
# A keyset page filtered by what no index serves reads at most this many rows of the order (see `paginate`).
SCAN_ROWS = 500
# A counted total up to this many pages' worth is found first, then ordered (see `paginate`); above it, walking the
# order's index meets a page of matches soon enough.
FEW_PER_PAGE = 10


def _descending(clause: ColumnElement[Any]) -> bool:
    return isinstance(clause, UnaryExpression) and clause.modifier is operators.desc_op


class Keyset:
    """Cursors of one list order (its sort keys, the id last): made from a page's last row, read back as "the rows
    after it in this order".

    A cursor is base64url (no padding) of JSON `[version, sort, values]`: `sort` is a digest of the order's SQL
    (a cursor made for another sort, or another list, is refused), `values` each typed (`["t", iso datetime]`,
    `["u", uuid]`, …) and checked against its key's type, so an altered cursor is a 422 (`InvalidCursor`), never
    a database error. Not signed: a hand-made cursor only starts a page elsewhere in a list the caller may read."""

    VERSION = 1

    def __init__(self, order_by: Sequence[ColumnElement[Any]]) -> None:
        self.order_by = list(order_by)
        self.keys = [(c.element if isinstance(c, UnaryExpression) and c.modifier in _DIRECTIONS else c,
                      _descending(c)) for c in order_by]
        self.values = [key.label(f"_keyset_{i}") for i, (key, _) in enumerate(self.keys)]
        sql = ", ".join(str(c.compile(dialect=postgresql.dialect())) for c in order_by)
        self.sort = hashlib.sha256(sql.encode()).hexdigest()[:16]

    def cursor(self, values: Sequence[Any]) -> str:
        # Not ASCII-escaped: a name of non-Latin letters would otherwise grow six-fold past the parameter's limit.
        body = json.dumps([self.VERSION, self.sort, [_typed(v) for v in values]], separators=(",", ":"),
                          ensure_ascii=False)
        return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    def after(self, cursor: str) -> ColumnElement[bool]:
        """Rows after the cursor's row in this order (PostgreSQL's: NULLs last ascending, first descending)."""
        return self._after(self._read(cursor))

    def through(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows up to the one with these sort values, itself included."""
        if self._one_row_comparison(values):
            row, at = self._rows(values)
            return row >= at if self.keys[0][1] else row <= at
        return not_(self._after(values))

    def _one_row_comparison(self, values: Sequence[Any]) -> bool:
        same_way = len({desc for _, desc in self.keys}) == 1
        return same_way and None not in values and not any(_nullable(key) for key, _ in self.keys)

    def _rows(self, values: Sequence[Any]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return (tuple_(*(k for k, _ in self.keys)),
                tuple_(*(_bind(k, v) for (k, _), v in zip(self.keys, values, strict=True))))

    def _after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        if self._one_row_comparison(values):
            # One row comparison: an index condition on `(key, id)` (a range scan from the cursor on).
            row, at = self._rows(values)
            return row < at if self.keys[0][1] else row > at
        after: ColumnElement[bool] | None = None
        for (key, desc), value in reversed(list(zip(self.keys, values, strict=True))):
            beyond = _beyond(key, desc, None if value is None else _bind(key, value))
            same = key.is_(None) if value is None else key.is_not_distinct_from(_bind(key, value))
            after = beyond if after is None else or_(beyond, and_(same, after))
        assert after is not None
        return after

    def _read(self, cursor: str) -> list[Any]:
        try:
            version, sort, typed = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if version != self.VERSION or sort != self.sort or len(typed) != len(self.keys):
                raise ValueError
            values = [None if v is None else _fitting(key, _untyped(v))
                      for (key, _), v in zip(self.keys, typed, strict=True)]
        # JSONDecodeError, binascii.Error, UnicodeDecodeError are ValueErrors; Decimal's and datetime's overflows
        # are ArithmeticErrors.
        except (ValueError, TypeError, AttributeError, ArithmeticError):
            raise InvalidCursor from None
        return values


_DIRECTIONS = (operators.asc_op, operators.desc_op)
# Cursor values by type (bool before int, datetime before date: subclasses).
_TYPES: tuple[tuple[str, type, Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    ("b", bool, lambda v: v, bool),
    ("t", datetime, datetime.isoformat, datetime.fromisoformat),
    ("d", date, date.isoformat, date.fromisoformat),
    ("u", uuid.UUID, str, uuid.UUID),
    ("m", Decimal, str, Decimal),
    ("i", int, lambda v: v, int),
    ("f", float, lambda v: v, float),
    ("s", str, str, str),
)


def _typed(value: Any) -> Any:
    if value is None:
        return None
    for tag, kind, write, _ in _TYPES:
        if isinstance(value, kind):
            return [tag, write(value)]
    raise TypeError(f"a sort key of type {type(value).__name__} cannot be in a cursor")


def _untyped(value: Any) -> Any:
    if value is None:
        return None
    tag, raw = value
    for name, kind, _, read in _TYPES:
        if tag == name:
            if kind in (bool, int, float) and type(raw) not in {bool: (bool,), int: (int,), float: (int, float)}[kind]:
                raise ValueError  # JSON's own type: a float is no integer (int() would truncate it), true no 1
            return read(raw)
    raise ValueError


# Integer columns' ranges: a value outside its key's is refused before the driver refuses it.
_INTEGER_BITS = ((sqltypes.SmallInteger, 16), (sqltypes.BigInteger, 64), (sqltypes.Integer, 32))


def _fitting(key: ColumnElement[Any], value: Any) -> Any:
    """`value` as the driver takes it for `key`'s type (a timestamptz in UTC); ValueError/ArithmeticError when it
    could not be bound to that type (a float or string for an integer key, an integer out of its range, a naive
    time for a time zone aware key, a number too large for `numeric`): the cursor is refused, never the query."""
    kind = key.type
    if isinstance(value, str) and "\x00" in value:
        raise ValueError
    if isinstance(kind, sqltypes.Integer):
        bits = next(n for t, n in _INTEGER_BITS if isinstance(kind, t))
        if type(value) is not int or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError
        return value
    if isinstance(kind, sqltypes.Numeric) and kind.asdecimal:
        if type(value) is int:
            value = Decimal(value)
        if not isinstance(value, Decimal) or not value.is_finite() or abs(value.adjusted()) > _NUMERIC_DIGITS:
            raise ValueError
        return value
    if isinstance(kind, sqltypes.Float):
        if type(value) not in (int, float):
            raise ValueError
        return float(value)
    if isinstance(kind, sqltypes.DateTime):
        if not isinstance(value, datetime) or (value.tzinfo is None) == bool(kind.timezone):
            raise ValueError
        return value.astimezone(UTC) if kind.timezone else value  # OverflowError near year 1 / 9999
    try:
        python_type = kind.python_type
    except NotImplementedError:
        return value
    if python_type is date and isinstance(value, datetime) or not isinstance(value, python_type):
        raise ValueError
    return value


# Digits either side of the point a cursor's `numeric` may have (PostgreSQL's own bound is far above; no key needs more).
_NUMERIC_DIGITS = 1000


def _nullable(key: ColumnElement[Any]) -> bool:
    return any(c.nullable for c in visitors.iterate(key) if isinstance(c, Column))


def _bind(key: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    return literal(value, type_=key.type)


def _beyond(key: ColumnElement[Any], desc: bool, value: ColumnElement[Any] | None) -> ColumnElement[bool]:
    """`key` strictly after `value` (None: NULL) in PostgreSQL's order: NULLs after every value ascending. Never
    NULL itself (`through` is its negation)."""
    if value is None:
        return key.is_not(None) if desc else false()
    return and_(key.is_not(None), key < value) if desc else or_(key > value, key.is_(None))
