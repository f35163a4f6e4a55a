"""The delivery worker under stress: restarts, crashed replicas, transport failures, retention."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from common.events import build_event
from common.messaging import ConsumedEvent
from common.testing.plugin import bearer
from common.testing.servers import serve_app
from common.testing.webhooks import ids_of, wait_ready
from webhook_dispatcher.app import create_app
from webhook_dispatcher.outbound.transport import WebhookTransport
from webhook_dispatcher.worker.consumer import route_batch
from webhook_dispatcher.worker.jobs import Job
from webhook_dispatcher.worker.worker import DeliveryWorker

API = "/api/platform/webhooks"


def payment_failed() -> dict:
    return {"tenantId": str(uuid.uuid4()), "invoiceId": f"in_{uuid.uuid4().hex[:10]}", "amountDue": 4900,
            "currency": "usd", "attemptCount": 1}


async def test_a_restart_mid_stream_loses_nothing_and_sends_nothing_twice(migrated_database, make_settings, receiver,
                                                                          owner_token, publish):
    # Its own database and consumer group: this dispatcher starts, stops and starts again. The group reads
    # the topic from its start, so other tests' billing.payment_failed (the billing service's own tests
    # publish real ones) reach this endpoint too: only this test's events are counted.
    settings = make_settings(database_url=await migrated_database("webhook-dispatcher", name="restart"),
                             webhook_consumer_group=f"restart-{uuid.uuid4().hex[:8]}")
    hook = receiver.hook(delay=0.1)
    sent = []

    def ours(h) -> list[str]:
        mine = {str(e.id) for e in sent}
        return [i for i in ids_of(h) if i in mine]

    async with serve_app(create_app(settings)) as url:
        await wait_ready(url)
        async with httpx.AsyncClient(base_url=url, headers=bearer(owner_token), timeout=20) as client:
            resp = await client.post(API, json={"url": hook.url, "events": ["billing.payment_failed"],
                                                "maxConcurrency": 2})
            assert resp.status_code == 201 and resp.json()["status"] == "ACTIVE"
            for _ in range(30):
                sent.append(await publish("billing.payment_failed", payment_failed()))
            async with asyncio.timeout(20):  # all routed (committed, offsets acknowledged) ...
                while await _routed(settings.database_url, sent) < 30:
                    await asyncio.sleep(0.05)
        await hook.wait_for(lambda h: len(ours(h)) >= 4)
    # ... and stopped (the SIGTERM path: lifespan shutdown) in the middle of delivering them.
    stopped_at = len(ours(hook))
    assert stopped_at < 30
    async with serve_app(create_app(settings)):
        await hook.wait_for(lambda h: len(ours(h)) >= 30, timeout=60)
        # Anything extra would have arrived before a marker sent after everything else.
        marker = await publish("billing.payment_failed", payment_failed())
        await hook.wait_for(lambda h: str(marker.id) in ids_of(h), timeout=60)
    assert sorted(ours(hook)) == sorted(str(e.id) for e in sent)  # each once


async def _routed(database_url: str, events: list) -> int:
    """How many of `events` the dispatcher has recorded deliveries for."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(DISTINCT event_id) FROM webhook_deliveries "
                                            "WHERE event_id = ANY(:ids)"), {"ids": [e.id for e in events]})).scalar_one()
    finally:
        await engine.dispose()


async def test_deliveries_left_by_a_crashed_replica_are_taken_over_when_its_lease_ends(
        dispatcher, make_settings, database, receiver, endpoints, publish):
    hook = receiver.hook()
    await endpoints(hook.url, ["billing.payment_succeeded"])
    # A replica that consumed the event, committed leased deliveries, and died before sending them.
    dead = DeliveryWorker(make_settings(webhook_timeout_seconds=1.0, webhook_lease_seconds=6.0), database)
    dead.accepting = True
    envelope = build_event("billing.payment_succeeded", payment_failed())
    async with database.autocommit.connect() as conn:
        new, after = await route_batch(conn, [ConsumedEvent(envelope, "platform.billing.events", 0, 0, {})], dead)
    assert new == 1 and after is not None  # never called: the replica is gone
    await hook.wait_for(lambda h: len(h.events()) >= 1, timeout=20)
    marker = await publish("billing.payment_succeeded", payment_failed())  # a second copy would come before it
    await hook.wait_for(lambda h: str(marker.id) in ids_of(h), timeout=20)
    assert ids_of(hook) == [str(envelope.id), str(marker.id)]


