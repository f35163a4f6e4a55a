"""Changing, pausing, testing, rotating and replaying an endpoint (the dispatcher issue)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from common.events import build_event
from common.messaging import ConsumedEvent
from common.testing.webhooks import deliveries_of, ids_of, wait_delivery
from webhook_dispatcher.worker.consumer import route_batch
from webhook_dispatcher.worker.maintenance import refresh_gauges

API = "/api/platform/webhooks"


def lead_data(**extra) -> dict:
    return {"leadId": str(uuid.uuid4()), "name": "Ana", "stage": "NEW"} | extra


async def test_patch_changes_filters_and_a_new_url_is_verified_before_it_receives(owner, receiver, endpoints,
                                                                                  publish):
    old, new, refusing, witness = receiver.hook(), receiver.hook(), receiver.hook(challenge="none"), receiver.hook()
    endpoint = await endpoints(old.url, ["lead.created"])
    await endpoints(witness.url, ["lead.updated"])
    resp = await owner.patch(f"{API}/{endpoint['id']}", json={"events": ["lead.updated"], "maxConcurrency": 3,
                                                               "description": "sales"})
    assert resp.status_code == 200
    assert resp.json()["events"] == ["lead.updated"] and resp.json()["maxConcurrency"] == 3
    assert resp.json()["status"] == "ACTIVE" and resp.json()["verification"] is None

    moved = (await owner.patch(f"{API}/{endpoint['id']}", json={"url": refusing.url})).json()
    assert moved["status"] == "PENDING_VERIFICATION" and moved["verification"]["success"] is False
    envelope = await publish("lead.updated", lead_data(changes=["name"]))
    await witness.wait_for(lambda h: str(envelope.id) in ids_of(h))  # routed while the endpoint was pending
    moved = (await owner.patch(f"{API}/{endpoint['id']}", json={"url": new.url})).json()
    assert moved["status"] == "ACTIVE" and moved["url"] == new.url
    second = await publish("lead.updated", lead_data(changes=["name"]))
    await new.wait_for(lambda h: str(second.id) in ids_of(h))
    assert str(envelope.id) not in ids_of(new) and not old.events() and not refusing.events()

    for bad in ({"url": None}, {"events": []}, {"events": ["nope"]}, {"url": "https://10.1.1.1/x"},
                {"status": "ACTIVE"}):
        assert (await owner.patch(f"{API}/{endpoint['id']}", json=bad)).status_code == 422, bad
    assert (await owner.patch(f"{API}/{uuid.uuid4()}", json={"description": "x"})).status_code == 404


async def test_pause_holds_events_back_and_recover_sends_what_was_missed(owner, receiver, endpoints, publish):
    hook, witness = receiver.hook(), receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.stage.changed"])
    await endpoints(witness.url, ["lead.stage.changed"])
    since = datetime.now(UTC) - timedelta(seconds=5)
    paused = await owner.post(f"{API}/{endpoint['id']}/pause", json={"reason": "maintenance"})
    assert paused.json()["status"] == "PAUSED" and paused.json()["statusReason"] == "maintenance"
    missed = await publish("lead.stage.changed", lead_data(**{"from": "NEW", "to": "WON"}))
    await witness.wait_for(lambda h: str(missed.id) in ids_of(h))
    assert hook.events() == []

    resumed = (await owner.post(f"{API}/{endpoint['id']}/resume")).json()
    assert resumed["status"] == "ACTIVE"
    offer = resumed["recoveryOffer"]  # what it missed while paused, and how to get it
    assert (offer["count"], offer["missed"], offer["failed"]) == (1, 1, 0)
    assert offer["recover"]["status"] == ["FAILED", "MISSED"]
    assert datetime.fromisoformat(offer["since"]) <= datetime.fromisoformat(paused.json()["updatedAt"])
    assert (await owner.post(f"{API}/{endpoint['id']}/recover", json=offer["recover"] | {"dryRun": True})
            ).json()["count"] == 1
    body = {"since": since.isoformat(), "eventTypes": ["lead.*"]}
    dry = await owner.post(f"{API}/{endpoint['id']}/recover", json=body | {"dryRun": True})
    assert dry.status_code == 200 and "location" not in dry.headers
    assert dry.json() == {"id": None, "dryRun": True, "count": 1, "failed": 0, "succeeded": 0, "missed": 1,
                          "ratePerSecond": 100.0, "estimatedSeconds": 0.01}
    assert hook.events() == []
    started = await owner.post(f"{API}/{endpoint['id']}/recover", json=body)
    done = started.json()
    assert started.status_code == 200 and done["count"] == 1 and done["dryRun"] is False
    await hook.wait_for(lambda h: ids_of(h) == [str(missed.id)])
    recovery = await wait_recovery(owner, started.headers["location"])
    assert recovery["id"] == done["id"] and recovery["missed"] == 1 and recovery["status"] == ["FAILED", "MISSED"]
    assert recovery["progress"] == {"pending": 0, "succeeded": 1, "failed": 0, "superseded": 0, "done": True}
    # Recovering again finds nothing new: the event was delivered.
    assert (await owner.post(f"{API}/{endpoint['id']}/recover", json=body)).json()["count"] == 0
    again = await owner.post(f"{API}/{endpoint['id']}/recover", json=body | {"status": "SUCCEEDED"})
    assert again.json()["succeeded"] == 1
    await hook.wait_for(lambda h: ids_of(h) == [str(missed.id)] * 2)  # replayed with the same webhook-id

    bad = [{"since": "yesterday"}, {"since": since.isoformat(), "until": (since - timedelta(1)).isoformat()},
           {"since": since.isoformat(), "status": "LOST"}, {"since": since.replace(tzinfo=None).isoformat()},
           {"since": since.isoformat(), "eventTypes": ["nope.*"]}]
    for b in bad:
        assert (await owner.post(f"{API}/{endpoint['id']}/recover", json=b)).status_code == 422, b
    assert (await owner.post(f"{API}/{endpoint['id']}/pause")).json()["status"] == "PAUSED"
    assert (await owner.post(f"{API}/{endpoint['id']}/pause")).status_code == 200


async def wait_recovery(owner, location: str, timeout: float = 15.0) -> dict:
    async with asyncio.timeout(timeout):
        while not (recovery := (await owner.get(location)).json())["progress"]["done"]:
            await asyncio.sleep(0.05)
    return recovery


async def test_a_recovery_is_paced_oldest_first_and_reports_its_progress(owner, receiver, endpoints, publish):
    hook, witness = receiver.hook(), receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.created"])
    await endpoints(witness.url, ["lead.*"])
    since = datetime.now(UTC) - timedelta(seconds=5)
    await owner.post(f"{API}/{endpoint['id']}/pause")
    sent = [await publish("lead.created", lead_data()) for _ in range(6)]
    await publish("lead.updated", lead_data(changes=["name"]))  # not subscribed: never missed by it
    await witness.wait_for(lambda h: len(h.events()) >= 7)  # consumed while paused: missed by the endpoint
    await owner.post(f"{API}/{endpoint['id']}/resume")
    dry = (await owner.post(f"{API}/{endpoint['id']}/recover", json={"since": since.isoformat(), "dryRun": True}))
    assert dry.json()["missed"] == 6 and dry.json()["estimatedSeconds"] == 6 / 100

    started = await owner.post(f"{API}/{endpoint['id']}/recover",
                               json={"since": since.isoformat(), "ratePerSecond": 4})
    assert started.status_code == 200 and started.json()["estimatedSeconds"] == 1.5
    first = (await owner.get(started.headers["location"])).json()
    assert first["count"] == 6 and first["ratePerSecond"] == 4
    assert first["progress"]["pending"] > 0 and not first["progress"]["done"]  # 6 at 4/s take over a second
    pending = sorted(await deliveries_of(owner, endpoint["id"], status="PENDING"), key=lambda d: d["nextAttemptAt"])
    assert [d["eventId"] for d in pending] == [str(e.id) for e in sent if str(e.id) in {d["eventId"] for d in pending}]
    scheduled = [datetime.fromisoformat(d["nextAttemptAt"]) for d in pending]
    # Oldest first, spread over time at the asked rate (4/s: a quarter second apart), not all at once. How many
    # are still pending when listed depends on the machine's load; their spacing does not.
    assert len(scheduled) >= 2
    assert all(later - earlier >= timedelta(milliseconds=249) for earlier, later in pairwise(scheduled))

    recovery = await wait_recovery(owner, started.headers["location"])
    assert recovery["progress"] == {"pending": 0, "succeeded": 6, "failed": 0, "superseded": 0, "done": True}
    assert sorted(ids_of(hook)) == sorted(str(e.id) for e in sent)
    listed = (await owner.get(f"{API}/{endpoint['id']}/recoveries")).json()
    assert [r["id"] for r in listed] == [started.json()["id"]]

    other = await endpoints(receiver.hook().url, ["lead.created"])
    assert (await owner.get(f"{API}/{other['id']}/recoveries/{recovery['id']}")).status_code == 404
    assert (await owner.get(f"{API}/{uuid.uuid4()}/recoveries")).status_code == 404
    for rate in (0, -1, 10_000, "fast"):
        resp = await owner.post(f"{API}/{endpoint['id']}/recover", json={"since": since.isoformat(),
                                                                         "ratePerSecond": rate})
        assert resp.status_code == 422, rate


async def test_recover_resends_failed_deliveries_with_their_webhook_id(owner, receiver, endpoints, publish):
    hook = receiver.hook(status=500)
    endpoint = await endpoints(hook.url, ["lead.created"])
    envelope = await publish("lead.created", lead_data())
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
    hook.set_behaviour(status=204)
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    result = (await owner.post(f"{API}/{endpoint['id']}/recover", json={"since": since})).json()
    assert result["failed"] == 1
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert set(ids_of(hook)) == {str(envelope.id)}


async def test_test_event_goes_to_that_endpoint_only(owner, receiver, endpoints):
    hook, other = receiver.hook(), receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.created"])
    await endpoints(other.url, ["*"])
    resp = await owner.post(f"{API}/{endpoint['id']}/test")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["success"] is True and result["statusCode"] == 200
    [request] = hook.events()
    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body["event"] == "webhook.test" and body["data"]["endpointId"] == endpoint["id"]
    assert request.headers["webhook-id"] == result["eventId"]
    assert not other.events()
    assert [d["eventType"] for d in await deliveries_of(owner, endpoint["id"], eventType="webhook.test")] == [
        "webhook.test"]

    pending = await endpoints(receiver.hook(challenge="none").url)
    assert (await owner.post(f"{API}/{pending['id']}/test")).status_code == 409


async def test_rotating_the_secret_signs_with_both_during_the_grace_period(owner, receiver, endpoints, publish):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.created"])
    old_secret = endpoint["secret"]
    rotated = await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json={"graceHours": 1})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    assert rotated.json()["secretRotation"]["previousSecretExpiresAt"]
    shown = (await owner.get(f"{API}/{endpoint['id']}")).json()
    assert shown["secret"] == "****" + new_secret[-4:]

    envelope = await publish("lead.created", lead_data())
    await hook.wait_for(lambda h: str(envelope.id) in ids_of(h))
    request = hook.events()[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(request.body, request.headers)
    Webhook(old_secret).verify(request.body, request.headers)

    # Without a grace period the old secret stops signing at once.
    final = (await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json={"graceHours": 0})).json()["secret"]
    second = await publish("lead.created", lead_data())
    await hook.wait_for(lambda h: str(second.id) in ids_of(h))
    request = hook.events()[-1]
    Webhook(final).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(request.body, request.headers)
    for bad in ({"graceHours": 169}, {"graceHours": -1}, {"secret": "whsec_short"}):
        assert (await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json=bad)).status_code == 422


async def test_a_test_message_right_after_a_rotation_is_signed_with_the_new_secret(owner, receiver, endpoints):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.created"])
    previous = endpoint["secret"]
    for _ in range(5):  # each /test follows its rotation at once: no time for any cache to catch up
        secret = (await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json={"graceHours": 0})).json()["secret"]
        sent = (await owner.post(f"{API}/{endpoint['id']}/test")).json()
        assert sent["success"] is True, sent
        request = next(r for r in hook.events() if r.headers["webhook-id"] == sent["eventId"])
        assert len(request.headers["webhook-signature"].split(" ")) == 1
        Webhook(secret).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(previous).verify(request.body, request.headers)
        previous = secret


async def test_deliveries_are_paginated_with_a_cursor_and_filtered(owner, receiver, endpoints, publish):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.*"])
    sent = [await publish("lead.created", lead_data()) for _ in range(5)]
    await hook.wait_for(lambda h: len(h.events()) == 5)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "eventType": "lead.created"} | ({"cursor": cursor} if cursor else {})
        page = (await owner.get(f"{API}/{endpoint['id']}/deliveries", params=params)).json()
        seen += [d["eventId"] for d in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(e.id) for e in sent) and len(seen) == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await deliveries_of(owner, endpoint["id"], since=future) == []
    assert await deliveries_of(owner, endpoint["id"], status="FAILED") == []
    assert (await owner.get(f"{API}/{endpoint['id']}/deliveries", params={"cursor": "garbage"})).status_code == 422
    assert (await owner.get(f"{API}/{endpoint['id']}/deliveries", params={"status": "LOST"})).status_code == 422
    assert (await owner.get(f"{API}/{uuid.uuid4()}/deliveries")).status_code == 404


async def test_an_ordered_endpoint_gets_one_aggregate_in_order_even_across_retries(owner, receiver, endpoints,
                                                                                   publish):
    hook = receiver.hook(statuses=[503, 200])
    await endpoints(hook.url, ["lead.*"], ordered=True)
    lead_id = str(uuid.uuid4())
    first = await publish("lead.created", lead_data(leadId=lead_id), key=lead_id)
    second = await publish("lead.updated", lead_data(leadId=lead_id, changes=["name"]), key=lead_id)
    third = await publish("lead.stage.changed", lead_data(leadId=lead_id, **{"from": "NEW", "to": "WON"}), key=lead_id)
    await hook.wait_for(lambda h: len(h.events()) == 4)
    assert ids_of(hook) == [str(first.id), str(first.id), str(second.id), str(third.id)]


async def test_one_consumed_batch_keeps_an_aggregates_order_on_ordered_endpoints(dispatcher, database, receiver,
                                                                                 endpoints):
    hooks = [receiver.hook() for _ in range(3)]
    for hook in hooks:
        await endpoints(hook.url, ["lead.*"], ordered=True)
    lead_id = str(uuid.uuid4())
    events = [build_event(name, lead_data(leadId=lead_id, **extra)) for name, extra in [
        ("lead.created", {}), ("lead.updated", {"changes": ["name"]}),
        ("lead.stage.changed", {"from": "NEW", "to": "CONTACTED"}), ("lead.updated", {"changes": ["value"]}),
        ("lead.stage.changed", {"from": "CONTACTED", "to": "WON"})]]
    # One batch, as the consumer would write it after one fetch: routed in a single statement.
    async with database.autocommit.connect() as conn:
        new, after = await route_batch(conn, [ConsumedEvent(e, "platform.leads.events", 0, i, {})
                                              for i, e in enumerate(events)], dispatcher.app.state.worker)
    assert new == 5 and after is not None
    await after()
    for hook in hooks:
        await hook.wait_for(lambda h: len(h.events()) == 5)
        assert ids_of(hook) == [str(e.id) for e in events]


async def test_metrics_expose_outcomes_latency_backlog_and_endpoints(owner, dispatcher, database, receiver,
                                                                     endpoints, publish):
    hook = receiver.hook()
    await endpoints(hook.url, ["lead.created"])
    envelope = await publish("lead.created", lead_data())
    await hook.wait_for(lambda h: str(envelope.id) in ids_of(h))
    await refresh_gauges(database)  # the periodic maintenance pass, run now
    text = (await owner.get("/metrics")).text
    for name in ('webhook_deliveries_total{outcome="succeeded"}', "webhook_delivery_latency_seconds_bucket",
                 'webhook_attempts_total{result="success"}', "webhook_deliveries_pending ",
                 "webhook_deliveries_oldest_pending_age_seconds", 'webhook_endpoints{status="ACTIVE"}'):
        assert name in text, name
