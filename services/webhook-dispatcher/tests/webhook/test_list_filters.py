"""Listing endpoints: filters by status, by an event type the endpoint would receive, and by text.

Every query is scoped with `q` = a marker unique to the test, so endpoints of other tests never count.
"""

from __future__ import annotations

import uuid

from common.testing.checks import assert_problem

API = "/api/platform/webhooks"


async def test_the_list_filters_by_status_event_type_and_text(owner, receiver, endpoints):
    mark = f"LstF{uuid.uuid4().hex[:10]}"  # mixed case: the search must ignore it
    exact = await endpoints(receiver.hook().url, ["lead.stage.changed"], description=f"{mark} exact")
    prefix = await endpoints(receiver.hook().url, ["tenant.created", "lead.*"], description=f"CRM {mark} prefix")
    deeper = await endpoints(receiver.hook().url, ["lead.stage.*"], description=f"{mark} deeper")
    star = await endpoints(receiver.hook().url, ["*"], description=f"{mark} star")
    other = await endpoints(receiver.hook().url, ["lead.created", "ticket.*"], description=f"{mark} other")
    # The marker only in the URL (upper case), no description.
    by_url = await endpoints(f"{receiver.hook().url}/{mark.upper()}", ["tenant.created"])
    pending = await endpoints(receiver.hook(challenge="none").url, ["lead.stage.changed"], description=mark)
    paused = await endpoints(receiver.hook().url, ["ticket.created"], description=mark)
    assert (await owner.post(f"{API}/{paused['id']}/pause")).json()["status"] == "PAUSED"
    assert pending["status"] == "PENDING_VERIFICATION"
    assert {e["status"] for e in (exact, prefix, deeper, star, other, by_url)} == {"ACTIVE"}
    await endpoints(receiver.hook().url, ["*"], description="unrelated")  # never in a scoped answer
    ids = {name: e["id"] for name, e in [("exact", exact), ("prefix", prefix), ("deeper", deeper), ("star", star),
                                         ("other", other), ("by_url", by_url), ("pending", pending),
                                         ("paused", paused)]}

    async def listed(**params) -> set[str]:
        resp = await owner.get(API, params={"limit": 100, "q": mark} | params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == len(body["items"])
        names = {name for name, i in ids.items() if i in {e["id"] for e in body["items"]}}
        assert len(names) == len(body["items"]), body  # nothing but this test's endpoints
        return names

    everything = set(ids)
    # q: case-insensitive, in the URL or the description; LIKE wildcards are plain characters.
    assert await listed() == everything
    assert await listed(q=mark.lower()) == everything
    assert await listed(q=f"  {mark.swapcase()}  ") == everything  # surrounding blanks ignored
    assert await listed(q=f"{mark.lower()} EXACT") == {"exact"}
    assert await listed(q=f"crm {mark}") == {"prefix"}
    assert await listed(q=f"/{mark.lower()}") == {"by_url"}
    assert await listed(q=f"{mark}%") == set()
    assert await listed(q=f"{mark[:-1]}_") == set()
    assert await listed(q=f"{mark}\\") == set()

    # status: one, or several by repeating the parameter.
    assert await listed(status="ACTIVE") == everything - {"pending", "paused"}
    assert await listed(status=["PAUSED", "PENDING_VERIFICATION"]) == {"paused", "pending"}
    assert await listed(status="PAUSED") == {"paused"}
    assert await listed(status="DISABLED") == set()

    # eventType: the endpoints routing would send it to (exact name, prefix wildcard, `*`), whatever status.
    assert await listed(eventType="lead.stage.changed") == {"exact", "prefix", "deeper", "star", "pending"}
    assert await listed(eventType="lead.created") == {"prefix", "star", "other"}
    assert await listed(eventType="tenant.created") == {"prefix", "star", "by_url"}
    assert await listed(eventType="ticket.created") == {"star", "other", "paused"}
    assert await listed(eventType="ticket.message.added") == {"star", "other"}
    assert await listed(eventType="billing.payment_failed") == {"star"}
    # The filters combine.
    assert await listed(eventType="lead.stage.changed", status="ACTIVE") == {"exact", "prefix", "deeper", "star"}
    assert await listed(eventType="ticket.created", status=["PAUSED"]) == {"paused"}
    assert await listed(eventType="lead.stage.changed", q=f"{mark} de") == {"deeper"}

    # A change of subscription shows at once.
    resp = await owner.patch(f"{API}/{ids['other']}", json={"events": ["lead.stage.changed"]})
    assert resp.status_code == 200, resp.text
    assert await listed(eventType="lead.stage.changed", status="ACTIVE") == {"exact", "prefix", "deeper", "star",
                                                                             "other"}
    assert await listed(eventType="ticket.message.added") == {"star"}

    # Pagination keeps working with the filters: total counts all matches, pages partition them.
    seen: list[str] = []
    for offset in (0, 2, 4):
        page = (await owner.get(API, params={"q": mark, "eventType": "lead.stage.changed", "limit": 2,
                                             "offset": offset})).json()
        assert page["total"] == 6 and page["limit"] == 2 and page["offset"] == offset
        seen += [e["id"] for e in page["items"]]
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == {ids[n] for n in ("exact", "prefix", "deeper", "star", "pending", "other")}


async def test_bad_list_filters_are_422_problems(owner):
    bad = [
        {"status": "DELETED"},
        {"status": "ACTIVE,PAUSED"},
        {"status": "active"},
        {"status": ["ACTIVE", "PAUSED", "DISABLED", "ACTIVE", "PAUSED"]},
        {"eventType": "lead.*"},
        {"eventType": "*"},
        {"eventType": "lead"},
        {"eventType": "nope.created"},
        {"eventType": "webhook.verification"},  # never routed to subscribers
        {"eventType": ""},
        {"eventType": "lead.created" + "x" * 100},
        {"eventType": "lead.created\x00"},
        {"q": "a\x00b"},
        {"q": "x" * 201},
        {"limit": 101},
        {"offset": -1},
    ]
    for params in bad:
        resp = await owner.get(API, params=params)
        assert_problem(resp, 422)
        assert resp.json()["status"] == 422
    resp = await owner.get(API, params={"eventType": "lead.*"})
    assert "event-types" in resp.text  # the message says where the names are
    for params in ({"q": "%_\\'\""}, {"q": "\u00e9\U0001f600"}, {"q": " "}, {"status": []}):
        assert (await owner.get(API, params=params)).status_code == 200, params
