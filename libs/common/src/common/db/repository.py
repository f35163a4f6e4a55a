"""One repository base (STYLE habit 13, after Polar's `kit/repository/base.py`).

A service's repository names its model and adds only the queries that are its own:

    class TenantRepository(Repository[Tenant]):
        model = Tenant

        async def by_name(self, name: str) -> Tenant | None: ...

Get, get-for-update, add, flush (constraint violations named in `violations` raised as the service's
own exceptions), a page with its total, escaped LIKE search and sorting are here once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Column, ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.util import ClauseAdapter

M = TypeVar("M")


def contains(columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str) -> ColumnElement[bool]:
    """Case-insensitive substring match of `q` on any of `columns`, LIKE's `%`, `_` and `\\` taken
    literally (a search for "50%" finds "50%", not everything starting with "50")."""
    return or_(*(column.icontains(q, autoescape=True) for column in columns))


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

    async def paginate(self, statement: Select[tuple[M]], *, limit: int, offset: int,
                       order_by: Sequence[ColumnElement[Any]] = ()) -> tuple[list[M], int]:
        """One page of `statement` (ordered by `order_by`, then `id` so pages never overlap) and its total
        (`page_total`: exact up to EXACT_TOTAL_UP_TO rows, PostgreSQL's estimate above).

        `id` follows the direction of the first sort key, so one index on `(key, id)` serves both
        directions (read backwards for the descending one)."""
        total, exact = await self.page_total(statement)
        if total == 0 or (exact and offset >= total):
            return [], total
        # A bare ORM attribute (`Model.created_at`) is no SQL clause yet: made one, its column is found below
        # (else the ids query would order by a table it does not select from: a cross join, wrong pages).
        order_by = [c.__clause_element__() if hasattr(c, "__clause_element__") else c for c in order_by]
        tiebreak = self.model.id.desc() if order_by and _descending(order_by[0]) else self.model.id.asc()
        few = exact and total <= FEW_PER_PAGE * limit
        if few or offset >= DEEP_OFFSET:
            # The page's ids first (reading only the columns the order needs), then its rows by id:
            # - few rows match (counted): find them first (MATERIALIZED: planned for the filter alone, e.g. a
            #   trigram index) and order those. Left to itself the planner may walk an index in the list's order
            #   hoping to meet matches soon: through the whole table when they are rare (100x slower);
            # - a deep page: the `offset` rows skipped are read as ids only (an index-only scan of the order's
            #   index), not as whole rows (3-10x cheaper at offset 8,000).
            keys = {c.key: c for clause in (*order_by, tiebreak) for c in visitors.iterate(clause)
                    if isinstance(c, Column)}
            matching = statement.with_only_columns(*keys.values()).order_by(None).cte("matching")
            if few:
                matching = matching.prefix_with("MATERIALIZED")
            adapt = ClauseAdapter(matching).traverse
            ids = (select(matching.c.id).order_by(*(adapt(c) for c in order_by), adapt(tiebreak))
                   .limit(limit).offset(offset))
            return await self.all(statement.where(self.model.id.in_(ids)).order_by(*order_by, tiebreak)), total
        page = statement.order_by(*order_by, tiebreak).limit(limit).offset(offset)
        return await self.all(page), total

    async def page_total(self, statement: Select[Any]) -> tuple[int, bool]:
        """(rows `statement` returns, whether that is exact). Counting is O(rows), so a list's total is
        counted only up to EXACT_TOTAL_UP_TO; past it, the planner's estimate of the same statement (one
        EXPLAIN, O(1) whatever the table's size) -- never below what was counted."""
        unordered = statement.order_by(None)
        capped = select(func.count()).select_from(unordered.limit(EXACT_TOTAL_UP_TO + 1).subquery())
        counted = (await self.session.execute(capped)).scalar_one()
        if counted <= EXACT_TOTAL_UP_TO:
            return counted, True
        return max(counted, await self.estimate(unordered)), False

    async def estimate(self, statement: Select[Any]) -> int:
        """The planner's row estimate of `statement` (EXPLAIN, nothing executed)."""
        conn = await self.session.connection()
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        processors = compiled._bind_processors
        values = compiled.construct_params()
        params = tuple(processors[name](values[name]) if name in processors else values[name]
                       for name in compiled.positiontup or ())
        result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)
        plan = result.scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])


# Beyond this many rows a list's `total` is PostgreSQL's estimate: counting 10,000 rows exactly cost more
# database CPU than the page itself (ms instead of tenths of a ms), and it grows with the table.
EXACT_TOTAL_UP_TO = 1000
# From this offset on, a page's skipped rows are read as ids only (see `paginate`).
DEEP_OFFSET = 100
# A counted total up to this many pages' worth is found first, then ordered (see `paginate`); above it, walking the
# order's index meets a page of matches soon enough.
FEW_PER_PAGE = 10


def _descending(clause: ColumnElement[Any]) -> bool:
    return isinstance(clause, UnaryExpression) and clause.modifier is operators.desc_op
