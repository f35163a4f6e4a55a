"""The subscriber endpoint list by cursor, through the real API: every endpoint once, newest first, with ties on
the creation time; an altered cursor, or one with `offset`, is a 422 problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from common.testing import pages

API = "/api/platform/webhooks"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


async def test_walking_by_cursor_lists_every_endpoint_once_newest_first(owner, receiver, endpoints, database_url):
    mark = f"Walk{uuid.uuid4().hex[:10]}"
    ids = [(await endpoints(receiver.hook().url, ["lead.*"], description=f"{mark} {i}"))["id"] for i in range(9)]
    await pages.set_column(database_url, "webhook_endpoints", "created_at",
                     {i: T0 + timedelta(minutes=n % 3) for n, i in enumerate(ids)})
    whole = await pages.assert_walks_give_the_whole_list(owner, API, {"q": mark})
    assert {e["id"] for e in whole} == set(ids)
    created = [datetime.fromisoformat(e["createdAt"]) for e in whole]
    assert created == sorted(created, reverse=True) and len(set(created)) == 3  # ties included
    await pages.assert_walks_give_the_whole_list(owner, API, {"q": mark, "eventType": "lead.created", "status": "ACTIVE"})
    await pages.assert_foreign_or_altered_cursors_are_refused(owner, API, {"q": mark})
    await pages.assert_offset_page_is_a_slice(owner, API, {"q": mark})


async def test_a_one_or_two_character_search_finds_word_starts_and_its_walk_finds_every_match_once(owner, receiver,
                                                                                                   endpoints):
    # 1-2 letters or digits: where a word of url or description starts, served by the trigram indexes (counted,
    # full pages). No letter or digit: the `ILIKE '%q%'` no index serves (`_` escaped): an estimated total, each
    # cursor page a bounded stretch. Both walks list every match once, newest first.
    mark = uuid.uuid4().hex[:8]
    ids = [(await endpoints(receiver.hook().url, ["lead.*"], description=f"ǂ_{mark} {i}"))["id"] for i in range(3)]
    for q, check in (("ǂ", pages.assert_word_start_search_walk_finds_every_match),
                     ("ǂ_", pages.assert_word_start_search_walk_finds_every_match),
                     ("_", pages.assert_short_search_walk_finds_every_match)):
        walked = await check(owner, API, {"q": q}, fields=["url", "description"], including=ids)
        created = [datetime.fromisoformat(e["createdAt"]) for e in walked]
        assert created == sorted(created, reverse=True)
