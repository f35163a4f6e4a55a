"""Pagination for lists: `limit` + `offset` (every list), `cursor` (lists ordered by their repository's sort keys,
see `Repository.paginate`), `total` and whether it was counted (`totalExact`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from common.errors import Unprocessable

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int
    offset: int
    cursor: str | None = None


class InvalidCursor(Unprocessable):
    """A `cursor` this list did not make for this sort (another list's or sort's, an old version, altered): a 422."""

    def __init__(self) -> None:
        super().__init__("cursor: not a cursor this list returned for this sort (pass the `nextCursor` of a page "
                         "listed with the same `sort`, or start again without `cursor`)")


class Total(int):
    """A list's total as a repository returns it, with what else it learned reading the page: whether the total
    was counted (`exact`; else PostgreSQL's estimate) and the cursor of the next page (None at the end, or when
    the list was not read by cursor). `Page.of` reads both; a plain int is an exact total."""

    exact: bool
    next_cursor: str | None

    def __new__(cls, value: int, *, exact: bool = True, next_cursor: str | None = None) -> Total:
        total = super().__new__(cls, value)
        total.exact, total.next_cursor = exact, next_cursor
        return total


Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _page_params(limit: Limit = 20, offset: Offset = 0) -> PageParams:
    return PageParams(limit=limit, offset=offset)


def _keyset_page_params(
    limit: Limit = 20, offset: Offset = 0,
    cursor: Annotated[str | None, Query(max_length=4096, description=(
        "The `nextCursor` of the previous page: the page after it, read from where it ended (rows added or removed "
        "meanwhile never make a page repeat or skip a row). Not with `offset`; same `sort` and filters."))] = None,
) -> PageParams:
    if cursor is not None and offset:
        raise Unprocessable("offset: not with cursor (a cursor already says where the page starts)")
    return PageParams(limit=limit, offset=offset, cursor=cursor or None)


PageParamsDep = Annotated[PageParams, Depends(_page_params)]
# A list that passes `page.cursor` on to `Repository.paginate` takes this instead (and answers `KeysetPage`).
KeysetPageParamsDep = Annotated[PageParams, Depends(_keyset_page_params)]


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)

    items: list[T]
    total: int
    limit: int
    offset: int
    total_exact: bool = Field(default=True, description=(
        "false: `total` is PostgreSQL's estimate, not a count (more than 1,000 rows match, or a search no index "
        "serves, e.g. `q` shorter than 3 characters)"))

    @classmethod
    def of(cls, rows: Iterable[Any], total: int, params: PageParams,
           read: Callable[[Any], T] | None = None) -> Page[T]:
        """A page of `rows` as the response's item type: `Page[ItemRead].of(rows, total, params)` validates
        each row with `ItemRead` (from its attributes) unless `read` converts it. `total` as `paginate` returned
        it (a `Total`) also gives `totalExact` and, for a `KeysetPage`, `nextCursor`."""
        convert = read or _item_type(cls).model_validate
        more: dict[str, Any] = {"total_exact": getattr(total, "exact", True)}
        if "next_cursor" in cls.model_fields:
            more["next_cursor"] = getattr(total, "next_cursor", None)
        return cls(items=[convert(row) for row in rows], total=int(total), limit=params.limit, offset=params.offset,
                   **more)


class KeysetPage(Page[T], Generic[T]):
    next_cursor: str | None = Field(default=None, description=(
        "Pass as `cursor` (with the same `sort` and filters) for the next page; null at the end of the list"))


def _item_type(page: type[Page[Any]]) -> Any:
    args = page.__pydantic_generic_metadata__["args"]
    if not args:
        raise TypeError("use Page[ItemType].of(...), or pass read=")
    return args[0]
