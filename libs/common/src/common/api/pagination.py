"""Offset pagination for lists (`limit`, `offset`, `total`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int
    offset: int


def _page_params(limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageParamsDep = Annotated[PageParams, Depends(_page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, rows: Iterable[Any], total: int, params: PageParams,
           read: Callable[[Any], T] | None = None) -> Page[T]:
        """A page of `rows` as the response's item type: `Page[ItemRead].of(rows, total, params)` validates
        each row with `ItemRead` (from its attributes) unless `read` converts it."""
        convert = read or _item_type(cls).model_validate
        return cls(items=[convert(row) for row in rows], total=total, limit=params.limit, offset=params.offset)


def _item_type(page: type[Page[Any]]) -> Any:
    args = page.__pydantic_generic_metadata__["args"]
    if not args:
        raise TypeError("use Page[ItemType].of(...), or pass read=")
    return args[0]
