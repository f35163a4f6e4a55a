"""Events published on Kafka reach subscribers: signed, filtered, once per endpoint, retried, dead-lettered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from common.events import build_event
from common.messaging import ConsumedEvent
from common.testing.events import collect_events
from common.testing.webhooks import deliveries_of, ids_of, wait_delivery
from webhook_dispatcher.worker.consumer import CONSUMER_NAME, route_batch

API = "/api/platform/webhooks"
TOPIC = "platform.webhook-dispatcher.events"


def tenant_data() -> dict:
    tid = uuid.uuid4()
    return {"tenantId": str(tid), "name": f"Empresa {tid.hex[:6]}", "plan": "Pro", "status": "ACTIVE"}


def lead_data(**extra) -> dict:
    return {"leadId": str(uuid.uuid4()), "name": "Ana", "stage": "NEW"} | extra


async def test_tenant_created_reaches_the_subscriber_signed_and_traceable(receiver, endpoints, publish):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["tenant.created"])
    data = tenant_data()
    envelope = await publish("tenant.created", data, tenant_id=uuid.UUID(data["tenantId"]))
    await hook.wait_for(lambda h: len(h.events()) >= 1)
    [request] = hook.events()
    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body == envelope.to_webhook()
    assert set(body) == {"id", "event", "timestamp", "tenantId", "data"}
    assert request.headers["webhook-id"] == str(envelope.id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Plataforma")
    # The delivery's span is a child of the event's trace (carried from the Kafka record).
    _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and span_id != "00f067aa0ba902b7"


async def test_filters_exact_prefix_and_star_and_pending_endpoints_get_nothing(owner, receiver, endpoints, publish):
    star, exact, prefix, other = receiver.hook(), receiver.hook(), receiver.hook(), receiver.hook()
    pending = receiver.hook(challenge="none")
    e_star = await endpoints(star.url, ["*"])
    e_exact = await endpoints(exact.url, ["lead.created"])
    e_prefix = await endpoints(prefix.url, ["lead.*"])
    e_other = await endpoints(other.url, ["ticket.closed", "tenant.*"])
    e_pending = await endpoints(pending.url, ["*"])
    assert e_pending["status"] == "PENDING_VERIFICATION"

    created = await publish("lead.created", lead_data())
    stage = await publish("lead.stage.changed", lead_data(**{"from": "NEW", "to": "WON"}))
    # The `*` endpoint got both, so both events were routed (routing is one transaction per batch).
    await star.wait_for(lambda h: {str(created.id), str(stage.id)} <= set(ids_of(h)))
    await prefix.wait_for(lambda h: {str(created.id), str(stage.id)} <= set(ids_of(h)))
    await exact.wait_for(lambda h: str(created.id) in ids_of(h))
    assert ids_of(exact) == [str(created.id)]
    assert not other.events() and not pending.events()
    assert [d["eventType"] for d in await deliveries_of(owner, e_other["id"])] == ["webhook.verification"]
    assert [d["eventType"] for d in await deliveries_of(owner, e_pending["id"])] == ["webhook.verification"]
    assert {d["eventType"] for d in await deliveries_of(owner, e_star["id"])} >= {"lead.created", "lead.stage.changed"}
    assert len(await deliveries_of(owner, e_exact["id"], eventType="lead.created")) == 1
    assert len(await deliveries_of(owner, e_prefix["id"], eventType="lead.*")) == 2


async def test_the_same_event_consumed_twice_is_delivered_once(owner, receiver, endpoints, publish, dispatcher,
                                                               database):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["tenant.updated"])
    envelope = build_event("tenant.updated", tenant_data() | {"changes": ["plan"]})
    await publish(envelope=envelope)
    await publish(envelope=envelope)  # a relay re-publish: same id
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    worker = dispatcher.app.state.worker
    consumed = ConsumedEvent(envelope, "platform.tenants.events", 0, 0, {})
    async with database.autocommit.connect() as conn:
        assert await route_batch(conn, [consumed], worker) == (0, None)  # the inbox has it
        # Even without its inbox row (purged, or another consumer replaying it), the unique (event,
        # endpoint) holds.
        await conn.execute(text("DELETE FROM inbox WHERE consumer = :c AND event_id = :e"),
                           {"c": CONSUMER_NAME, "e": envelope.id})
        assert await route_batch(conn, [consumed], worker) == (1, None)  # new to the inbox, nothing to deliver
    await publish("tenant.updated", tenant_data() | {"changes": ["name"]})
    await hook.wait_for(lambda h: len(h.events()) >= 2)
    assert ids_of(hook).count(str(envelope.id)) == 1
    assert len([d for d in await deliveries_of(owner, endpoint["id"]) if d["eventId"] == str(envelope.id)]) == 1


async def test_503s_are_retried_with_the_same_webhook_id_until_a_2xx(owner, receiver, endpoints, publish):
    # The subscriber's answers are recorded even when they hold what PostgreSQL text cannot (NUL).
    hook = receiver.hook(statuses=[503, 503, 200], response_body=b"ok\x00", response_headers={"X-Odd": "\u00e9"})
    endpoint = await endpoints(hook.url, ["lead.created"])
    envelope = await publish("lead.created", lead_data())
    delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert delivery["attempts"] == 3
    assert ids_of(hook) == [str(envelope.id)] * 3
    for request in hook.events():  # each attempt is signed afresh (its own timestamp)
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
    detail = (await owner.get(f"{API}/deliveries/{delivery['id']}")).json()
    assert [a["statusCode"] for a in detail["attemptLog"]] == [503, 503, 200]
    assert [a["success"] for a in detail["attemptLog"]] == [False, False, True]
    first = detail["attemptLog"][0]
    assert first["errorClass"] == "http" and first["targetIp"] == "127.0.0.1"
    assert first["requestHeaders"]["webhook-id"] == str(envelope.id) and first["responseBody"] == "ok\ufffd"
    assert detail["payload"] == envelope.to_webhook()
    attempts = (await owner.get(f"{API}/deliveries/{delivery['id']}/attempts")).json()
    assert len(attempts) == 3


async def test_after_the_last_attempt_the_delivery_fails_and_can_be_retried(owner, receiver, endpoints, publish):
    hook = receiver.hook(status=500, response_body=b"x" * 10_000)
    endpoint = await endpoints(hook.url, ["lead.updated"])
    envelope = await publish("lead.updated", lead_data(changes=["name"]))
    delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
    assert delivery["attempts"] == 3 and delivery["lastStatusCode"] == 500 and delivery["nextAttemptAt"] is None
    assert len(hook.events()) == 3
    attempt = (await owner.get(f"{API}/deliveries/{delivery['id']}/attempts")).json()[-1]
    assert len(attempt["responseBody"]) == 4096  # only the first 4 KB are kept
    assert (await owner.get(f"{API}/{endpoint['id']}")).json()["status"] == "ACTIVE"
    assert [d["id"] for d in await deliveries_of(owner, endpoint["id"], status="FAILED")] == [delivery["id"]]

    hook.set_behaviour(status=200)
    resp = await owner.post(f"{API}/deliveries/{delivery['id']}/retry")
    assert resp.status_code == 202 and resp.json()["status"] == "PENDING"
    done = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert done["attempts"] == 4
    assert ids_of(hook) == [str(envelope.id)] * 4
    assert (await owner.post(f"{API}/deliveries/{uuid.uuid4()}/retry")).status_code == 404


async def test_410_gone_disables_the_endpoint_and_announces_it(owner, receiver, endpoints, publish, kafka_bootstrap):
    gone = receiver.hook(status=410)
    watcher = receiver.hook()
    endpoint = await endpoints(gone.url, ["lead.converted"])
    watch = await endpoints(watcher.url, ["webhook.endpoint.*"])
    async with collect_events(kafka_bootstrap, [TOPIC]) as events:
        envelope = await publish("lead.converted", lead_data(convertedAt="2025-01-27T10:00:00Z"))
        delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
        announced = await events.wait_for(lambda e: e.event == "webhook.endpoint.disabled"
                                          and e.data["endpointId"] == endpoint["id"])
    assert delivery["attempts"] == 1 and delivery["lastStatusCode"] == 410
    after = (await owner.get(f"{API}/{endpoint['id']}")).json()
    assert after["status"] == "DISABLED" and "410" in after["statusReason"]
    assert announced.data["status"] == "DISABLED"
    # The dispatcher consumes its own topic: owners can subscribe to endpoint health.
    await watcher.wait_for(lambda h: str(announced.id) in ids_of(h))
    Webhook(watch["secret"]).verify(watcher.events()[-1].body, watcher.events()[-1].headers)
    # Disabled endpoints receive nothing more; re-enabling is the owner's call.
    await publish("lead.converted", lead_data(convertedAt="2025-01-27T10:00:00Z"))
    resumed = await owner.post(f"{API}/{endpoint['id']}/resume")
    assert resumed.json()["status"] == "ACTIVE"
    assert len(gone.events()) == 1
    # Re-enabling offers what failed (and what was missed) while it was off, with the request to send it.
    offer = resumed.json()["recoveryOffer"]
    assert offer["failed"] == 1 and datetime.fromisoformat(offer["since"]) <= datetime.fromisoformat(
        delivery["lastAttemptAt"])
    dry = await owner.post(f"{API}/{endpoint['id']}/recover", json=offer["recover"] | {"dryRun": True})
    assert dry.json()["failed"] == 1


async def test_an_endpoint_failing_past_the_threshold_is_disabled(owner, receiver, endpoints, publish, database):
    hook = receiver.hook(status=502)
    watcher = receiver.hook()
    endpoint = await endpoints(hook.url, ["ticket.created"])
    watch = await endpoints(watcher.url, ["webhook.endpoint.disabled"])
    async with database.sessionmaker() as session:  # failing for 6 days already: past the 5-day default
        await session.execute(text("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' "
                                   "WHERE id = :id"), {"id": uuid.UUID(endpoint["id"])})
        await session.commit()
    ticket = {"ticketId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()), "subject": "Help", "priority": "HIGH",
              "status": "OPEN"}
    envelope = await publish("ticket.created", ticket)
    delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
    assert delivery["attempts"] == 1
    after = (await owner.get(f"{API}/{endpoint['id']}")).json()
    assert after["status"] == "DISABLED" and after["failingSince"] is not None
    # The owner hears of it like any other event: routed to another webhook, signed.
    await watcher.wait_for(lambda h: any(json.loads(r.body)["data"]["endpointId"] == endpoint["id"]
                                         for r in h.events()))
    announced = Webhook(watch["secret"]).verify(watcher.events()[-1].body, watcher.events()[-1].headers)
    assert announced["event"] == "webhook.endpoint.disabled"
    assert announced["data"]["status"] == "DISABLED" and "failed since" in announced["data"]["reason"]
    assert announced["data"]["failingSince"] is not None


def test_the_disable_threshold_is_five_days_unless_configured(make_settings, monkeypatch):
    assert make_settings().webhook_disable_after_seconds == 5 * 24 * 3600
    monkeypatch.setenv("WEBHOOK_DISABLE_AFTER_SECONDS", "3600")
    assert make_settings().webhook_disable_after_seconds == 3600


async def test_a_redirect_is_a_failure_and_is_never_followed(owner, receiver, endpoints, publish):
    elsewhere = receiver.hook()
    hook = receiver.hook(statuses=[307, 308, 301], response_headers={"Location": elsewhere.url})
    endpoint = await endpoints(hook.url, ["tenant.suspended"])
    envelope = await publish("tenant.suspended", tenant_data() | {"status": "SUSPENDED", "reason": "unpaid"})
    delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
    assert delivery["attempts"] == 3 and delivery["lastStatusCode"] == 301  # retried on the schedule, then dead
    assert ids_of(hook) == [str(envelope.id)] * 3
    assert elsewhere.events() == []  # the Location was never visited
    attempts = (await owner.get(f"{API}/deliveries/{delivery['id']}/attempts")).json()
    assert [a["statusCode"] for a in attempts] == [307, 308, 301]
    assert all(not a["success"] and a["responseHeaders"]["location"] == elsewhere.url for a in attempts)


async def test_a_success_resets_the_failing_clock(owner, receiver, endpoints, publish):
    hook = receiver.hook(statuses=[500, 200])
    endpoint = await endpoints(hook.url, ["tenant.suspended"])
    envelope = await publish("tenant.suspended", tenant_data() | {"status": "SUSPENDED", "reason": "unpaid"})
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert (await owner.get(f"{API}/{endpoint['id']}")).json()["failingSince"] is None


@pytest.mark.parametrize("status, retry_after", [
    (429, lambda: "2"),
    (504, lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)),
])
async def test_retry_after_is_honoured(owner, receiver, endpoints, publish, status, retry_after):
    hook = receiver.hook(statuses=[status, 200], retry_after=retry_after())
    endpoint = await endpoints(hook.url, ["tenant.reactivated"])
    envelope = await publish("tenant.reactivated", tenant_data())
    pending = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["lastStatusCode"] == status)
    scheduled = datetime.fromisoformat(pending["nextAttemptAt"]) - datetime.fromisoformat(pending["lastAttemptAt"])
    assert scheduled >= timedelta(seconds=1.5)  # not the schedule's 0.2 s (an HTTP date has whole seconds)
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")


async def test_a_slow_endpoint_never_delays_the_others(receiver, endpoints, publish):
    slow = receiver.hook(delay=1.0)
    fast = receiver.hook()
    await endpoints(slow.url, ["conversation.started"], maxConcurrency=1)
    await endpoints(fast.url, ["conversation.started"])
    conversation = {"channelId": str(uuid.uuid4()), "channelType": "EVOLUTION", "contact": "+5511999999999"}
    sent = [await publish("conversation.started", conversation | {"conversationId": str(uuid.uuid4())})
            for _ in range(6)]
    await fast.wait_for(lambda h: len(h.events()) == 6)
    assert len(slow.events()) < 6  # still working through its own queue, one at a time
    assert slow.max_in_flight == 1
    await slow.wait_for(lambda h: len(h.events()) == 6, timeout=20)
    assert sorted(ids_of(slow)) == sorted(str(e.id) for e in sent)


async def test_a_pending_endpoint_gets_nothing_until_verified(owner, receiver, endpoints, publish):
    hook = receiver.hook(challenge="none")
    witness = receiver.hook()
    endpoint = await endpoints(hook.url, ["lead.created"])
    await endpoints(witness.url, ["lead.created"])
    envelope = await publish("lead.created", lead_data())
    await witness.wait_for(lambda h: str(envelope.id) in ids_of(h))
    assert hook.events() == []
    assert [d["eventType"] for d in await deliveries_of(owner, endpoint["id"])] == ["webhook.verification"]


async def test_a_rate_limited_endpoint_is_paced(receiver, endpoints, publish):
    hook = receiver.hook()
    await endpoints(hook.url, ["conversation.ended"], rateLimitPerSecond=4)
    conversation = {"channelId": str(uuid.uuid4()), "channelType": "EVOLUTION", "contact": "+5511999999999"}
    for _ in range(6):
        await publish("conversation.ended", conversation | {"conversationId": str(uuid.uuid4())})
    await hook.wait_for(lambda h: len(h.events()) == 6)
    times = [r.received_at for r in hook.events()]
    # 4 per second with a burst of 4: the 6th is sent (6 - 4) / 4 = 0.5 s after the first. Arrival times
    # include connection set-up on a loaded machine, so allow slack; unpaced, all six arrive at once.
    assert times[-1] - times[0] >= 0.3


async def test_the_rate_limit_holds_for_events_that_arrive_one_by_one(receiver, endpoints, publish):
    # Each event arrives after the previous one was delivered, so the endpoint goes idle in between:
    # the limit must still hold (it used to restart with every burst).
    hook = receiver.hook()
    await endpoints(hook.url, ["conversation.ended"], rateLimitPerSecond=2)
    conversation = {"channelId": str(uuid.uuid4()), "channelType": "EVOLUTION", "contact": "+5511988887777"}
    for n in range(1, 5):
        await publish("conversation.ended", conversation | {"conversationId": str(uuid.uuid4())})
        await hook.wait_for(lambda h, n=n: len(h.events()) == n)
    times = [r.received_at for r in hook.events()]
    # 2 per second: four sends span at least 1.5 s (minus connection set-up slack); unpaced, ~0.1 s.
    assert times[-1] - times[0] >= 1.0
