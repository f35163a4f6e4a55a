"""Channels: creation on the provider, secrets encrypted and masked, QR, status from webhooks, checks."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
from aiohttp import web
from sqlalchemy import text

from common.testing.checks import assert_problem
from common.testing.servers import FakeServer, free_port

CHANNELS = "/api/platform/operations/channels"


async def test_evolution_channel_creates_the_instance_sets_the_wrapped_webhook_and_serves_the_qr(
        api, owner, evolution, events):
    channel = await api.evolution_channel()
    instance = evolution.instances[channel["instanceName"]]
    assert channel["status"] == "CONNECTING"
    assert channel["apiKey"] == "****" + evolution.api_key[-4:]
    hook = instance["webhook"]
    assert hook["url"] == channel["webhookUrl"] and hook["url"].endswith(f"/api/webhooks/evolution/{channel['id']}")
    assert hook["enabled"] is True and "MESSAGES_UPSERT" in hook["events"] and hook["headers"]["x-webhook-secret"]

    qr = (await owner.get(f"{CHANNELS}/{channel['id']}/qr")).json()
    assert qr["dataUrl"].startswith("data:image/png;base64,") and qr["status"] == "CONNECTING"
    png = await owner.get(f"{CHANNELS}/{channel['id']}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    again = (await owner.get(f"{CHANNELS}/{channel['id']}/qr")).json()
    assert again["dataUrl"] != qr["dataUrl"]  # refreshed while not connected
    assert base64.b64decode(again["dataUrl"].split(",")[1]).startswith(b"\x89PNG")

    answer = await evolution.emit(channel["instanceName"], evolution.connection_update(channel["instanceName"], "open"))
    assert answer.status_code == 200, answer.text
    await api.wait_until(lambda: _status(owner, channel["id"], "CONNECTED"))
    changed = await events.wait_for(lambda e: e.event == "channel.status.changed"
                                    and e.data["channelId"] == channel["id"] and e.data["status"] == "CONNECTED")
    assert changed.data["previousStatus"] == "CONNECTING" and changed.data["channelType"] == "EVOLUTION"
    assert_problem(await owner.get(f"{CHANNELS}/{channel['id']}/qr"), 409)
    status = (await owner.get(f"{CHANNELS}/{channel['id']}/status")).json()
    assert status == {"status": "CONNECTED", "statusReason": status["statusReason"], "providerState": "open"}

    await evolution.emit(channel["instanceName"], evolution.connection_update(channel["instanceName"], "close"))
    await api.wait_until(lambda: _status(owner, channel["id"], "DISCONNECTED"))


async def _status(owner, channel_id, expected):
    return (await owner.get(f"{CHANNELS}/{channel_id}")).json()["status"] == expected


async def test_evolution_webhooks_need_the_channel_secret_and_the_wrapped_body(api, owner, evolution, anonymous):
    channel = await api.evolution_channel()
    url = f"/api/webhooks/evolution/{channel['id']}"
    body = evolution.message_upsert(channel["instanceName"], "5511900000001", "hola")
    assert_problem(await anonymous.post(url, json=body), 401)
    assert_problem(await anonymous.post(url, json=body, headers={"x-webhook-secret": "guess"}), 401)
    assert_problem(await evolution.emit(channel["instanceName"], b"{not json"), 400)
    assert_problem(await evolution.emit(channel["instanceName"], {"key": {"id": "x"}}), 400)  # flat: not wrapped
    assert_problem(await anonymous.post(f"/api/webhooks/evolution/{uuid.uuid4()}", json=body,
                                        headers={"x-webhook-secret": "x"}), 404)
    assert await api.conversation_of(channel["id"], "5511900000001") is None


async def test_an_instance_name_in_use_or_an_unreachable_server_store_nothing(api, owner, evolution):
    channel = await api.evolution_channel()
    body = {"name": "Dup", "type": "EVOLUTION", "apiUrl": evolution.url, "apiKey": evolution.api_key,
            "instanceName": channel["instanceName"]}
    assert_problem(await owner.post(CHANNELS, json=body), 409)
    body |= {"instanceName": "fresh-" + uuid.uuid4().hex[:8], "apiKey": "wrong-key"}
    assert_problem(await owner.post(CHANNELS, json=body), 502)
    body |= {"apiUrl": "http://127.0.0.1:9", "apiKey": evolution.api_key}
    assert (await owner.post(CHANNELS, json=body)).status_code in (502, 503)
    names = [c["name"] for c in (await owner.get(CHANNELS, params={"limit": 100})).json()["items"]]
    assert "Dup" not in names


async def test_cloud_channel_shows_the_verify_token_once_and_masks_every_secret(api, owner, anonymous):
    channel = await api.cloud_channel(verifyToken="my-verify-token-1234")
    assert channel["verifyToken"] == "my-verify-token-1234"
    assert channel["webhookUrl"].endswith(f"/api/webhooks/whatsapp/{channel['id']}")
    read = (await owner.get(f"{CHANNELS}/{channel['id']}")).json()
    assert read["verifyToken"] == "****1234"
    assert read["accessToken"] == "****" + channel["_token"][-4:]
    assert read["appSecret"] == "****" + channel["_appSecret"][-4:]
    generated = await api.cloud_channel()
    assert len(generated["verifyToken"]) >= 24

    url = f"/api/webhooks/whatsapp/{channel['id']}"
    ok = await anonymous.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1234",
                                          "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert_problem(await anonymous.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                    "hub.challenge": "1"}), 403)
    assert (await owner.get(f"{CHANNELS}/{channel['id']}")).json()["status"] == "CONNECTED"

    dup = {"name": "x", "type": "CLOUD_API", "phoneNumberId": channel["phoneNumberId"], "accessToken": "abcd1234",
           "appSecret": "abcd1234"}
    assert_problem(await owner.post(CHANNELS, json=dup), 409)


async def test_a_secret_of_four_characters_is_never_read_back(api, owner):
    channel = await api.cloud_channel(verifyToken="abcd")
    assert channel["verifyToken"] == "abcd"  # shown once, to paste into Meta
    assert (await owner.get(f"{CHANNELS}/{channel['id']}")).json()["verifyToken"] == "****"
    updated = await owner.patch(f"{CHANNELS}/{channel['id']}", json={"verifyToken": "wxyz"})
    assert updated.status_code == 200 and updated.json()["verifyToken"] == "****", updated.text


async def test_bad_channel_input_is_a_clear_422(owner):
    for body in [{"name": "x", "type": "CLOUD_API", "phoneNumberId": "1"},
                 {"name": "x", "type": "EVOLUTION", "apiUrl": "ftp://x", "apiKey": "abcd", "instanceName": "a"},
                 {"name": "x", "type": "EVOLUTION", "apiUrl": "http://e", "apiKey": "abcd", "instanceName": "a",
                  "accessToken": "abcd"},
                 {"name": " ", "type": "CLOUD_API"}, {"type": "SMS"}, {"name": "x", "type": "EVOLUTION", "extra": 1}]:
        assert_problem(await owner.post(CHANNELS, json=body), 422)
    assert_problem(await owner.get(f"{CHANNELS}/{uuid.uuid4()}"), 404)


async def test_channel_test_checks_credentials_and_an_expired_token_puts_it_in_error(api, owner, graph, events):
    channel = await api.cloud_channel()
    result = (await owner.post(f"{CHANNELS}/{channel['id']}/test")).json()
    assert result["ok"] is True and result["status"] == "CONNECTED"
    graph.expire_token(channel["phoneNumberId"])
    result = (await owner.post(f"{CHANNELS}/{channel['id']}/test")).json()
    assert result["ok"] is False and result["status"] == "ERROR"
    await events.wait_for(lambda e: e.event == "channel.status.changed" and e.data["channelId"] == channel["id"]
                          and e.data["status"] == "ERROR")
    graph.numbers[channel["phoneNumberId"]]["expired"] = False
    new_token = "EAAGnew" + uuid.uuid4().hex
    graph.numbers[channel["phoneNumberId"]]["token"] = new_token
    updated = await owner.patch(f"{CHANNELS}/{channel['id']}", json={"accessToken": new_token})
    assert updated.status_code == 200 and updated.json()["status"] == "CONNECTED", updated.text
    assert updated.json()["accessToken"] == "****" + new_token[-4:]
    assert_problem(await owner.patch(f"{CHANNELS}/{channel['id']}", json={"apiKey": "abcdef"}), 422)


async def test_deleted_channel_disappears_and_its_webhooks_answer_404(api, owner, evolution):
    channel = await api.evolution_channel()
    assert (await owner.delete(f"{CHANNELS}/{channel['id']}")).status_code == 204
    assert channel["instanceName"] not in evolution.instances
    assert_problem(await owner.get(f"{CHANNELS}/{channel['id']}"), 404)
    assert_problem(await api.client.post(f"/api/webhooks/evolution/{channel['id']}", json={}), 404)


async def _message(api, conversation_id, message_id, *, settled=False):
    found = [m for m in await api.messages(conversation_id) if m["id"] == message_id]
    return found[0] if found and (not settled or found[0]["status"] != "QUEUED") else None


async def _raced_reply(api, conversation_id, channel_id, text):
    """An agent's reply queued as the channel's delete committed (written straight, as that race would leave it),
    once the outbound worker has settled it."""
    raced = uuid.uuid4()
    await api.execute("INSERT INTO messages (id, created_at, updated_at, conversation_id, channel_id, direction, "
                      "sender, type, text, status, attempts, next_attempt_at) VALUES (:id, now(), now(), :conv, :c, "
                      "'OUTBOUND', 'AGENT', 'text', :text, 'QUEUED', 0, now())",
                      id=raced, conv=conversation_id, c=channel_id, text=text)
    await api.execute("NOTIFY conversations_outbound")
    return await api.wait_until(lambda: _message(api, conversation_id, str(raced), settled=True), timeout=15)


async def test_a_deleted_channel_fails_its_queued_reply_and_refuses_new_ones(api, owner, graph):
    """A reply held (the token had expired) when the channel is deleted ends FAILED ("channel deleted") and a
    person's new message on its conversation is a 409 problem, not queued."""
    from common.testing.fake_whatsapp import text_message

    channel = await api.cloud_channel()
    number, contact = channel["phoneNumberId"], "573005550101"
    await api.post_cloud(channel, text_message(number, contact, "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))
    url = f"/api/platform/operations/conversations/{conversation['id']}/messages"
    graph.expire_token(number)
    held = (await owner.post(url, json={"text": "¿Sigue ahí?"})).json()
    await api.wait_until(lambda: _status(owner, channel["id"], "ERROR"))
    assert (await owner.delete(f"{CHANNELS}/{channel['id']}")).status_code == 204
    graph.numbers[number]["expired"] = False
    message = await api.wait_until(lambda: _message(api, conversation["id"], held["id"], settled=True))
    assert message["status"] == "FAILED" and message["failureReason"] == "channel deleted"
    refused = assert_problem(await owner.post(url, json={"text": "otro"}), 409)
    assert "deleted" in refused["detail"]
    assert [m for m in graph.sent if m["to"] == contact] == []


async def test_replies_queued_on_a_channel_as_it_is_deleted_are_not_sent(api, owner, graph):
    """What raced the delete: an inbound message stored before it and processed after is recorded with no agent
    reply; a reply queued as it committed is FAILED ("channel deleted") by the outbound worker, not sent."""
    from common.testing.fake_whatsapp import text_message

    channel = await api.cloud_channel()
    await api.agent(channel["id"], greeting="Hola")
    number, contact, late = channel["phoneNumberId"], "573005550201", "573005550202"
    await api.post_cloud(channel, text_message(number, contact, "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))
    await api.wait_until(lambda: [m for m in graph.sent if m["to"] == contact])  # the greeting
    assert (await owner.delete(f"{CHANNELS}/{channel['id']}")).status_code == 204

    item = text_message(number, late, "tarde")["entry"][0]["changes"][0]["value"]["messages"][0]
    payload = {"contact": late, "contactName": None, "externalId": item["id"], "type": "text", "text": "tarde",
               "caption": None, "timestamp": None, "raw": item}
    await api.execute("INSERT INTO inbound_events (id, created_at, updated_at, channel_id, kind, external_id, payload, "
                      "attempts) VALUES (:id, now(), now(), :c, 'message', :e, CAST(:p AS jsonb), 0)",
                      id=uuid.uuid4(), c=channel["id"], e=item["id"], p=json.dumps(payload))
    message = await _raced_reply(api, conversation["id"], channel["id"], "respuesta tardía")
    assert message["status"] == "FAILED" and message["failureReason"] == "channel deleted"

    late_conversation = await api.wait_until(lambda: api.scalar(
        "SELECT id FROM conversations WHERE channel_id = :c AND contact = :n", c=channel["id"], n=late))
    assert await api.scalar("SELECT count(*) FROM messages WHERE conversation_id = :c AND direction = 'OUTBOUND'",
                            c=late_conversation) == 0
    assert [m["text"] for m in graph.sent if m["to"] in (contact, late)] == ["Hola"]


class _FlakyEvolution(FakeServer):
    """The Evolution server behind a proxy that answers 503 to the routes in `failing` (e.g. "webhook/set"): the
    server falling over between two calls of one create."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.port, self.failing = upstream, free_port(), set()
        self.lost: set[str] = set()  # routes passed on whose answer is lost (a 504 instead)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._forward)

    async def _forward(self, request: web.Request) -> web.Response:
        if "/".join(request.path.split("/")[1:3]) in self.failing:
            return web.json_response({"status": 503, "error": "Service Unavailable"}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("apikey", "content-type")}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.request(request.method, self.upstream + request.path_qs, headers=headers,
                                          content=await request.read())
        if "/".join(request.path.split("/")[1:3]) in self.lost:
            return web.json_response({"status": 504, "error": "Gateway Timeout"}, status=504)
        return web.Response(body=answer.content, status=answer.status_code, content_type="application/json")


def _new_instance(flaky, evolution):
    """A new instance name, and the create of an EVOLUTION channel for it through the flaky proxy."""
    name = f"inst-{uuid.uuid4().hex[:10]}"
    return name, {"name": "Ventas", "type": "EVOLUTION", "apiUrl": flaky.url, "apiKey": evolution.api_key,
                  "instanceName": name}


async def test_a_create_that_fails_after_making_the_instance_deletes_it_so_a_retry_succeeds(api, owner, evolution):
    """The server fell over after making the instance (its webhook not set): the create deletes the instance again
    and answers 503, and a retry makes the channel."""
    async with _FlakyEvolution(evolution.url) as flaky:
        name, body = _new_instance(flaky, evolution)
        flaky.failing = {"webhook/set"}
        assert_problem(await owner.post(CHANNELS, json=body), 503)
        assert name not in evolution.instances
        flaky.failing = set()
        retried = await owner.post(CHANNELS, json=body)
        assert retried.status_code == 201, retried.text
        assert retried.json()["instanceName"] == name and evolution.instances[name].get("webhook")


async def test_an_instance_whose_create_answer_was_lost_is_adopted_by_the_next_create(owner, evolution):
    """The server made the instance but its answer was lost (a proxy's 504): the create answers 503 without
    asking again (a second POST would meet its own instance as "name in use"), and the next create adopts it."""
    async with _FlakyEvolution(evolution.url) as flaky:
        name, body = _new_instance(flaky, evolution)
        flaky.lost = {"instance/create"}
        assert_problem(await owner.post(CHANNELS, json=body), 503)
        assert name in evolution.instances
        flaky.lost = set()
        created = await owner.post(CHANNELS, json=body)
        assert created.status_code == 201, created.text
        assert created.json()["instanceName"] == name and evolution.instances[name].get("webhook")
    bad_url = body | {"apiUrl": "http://evo\u0000.example", "instanceName": f"inst-{uuid.uuid4().hex[:10]}"}
    assert_problem(await owner.post(CHANNELS, json=bad_url), 422, detail="NUL")


async def test_a_name_the_database_cannot_store_is_refused_before_any_instance_is_made(owner, evolution):
    name = f"inst-{uuid.uuid4().hex[:10]}"
    body = {"name": "Ven\u0000tas", "type": "EVOLUTION", "apiUrl": evolution.url, "apiKey": evolution.api_key,
            "instanceName": name}
    assert_problem(await owner.post(CHANNELS, json=body), 422, detail="NUL")
    # Refused as input: the Evolution server was never asked (not made, then deleted again).
    assert [r for r in evolution.requests if name in r.path or name in str(r.body)] == []


async def test_an_instance_left_by_a_failed_create_is_adopted_by_the_retry_and_no_one_elses_is(api, owner, evolution):
    """The server fell over after making the instance: neither the webhook nor the cleanup went through. The next
    create of that name adopts the instance (fresh QR, our webhook); a name taken by someone else stays a 409."""
    async with _FlakyEvolution(evolution.url) as flaky:
        name, body = _new_instance(flaky, evolution)
        flaky.failing = {"webhook/set", "instance/delete"}
        assert_problem(await owner.post(CHANNELS, json=body), 503)
        assert name in evolution.instances and not evolution.instances[name].get("webhook")
        flaky.failing = set()
        created = await owner.post(CHANNELS, json=body)
        assert created.status_code == 201, created.text
        channel = created.json()
        assert channel["instanceName"] == name
        qr = await owner.get(f"{CHANNELS}/{channel['id']}/qr")
        assert qr.status_code == 200 and qr.json()["dataUrl"].startswith("data:image/png;base64,")
        answer = await evolution.emit(name, evolution.message_upsert(name, "5511933330000", "hola"))
        assert answer.status_code == 200 and answer.json() == {"received": 1, "new": 1}
        await api.wait_until(lambda: api.conversation_of(channel["id"], "5511933330000"))

        flaky.failing = {"instance/delete"}  # deleting the channel could not delete its instance: still ours
        assert (await owner.delete(f"{CHANNELS}/{channel['id']}")).status_code == 204
        assert name in evolution.instances
        flaky.failing = set()
        again = await owner.post(CHANNELS, json=body | {"name": "Ventas 2"})
        assert again.status_code == 201, again.text
        answer = await evolution.emit(name, evolution.message_upsert(name, "5511933330001", "hola"))
        assert answer.status_code == 200 and answer.json() == {"received": 1, "new": 1}

        theirs = f"inst-{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient() as client:  # made on the server by someone else
            made = await client.post(f"{evolution.url}/instance/create", headers={"apikey": evolution.api_key},
                                     json={"instanceName": theirs, "integration": "WHATSAPP-BAILEYS"})
            assert made.status_code == 201
        assert_problem(await owner.post(CHANNELS, json=body | {"instanceName": theirs}), 409)
        assert not evolution.instances[theirs].get("webhook")


async def test_a_reply_queued_as_a_channel_in_error_is_deleted_ends_failed(api, owner, graph):
    """A channel in ERROR holds its messages (until new credentials); deleted, it holds them no more: a reply that
    raced its delete is FAILED ("channel deleted"), not QUEUED for ever."""
    from common.testing.fake_whatsapp import text_message

    channel = await api.cloud_channel()
    number, contact = channel["phoneNumberId"], "573005550301"
    await api.post_cloud(channel, text_message(number, contact, "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))
    graph.expire_token(number)
    await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages", json={"text": "uno"})
    await api.wait_until(lambda: _status(owner, channel["id"], "ERROR"))
    assert (await owner.delete(f"{CHANNELS}/{channel['id']}")).status_code == 204
    message = await _raced_reply(api, conversation["id"], channel["id"], "tarde")
    assert message["status"] == "FAILED" and message["failureReason"] == "channel deleted"


async def test_a_second_create_of_an_instance_under_way_is_a_409_not_a_wait(api, owner, evolution, db):
    """Two creates of one instance at once would both make (or adopt) it: the second is refused at once, without
    holding a connection while the first talks to the Evolution server."""
    from conversations.channel.repository import instance_lock_key

    name = f"inst-{uuid.uuid4().hex[:10]}"
    body = {"name": "Ventas", "type": "EVOLUTION", "apiUrl": evolution.url, "apiKey": evolution.api_key,
            "instanceName": name}
    async with db.connect() as held:  # what a create under way holds
        await held.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"),
                           {"key": instance_lock_key(evolution.url, name)})
        assert_problem(await owner.post(CHANNELS, json=body), 409, detail="under way")
        await held.execute(text("SELECT pg_advisory_unlock_all()"))
    assert name not in evolution.instances
    assert (await owner.post(CHANNELS, json=body)).status_code == 201