async def test_transport_failures_are_classified(make_settings, receiver):
    ok = receiver.hook()
    slow = receiver.hook(delay=3.0)
    body, headers = b"{}", {"content-type": "application/json"}

    strict = WebhookTransport(make_settings(webhook_allowed_private_cidrs=""))
    no_ca = WebhookTransport(make_settings(webhook_ca_bundle=None))
    quick = WebhookTransport(make_settings(webhook_timeout_seconds=0.5))
    plain = WebhookTransport(make_settings())
    try:
        refused = await strict.post(ok.url, body, headers)
        assert refused.error_class == "policy" and "127.0.0.1" in refused.error and not refused.success
        untrusted = await no_ca.post(ok.url, body, headers)
        assert untrusted.error_class == "tls"
        timed_out = await quick.post(slow.url, body, headers)
        assert timed_out.error_class == "timeout"
        closed = await plain.post("https://127.0.0.1:9/x", body, headers)
        assert closed.error_class == "connect"
        unresolvable = await plain.post("https://does-not-exist.invalid/x", body, headers)
        assert unresolvable.error_class == "dns"
        good = await plain.post(ok.url, body, headers)
        assert good.success and good.target_ip == "127.0.0.1" and good.status_code == 200
        assert len(ok.events()) == 1  # the refused and untrusted attempts never reached it
    finally:
        for t in (strict, no_ca, quick, plain):
            await t.close()


async def test_retention_purges_what_is_older_than_the_retention_on_its_own(owner, database, receiver,
                                                                            endpoints, publish):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["ticket.closed"])
    ticket = {"ticketId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()), "subject": "Old", "priority": "LOW",
              "status": "CLOSED"}
    envelopes = [await publish("ticket.closed", ticket) for _ in range(4)]
    await hook.wait_for(lambda h: {str(e.id) for e in envelopes} <= set(ids_of(h)))
    async with asyncio.timeout(10):
        while True:
            items = (await owner.get(f"{API}/{endpoint['id']}/deliveries",
                                     params={"eventType": "ticket.closed"})).json()["items"]
            if len(items) == 4 and all(i["status"] == "SUCCEEDED" for i in items):
                break
            await asyncio.sleep(0.05)
    old, kept = items[:3], items[3]  # three (more than one batch of 2) age past the 30-day retention
    old_events = [uuid.UUID(i["eventId"]) for i in old]
    async with database.sessionmaker() as session:
        for table, column in (("webhook_attempts", "delivery_id"), ("webhook_deliveries", "id")):
            await session.execute(text(f"UPDATE {table} SET created_at = now() - interval '31 days' "
                                       f"WHERE {column} = ANY(:ids)"), {"ids": [uuid.UUID(i["id"]) for i in old]})
        await session.execute(text("UPDATE webhook_events SET created_at = now() - interval '31 days' "
                                   "WHERE id = ANY(:ids)"), {"ids": old_events})
        await session.commit()

    async def remaining(table: str, ids: list[uuid.UUID], column: str = "id") -> int:
        async with database.sessionmaker() as session:
            return (await session.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = ANY(:ids)"),
                                          {"ids": ids})).scalar_one()

    # Nobody calls the purge: the dispatcher's periodic job finds the old rows, batch after batch.
    async with asyncio.timeout(20):
        while await remaining("webhook_events", old_events):
            await asyncio.sleep(0.2)
    assert await remaining("webhook_deliveries", [uuid.UUID(i["id"]) for i in old]) == 0
    assert await remaining("webhook_attempts", [uuid.UUID(i["id"]) for i in old], "delivery_id") == 0
    for item in old:
        assert (await owner.get(f"{API}/deliveries/{item['id']}")).status_code == 404
    # What is inside the retention stays, with its payload; so does the endpoint.
    recent = await owner.get(f"{API}/deliveries/{kept['id']}")
    assert recent.status_code == 200 and recent.json()["payload"]["id"] == kept["eventId"]
    assert await remaining("webhook_attempts", [uuid.UUID(kept["id"])], "delivery_id") == 1
    assert (await owner.get(f"{API}/{endpoint['id']}")).status_code == 200


async def test_an_endpoints_limits_hold_across_replicas(dispatcher, make_settings, database, receiver, endpoints,
                                                         publish):
    hook = receiver.hook(delay=0.3)
    await endpoints(hook.url, ["billing.payment_failed"], maxConcurrency=2)
    # A second replica on the same database: it routes half of the events (as its own consumer would),
    # this test's dispatcher consumes the other half from Kafka.
    other = DeliveryWorker(make_settings(), database)
    await other.start()
    try:
        await other.registry.listening.wait()
        events = [build_event("billing.payment_failed", payment_failed()) for _ in range(8)]
        async with database.autocommit.connect() as conn:
            new, after = await route_batch(conn, [ConsumedEvent(e, "platform.billing.events", 0, i, {})
                                                  for i, e in enumerate(events)], other)
        assert new == 8 and after is not None
        await after()
        events += [await publish("billing.payment_failed", payment_failed()) for _ in range(8)]
        wanted = {str(e.id) for e in events}
        await hook.wait_for(lambda h: len(_only(h, wanted)) >= 16, timeout=30)
        marker = await publish("billing.payment_failed", payment_failed())  # anything extra would come first
        await hook.wait_for(lambda h: str(marker.id) in ids_of(h), timeout=30)
        assert sorted(_only(hook, wanted)) == sorted(wanted)  # each once, whoever sent it
        assert hook.max_in_flight <= 2  # the cap is the endpoint's, not each replica's
    finally:
        await other.stop()


