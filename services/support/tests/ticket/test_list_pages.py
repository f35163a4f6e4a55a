"""The ticket list by cursor, through the real API: every ticket once, in each sort's order, with ties on the sort
key; a cursor of another sort, altered, or with `offset` is a 422 problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.testing import pages

TICKETS = "/api/platform/support/tickets"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


@pytest.fixture
async def marker(admin_a, new_ticket, database_url) -> str:
    """11 tickets of one tenant sharing a marker, with ties: 2 creation and 3 update instants, 4 priorities."""
    mark = uuid.uuid4().hex[:10]
    ids = [(await new_ticket(admin_a, subject=f"Walk {mark} {i}", priority=list(RANK)[i % 4]))["id"]
           for i in range(11)]
    await pages.set_column(database_url, "tickets", "created_at", {i: T0 + timedelta(minutes=n % 2) for n, i in enumerate(ids)})
    await pages.set_column(database_url, "tickets", "updated_at", {i: T0 + timedelta(hours=n % 3) for n, i in enumerate(ids)})
    return mark


def _key(sort: str, ticket: dict):
    if sort == "priority":
        return RANK[ticket["priority"]], datetime.fromisoformat(ticket["createdAt"])
    if sort == "-priority":  # the most urgent first, the oldest first among them
        return -RANK[ticket["priority"]], datetime.fromisoformat(ticket["createdAt"])
    return datetime.fromisoformat(ticket[sort.lstrip("-")])


@pytest.mark.parametrize("sort", ["-createdAt", "createdAt", "-updatedAt", "updatedAt", "priority", "-priority"])
async def test_walking_by_cursor_lists_every_ticket_once_in_the_sorts_order(owner, admin_a, marker, sort):
    for client in (owner, admin_a):  # the owner's list and a tenant's own
        whole = await pages.assert_walks_give_the_whole_list(client, TICKETS, {"q": marker, "sort": sort})
        assert len(whole) == 11
        keys = [_key(sort, t) for t in whole]
        reverse = sort.startswith("-") and "priority" not in sort
        assert keys == sorted(keys, reverse=reverse) and len(set(keys)) < len(keys)  # ties included
        # Tickets equal on every key come by id, the way the sort goes (as every list's sorts): `-createdAt` newest
        # first and ids descending; `-priority` (most urgent first, then oldest first) and the rest ascending.
        keyed = [(key, uuid.UUID(t["id"])) for key, t in zip(keys, whole, strict=True)]
        assert keyed == sorted(keyed, reverse=reverse)
    await pages.assert_walks_give_the_whole_list(owner, TICKETS, {"q": marker, "sort": sort, "priority": ["LOW", "HIGH"]})
    # One priority (a range of the priority sorts' indexes): oldest first, the same rows as the unfiltered order's.
    one = await pages.assert_walks_give_the_whole_list(owner, TICKETS, {"q": marker, "sort": sort, "priority": "HIGH"})
    assert [t["id"] for t in one] == [t["id"] for t in whole if t["priority"] == "HIGH"]


async def test_a_foreign_altered_or_offset_mixed_cursor_is_a_422_problem(owner, marker):
    await pages.assert_foreign_or_altered_cursors_are_refused(owner, TICKETS, {"q": marker}, "priority", "-priority")
    await pages.assert_foreign_or_altered_cursors_are_refused(owner, TICKETS, {"q": marker}, "-createdAt", "updatedAt")


async def test_offset_pages_are_as_before(owner, marker):
    await pages.assert_offset_page_is_a_slice(owner, TICKETS, {"q": marker, "sort": "priority"})


@pytest.mark.parametrize("sort", ["-createdAt", "-priority"])
async def test_a_one_or_two_character_search_finds_word_starts_and_its_walk_finds_every_match_once(
        owner, admin_a, new_ticket, marker, sort):
    # 1-2 letters or digits: where a word of subject or description starts, served by the trigram indexes
    # (counted, full pages). No letter or digit: the `ILIKE '%q%'` no index serves: an estimated total, each cursor
    # page a bounded stretch of the order. Both walks list every match once, in order.
    made = [(await new_ticket(admin_a, subject=f"Ŧ {marker}", description="100% down"))["id"]]
    mine = [t["id"] for t in (await owner.get(TICKETS, params={"q": marker, "limit": 100})).json()["items"]]
    for q, including, check in ((marker[:2], mine, pages.assert_word_start_search_walk_finds_every_match),
                                ("ŧ", made, pages.assert_word_start_search_walk_finds_every_match),
                                ("10", made, pages.assert_word_start_search_walk_finds_every_match),
                                ("%", made, pages.assert_short_search_walk_finds_every_match)):
        walked = await check(owner, TICKETS, {"q": q, "sort": sort}, fields=["subject", "description"],
                             including=including)
        keys = [_key(sort, t) for t in walked]
        assert keys == sorted(keys, reverse=sort == "-createdAt")
