"""One repository base (STYLE habit 13, after Polar's `kit/repository/base.py`).

A service's repository names its model and adds only the queries that are its own:

    class TenantRepository(Repository[Tenant]):
        model = Tenant

        async def by_name(self, name: str) -> Tenant | None: ...

Get, get-for-update, add, flush, a page with its total, escaped LIKE search and sorting are here once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

M = TypeVar("M")


def contains(columns: Iterable[InstrumentedAttribute[Any] | ColumnElement[Any]], q: str) -> ColumnElement[bool]:
    """Case-insensitive substring match of `q` on any of `columns`, LIKE's `%`, `_` and `\\` taken
    literally (a search for "50%" finds "50%", not everything starting with "50")."""
    return or_(*(column.icontains(q, autoescape=True) for column in columns))


class Repository(Generic[M]):
    model: ClassVar[type[Any]]

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
        await self.session.flush()

    async def count(self, statement: Select[Any]) -> int:
        """Rows `statement` would return (its ORDER BY, LIMIT and eager loads do not matter)."""
        counted = select(func.count()).select_from(statement.order_by(None).subquery())
        return (await self.session.execute(counted)).scalar_one()

    async def paginate(self, statement: Select[tuple[M]], *, limit: int, offset: int,
                       order_by: Sequence[ColumnElement[Any]] = ()) -> tuple[list[M], int]:
        """One page of `statement` (ordered by `order_by`, then `id` so pages never overlap) and the total."""
        total = await self.count(statement)
        if total == 0 or offset >= total:
            return [], total
        page = statement.order_by(*order_by, self.model.id).limit(limit).offset(offset)
        return await self.all(page), total