async def test_a_slow_endpoints_backlog_waits_in_the_database_not_in_memory(migrated_database, make_settings,
                                                                             receiver, owner_token, publish):
    settings = make_settings(database_url=await migrated_database("webhook-dispatcher", name="backlog"),
                             webhook_queue_size=3,
                             webhook_consumer_group=f"backlog-{uuid.uuid4().hex[:8]}")
    hook = receiver.hook(delay=0.15)
    app = create_app(settings)
    async with serve_app(app) as url:
        await wait_ready(url)
        async with httpx.AsyncClient(base_url=url, headers=bearer(owner_token), timeout=20) as client:
            resp = await client.post(API, json={"url": hook.url, "events": ["billing.payment_failed"],
                                                "maxConcurrency": 1})
            assert resp.status_code == 201 and resp.json()["status"] == "ACTIVE"
            endpoint_id = uuid.UUID(resp.json()["id"])
            sent = [await publish("billing.payment_failed", payment_failed()) for _ in range(15)]
            worker = app.state.worker
            most_queued = 0
            wanted = {str(e.id) for e in sent}
            async with asyncio.timeout(30):
                while len(_only(hook, wanted)) < 15:
                    lane = worker.lanes.get(endpoint_id)
                    most_queued = max(most_queued, len(lane.queue) if lane else 0)
                    await asyncio.sleep(0.01)
    assert sorted(_only(hook, wanted)) == sorted(wanted)  # all of them, once each
    assert most_queued <= 3  # the rest waited in the database until the lane had room
    assert hook.max_in_flight == 1


async def test_a_lane_is_leased_only_what_it_has_room_for_the_rest_waits_unleased(make_settings, database,
                                                                                 receiver, endpoints):
    tight_hook, free_hook = receiver.hook(), receiver.hook()
    tight = uuid.UUID((await endpoints(tight_hook.url, ["billing.payment_failed"]))["id"])
    free = uuid.UUID((await endpoints(free_hook.url, ["billing.payment_failed"]))["id"])
    # A replica (not running) whose lane for `tight` has room for one more (queue of 3, two queued).
    replica = DeliveryWorker(make_settings(webhook_queue_size=3), database)
    replica.accepting = True
    lane = replica.lanes.open(tight)
    lane.queue.extend(Job(uuid.uuid4(), tight, uuid.uuid4(), "billing.payment_failed", b"{}", None, None, None,
                          0, 0, 0.0) for _ in range(2))
    assert replica.lanes.room() == {tight: 1}
    assert await replica.ownership.acquire({tight}) == {tight}
    events = [build_event("billing.payment_failed", payment_failed()) for _ in range(3)]
    async with database.autocommit.connect() as conn:
        new, after = await route_batch(conn, [ConsumedEvent(e, "platform.billing.events", 0, i, {})
                                              for i, e in enumerate(events)], replica)
        rows = (await conn.execute(text(
            "SELECT endpoint_id, event_id, lease_owner FROM webhook_deliveries WHERE event_id = ANY(:e)"),
            {"e": [e.id for e in events]})).all()
    leased = {(r.endpoint_id, r.event_id): r.lease_owner == replica.owner for r in rows}
    # The first event fits the tight lane; the later ones are not leased, so never handed back: they wait
    # for whichever poller has room. The lane-less endpoint takes all three.
    assert new == 3 and after is not None
    assert [leased[(tight, e.id)] for e in events] == [True, False, False]
    assert [leased[(free, e.id)] for e in events] == [True, True, True]
    replica.accepting = False  # nothing is sent from here: what was leased is handed back
    await after()
    assert lane.overflowed  # the lane asks the poller for the rest once it has drained to half
    # Had it drained meanwhile (no pop left to notice), the poller is asked at once instead.
    lane.queue.clear()
    lane.overflowed = False
    assert replica.lanes.park({tight}) is True and not lane.overflowed
    await replica.ownership.release_all()
    # The running dispatcher's poller finds them all in the database.
    wanted = {str(e.id) for e in events}
    await tight_hook.wait_for(lambda h: wanted <= set(ids_of(h)), timeout=20)
    await free_hook.wait_for(lambda h: wanted <= set(ids_of(h)), timeout=20)


def _only(hook, wanted: set[str]) -> list[str]:
    """The webhook-ids of `wanted` events the hook got, repeats included. A replica with a new consumer
    group reads the shared topic from its start: events earlier tests published there (same type) may
    reach this test's endpoint too, and say nothing about it."""
    return [i for i in ids_of(hook) if i in wanted]
