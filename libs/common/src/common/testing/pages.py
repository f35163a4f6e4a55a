"""Checks for a list that takes `cursor` (`KeysetPageParamsDep`), through its real API: walking it by cursor gives
the offset page's rows once each, in order; a cursor of another sort, an altered one or one with `offset` is a 422.
And `set_column`, to give rows ties on a sort key that the API would not make."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import httpx

from common.testing.checks import assert_problem


async def set_column(database_url: str, table: str, column: str, values: Mapping[str, Any]) -> None:
    """`column` of the rows of `table` by id (`{id: value}`), straight in the database."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.executemany(f'UPDATE "{table}" SET "{column}" = $2 WHERE id = $1::uuid',  # test-only names
                               [(str(i), v) for i, v in values.items()])
    finally:
        await conn.close()


async def walk(client: httpx.AsyncClient, url: str, params: Mapping[str, Any], *, limit: int,
               full: bool = True) -> list[dict[str, Any]]:
    """Every item of the list, page after page by `nextCursor` (each page but the last one full, unless `full` is
    False: a search no index serves reads a bounded stretch per page, which may hold fewer matches)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        resp = await client.get(url, params={**params, "limit": limit} | ({"cursor": cursor} if cursor else {}))
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit or not full, page


async def assert_short_search_walk_finds_every_match(client: httpx.AsyncClient, url: str, params: Mapping[str, Any],
                                                     *, fields: Sequence[str],
                                                     including: Iterable[str]) -> list[dict[str, Any]]:
    """`params["q"]` no trigram index serves (no letter or digit, e.g. `%`): the first page's total is an estimate
    (`totalExact` false, never a count of every row); walked by cursor (pages may be short, even empty, before
    the end), every row comes once, each holding `q` case-insensitively in one of `fields` (the `ILIKE '%q%'` the
    list promises), and every id of `including` is among them. Returns the rows walked, in order."""
    q = str(params["q"]).lower()
    first = (await client.get(url, params={**params, "limit": 7})).json()
    assert first["totalExact"] is False and first["total"] >= 0, first
    walked = await walk(client, url, params, limit=7, full=False)
    ids = [row["id"] for row in walked]
    assert len(ids) == len(set(ids)) and set(including) <= set(ids)
    assert all(any(q in (row.get(f) or "").lower() for f in fields) for row in walked)
    return walked


async def assert_word_start_search_walk_finds_every_match(client: httpx.AsyncClient, url: str,
                                                         params: Mapping[str, Any], *, fields: Sequence[str],
                                                         including: Iterable[str]) -> list[dict[str, Any]]:
    """`params["q"]` of 1-2 letters or digits: found where a word starts (at the start, or after a space or
    punctuation), served by the trigram index: the first page's total is counted (`totalExact` true, up to 1,000);
    walked by cursor every page is full but the last, every row comes once, each with a word of one of `fields`
    starting with `q` case-insensitively, and every id of `including` is among them. Returns the rows walked."""
    at_word_start = re.compile(r"(^|[\s!-/:-@\[-`{-~])" + re.escape(str(params["q"])), re.IGNORECASE)
    first = (await client.get(url, params={**params, "limit": 7})).json()
    walked = await walk(client, url, params, limit=7)
    assert first["totalExact"] is True and first["total"] == len(walked), first
    ids = [row["id"] for row in walked]
    assert len(ids) == len(set(ids)) and set(including) <= set(ids)
    assert all(any(at_word_start.search(row.get(f) or "") for f in fields) for row in walked), walked
    return walked


async def assert_walks_give_the_whole_list(client: httpx.AsyncClient, url: str,
                                           params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The list in one offset page (at most 100 rows) equals its walk by cursor at page sizes 1, 2 and 5: every
    row once, in the same order. Returns the list."""
    resp = await client.get(url, params={**params, "limit": 100})
    assert resp.status_code == 200, resp.text
    whole = resp.json()
    assert whole["nextCursor"] is None and whole["total"] == len(whole["items"]) > 0, whole
    ids = [item["id"] for item in whole["items"]]
    assert len(set(ids)) == len(ids)
    for limit in (1, 2, 5):
        assert [item["id"] for item in await walk(client, url, params, limit=limit)] == ids, limit
    return list(whole["items"])


async def assert_offset_page_is_a_slice(client: httpx.AsyncClient, url: str, params: Mapping[str, Any]) -> None:
    """`offset` pages as before a cursor existed: rows 3–5 of the whole list, its total, the offset echoed."""
    whole = (await client.get(url, params={**params, "limit": 100})).json()
    page = (await client.get(url, params={**params, "limit": 3, "offset": 3})).json()
    assert [item["id"] for item in page["items"]] == [item["id"] for item in whole["items"][3:6]]
    assert page["total"] == whole["total"] and page["offset"] == 3 and page["limit"] == 3


async def assert_foreign_or_altered_cursors_are_refused(client: httpx.AsyncClient, url: str,
                                                        params: Mapping[str, Any], sort: str | None = None,
                                                        other: str | None = None) -> None:
    """A cursor of `sort` passed with `other` (and the reverse), altered, or with `offset`, is a 422 problem; with
    its own sort it is a page. `sort=None`: a list with one order (no `sort` parameter)."""
    made: dict[str | None, str] = {}
    for s in (sort, other) if other else (sort,):
        resp = await client.get(url, params={**params, "limit": 1} | ({"sort": s} if s else {}))
        assert resp.status_code == 200, resp.text
        made[s] = resp.json()["nextCursor"]
        assert made[s], "the list needs two rows"
    mixed = [{"sort": other, "cursor": made[sort]}, {"sort": sort, "cursor": made[other]}] if other else []
    for bad in (*mixed, {"sort": sort, "cursor": made[sort][:-2] + "xy"}, {"sort": sort, "cursor": "bm90IGEgY3Vyc29y"},
                {"sort": sort, "cursor": "%%%%"}, {"sort": sort, "cursor": made[sort], "offset": 1},
                {"sort": sort, "cursor": "x" * 4097}):
        assert_problem(await client.get(url, params={**params, **{k: v for k, v in bad.items() if v}}), 422)
    own = {"sort": sort, "cursor": made[sort]}
    assert (await client.get(url, params={**params, **{k: v for k, v in own.items() if v}})).status_code == 200
