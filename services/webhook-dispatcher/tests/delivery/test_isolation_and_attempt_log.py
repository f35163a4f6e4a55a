"""Isolation between endpoints and between an ordered endpoint's aggregates, and the attempt log as the API shows it.

The session dispatcher already runs with a short per-attempt timeout (WEBHOOK_TIMEOUT_SECONDS=3, lease 10 s:
conftest's TEST_SETTINGS), so a hanging subscriber costs each attempt 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy import text

from common.testing.webhooks import deliveries_of, ids_of, wait_delivery

API = "/api/platform/webhooks"
HANG = 3600.0  # seconds the hanging hook waits before answering: far past any attempt's timeout


def ticket_data(**extra) -> dict:
    return {"ticketId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()), "subject": "Printer on fire",
            "priority": "HIGH", "status": "OPEN"} | extra


def lead_data(lead_id: str, **extra) -> dict:
    return {"leadId": lead_id, "name": "Ana", "stage": "NEW"} | extra


class TcpRelay:
    """A plain TCP relay on a fixed local port to the test receiver (TLS passes through untouched, so the
    receiver's certificate still verifies). Closed, its port refuses connections; reopened, it relays again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every relayed connection (pooled keep-alive ones included)."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {client_writer, upstream_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            writer.close()

        try:
            await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        finally:
            self._writers -= {client_writer, upstream_writer}


@contextlib.asynccontextmanager
async def tcp_relay(target_port: int) -> AsyncIterator[TcpRelay]:
    relay = TcpRelay(target_port)
    await relay.open()
    try:
        yield relay
    finally:
        if relay._server is not None:
            await relay.close()


async def test_a_hanging_endpoint_never_delays_a_healthy_one_and_its_attempts_time_out(
        owner, dispatcher, receiver, endpoints, publish):
    hanging = receiver.hook(delay=HANG)  # reads each request, then never answers (the challenge it does answer)
    healthy = receiver.hook()
    stuck = await endpoints(hanging.url, ["ticket.created"])
    fine = await endpoints(healthy.url, ["ticket.*"])
    assert stuck["status"] == fine["status"] == "ACTIVE"
    lanes = dispatcher.app.state.worker.lanes
    stuck_id = uuid.UUID(stuck["id"])

    # Phase 1: events both endpoints get. Wait until the hanging endpoint's first attempts are all at its door.
    created = [await publish("ticket.created", ticket_data()) for _ in range(4)]
    created_ids = {str(e.id) for e in created}
    await hanging.wait_for(lambda h: set(ids_of(h)) == created_ids)
    # Phase 2: more events, for the healthy endpoint only, published while those attempts hang.
    closed = [await publish("ticket.closed", ticket_data(status="CLOSED")) for _ in range(4)]
    wanted = created_ids | {str(e.id) for e in closed}

    seen: dict[str, int] = {}

    def healthy_has_everything() -> bool:
        if not wanted <= set(ids_of(healthy)):
            return False
        # Same event loop as the dispatcher: this is one instant. How many requests had reached the hanging
        # hook, and how many of its attempts the worker was still waiting on (an answer or a timeout frees one).
        lane = lanes.get(stuck_id)
        seen.update(arrived=len(hanging.events()), waiting=lane.in_flight if lane else 0)
        return True

    await receiver.wait_for(healthy_has_everything, timeout=15)
    # Every healthy delivery, phase 2's included, arrived while all four first attempts were still hanging:
    # each had reached the subscriber once (no retry yet) and none had been answered or timed out.
    assert seen == {"arrived": 4, "waiting": 4}
    assert sorted(ids_of(healthy)) == sorted(wanted)  # once each

    # The hanging endpoint: every attempt ran into the per-attempt timeout, then the dead letter.
    for envelope in created:
        delivery = await wait_delivery(owner, stuck["id"], envelope.id, lambda d: d["status"] == "FAILED",
                                       timeout=40)
        assert delivery["attempts"] == 3 and delivery["lastErrorClass"] == "timeout"
        assert delivery["lastStatusCode"] is None
        attempts = (await owner.get(f"{API}/deliveries/{delivery['id']}/attempts")).json()
        assert [a["errorClass"] for a in attempts] == ["timeout"] * 3
        assert [a["statusCode"] for a in attempts] == [None] * 3
        assert not any(a["success"] for a in attempts)
    assert sorted(ids_of(hanging)) == sorted(list(created_ids) * 3)  # each attempt reached it, nothing more
    delivered = await deliveries_of(owner, fine["id"], eventType="ticket.*")
    assert sorted(d["eventId"] for d in delivered) == sorted(wanted)
    assert all(d["status"] == "SUCCEEDED" and d["attempts"] == 1 for d in delivered), delivered


async def test_an_ordered_endpoint_holds_one_aggregate_while_other_aggregates_go_on(owner, receiver, endpoints,
                                                                                   publish, database):
    # The first event the hook gets is refused with 503 and "come back in an hour": lead A's head is held.
    hook = receiver.hook(statuses=[503, 200], retry_after="3600")
    endpoint = await endpoints(hook.url, ["lead.*"], ordered=True)
    lead_a, lead_b = str(uuid.uuid4()), str(uuid.uuid4())
    a1 = await publish("lead.created", lead_data(lead_a), key=lead_a)
    held = await wait_delivery(owner, endpoint["id"], a1.id, lambda d: d["lastStatusCode"] == 503)
    assert held["status"] == "PENDING" and held["attempts"] == 1
    assert ids_of(hook) == [str(a1.id)]

    # A's next event, then B's two: A2 is due before B1 and B2, yet only B may go.
    a2 = await publish("lead.updated", lead_data(lead_a, changes=["name"]), key=lead_a)
    b1 = await publish("lead.created", lead_data(lead_b), key=lead_b)
    b2 = await publish("lead.stage.changed", lead_data(lead_b, **{"from": "NEW", "to": "WON"}), key=lead_b)
    await hook.wait_for(lambda h: str(b2.id) in ids_of(h))
    assert ids_of(hook) == [str(a1.id), str(b1.id), str(b2.id)]  # B, in its own order, past A's held head
    for envelope in (b1, b2):
        await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    waiting = await wait_delivery(owner, endpoint["id"], a2.id)
    assert waiting["status"] == "PENDING" and waiting["attempts"] == 0  # queued behind A1, never tried
    assert (await wait_delivery(owner, endpoint["id"], a1.id))["attempts"] == 1  # still held

    # The hour is over (only the database can move time): A1 goes, then A2 right behind it.
    async with database.sessionmaker() as session:
        await session.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = :id"),
                              {"id": uuid.UUID(held["id"])})
        await session.commit()
    await hook.wait_for(lambda h: str(a2.id) in ids_of(h), timeout=15)
    assert ids_of(hook) == [str(a1.id), str(b1.id), str(b2.id), str(a1.id), str(a2.id)]
    for envelope in (a1, a2):
        await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")


async def test_the_attempt_log_shows_refused_connections_with_time_duration_and_address(owner, receiver, endpoints,
                                                                                       publish):
    started = datetime.now(UTC)
    hook = receiver.hook()
    async with tcp_relay(receiver.port) as relay:
        url = f"https://127.0.0.1:{relay.port}{hook.path}"
        endpoint = await endpoints(url, ["lead.created"])  # verified through the relay
        assert endpoint["status"] == "ACTIVE"
        await relay.close()  # nothing listens on its port now: every connection is refused

        envelope = await publish("lead.created", lead_data(str(uuid.uuid4())))
        failed = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
        assert failed["attempts"] == 3 and failed["lastErrorClass"] == "connect" and failed["lastStatusCode"] is None
        # The challenge sent again meanwhile is refused too (recorded by the API's path, not the worker's).
        reverify = await owner.post(f"{API}/{endpoint['id']}/verify")
        assert reverify.status_code == 200 and reverify.json()["status"] == "ACTIVE"
        assert reverify.json()["verification"]["success"] is False

        await relay.open()  # the same port listens again
        assert (await owner.post(f"{API}/deliveries/{failed['id']}/retry")).status_code == 202
        await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert ids_of(hook) == [str(envelope.id)]  # the refused attempts never reached it

    detail = (await owner.get(f"{API}/deliveries/{failed['id']}")).json()
    log = detail["attemptLog"]
    assert [a["number"] for a in log] == [1, 2, 3, 4]
    assert [a["errorClass"] for a in log] == ["connect", "connect", "connect", None]
    assert [a["statusCode"] for a in log] == [None, None, None, 200]
    assert [a["success"] for a in log] == [False, False, False, True]
    assert all(a["error"] for a in log[:3]) and log[3]["error"] is None
    assert (await owner.get(f"{API}/deliveries/{failed['id']}/attempts")).json() == log

    challenges = await deliveries_of(owner, endpoint["id"], eventType="webhook.verification")
    assert len(challenges) == 2
    refused_challenge = (await owner.get(f"{API}/deliveries/{challenges[0]['id']}/attempts")).json()
    assert [a["errorClass"] for a in refused_challenge] == ["connect"]
    first_challenge = (await owner.get(f"{API}/deliveries/{challenges[1]['id']}/attempts")).json()
    assert [(a["errorClass"], a["statusCode"]) for a in first_challenge] == [(None, 200)]

    finished = datetime.now(UTC)
    for attempt in log + refused_challenge + first_challenge:
        begun = datetime.fromisoformat(attempt["startedAt"])
        assert begun.tzinfo is not None and started <= begun <= finished, attempt
        assert isinstance(attempt["durationMs"], int) and attempt["durationMs"] >= 0, attempt
        assert attempt["targetIp"] == "127.0.0.1", attempt
        assert attempt["url"] == url
    begins = [datetime.fromisoformat(a["startedAt"]) for a in log]
    assert begins == sorted(begins)
