"""Own operations over WhatsApp, through the gateway: an Evolution channel is paired, a contact writes, a
lead appears, the agent greets, a subscriber receives the conversation's events in order, a person takes
over, and the idle conversation ends. Then the Cloud API's handshake and a signed, replayed batch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.testing.fake_whatsapp import batch, sign

CHANNELS = "/api/platform/operations/channels"
CONVERSATIONS = "/api/platform/operations/conversations"


async def _wait(check, timeout=20.0):
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.1)


async def test_evolution_story_from_qr_to_idle_end(gateway, owner_headers, receiver, evolution, stack):
    h = owner_headers
    hook = receiver.hook()
    endpoint = await gateway.post("/api/platform/webhooks", headers=h, json={
        "url": hook.url, "events": ["conversation.*"], "ordered": True, "description": "whatsapp e2e"})
    assert endpoint.status_code == 201 and endpoint.json()["status"] == "ACTIVE", endpoint.text

    instance = f"e2e-{uuid.uuid4().hex[:8]}"
    created = await gateway.post(CHANNELS, headers=h, json={"name": "Ventas WhatsApp", "type": "EVOLUTION",
                                                            "apiUrl": evolution.url, "apiKey": evolution.api_key,
                                                            "instanceName": instance})
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["status"] == "CONNECTING" and channel["apiKey"].startswith("****")
    png = await gateway.get(f"{CHANNELS}/{channel['id']}/qr.png", headers=h)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")

    assert (await evolution.emit(instance, evolution.connection_update(instance, "open"))).status_code == 200

    async def connected():
        return (await gateway.get(f"{CHANNELS}/{channel['id']}", headers=h)).json()["status"] == "CONNECTED"

    await _wait(connected)
    agent = await gateway.post("/api/platform/operations/agents", headers=h, json={
        "name": "Sofía", "channelId": channel["id"], "greeting": "¡Hola! Soy Sofía, ¿en qué te ayudo?"})
    assert agent.status_code == 201, agent.text

    contact, name = "5511987650001", f"Cliente {uuid.uuid4().hex[:6]}"
    answer = await evolution.emit(instance, evolution.message_upsert(instance, contact, "Hola, quiero info",
                                                                     push_name=name))
    assert answer.status_code == 200 and answer.json()["new"] == 1

    async def lead():
        page = (await gateway.get("/api/platform/operations/leads", headers=h, params={"q": name})).json()
        return page["items"][0] if page["items"] else None

    found = await _wait(lead)
    assert found["phone"] == contact and found["ownOperation"] is True and found["source"] == "whatsapp"
    await _wait(lambda: _true([m for m in evolution.sent if m["number"] == contact]))
    assert [m["text"] for m in evolution.sent if m["number"] == contact] == ["¡Hola! Soy Sofía, ¿en qué te ayudo?"]

    conversation = (await gateway.get(CONVERSATIONS, headers=h, params={"q": contact})).json()["items"][0]
    cid = conversation["id"]
    assert found["conversationId"] == cid

    def mine():
        return [r.json() for r in hook.events() if r.json()["data"].get("conversationId") == cid]

    await hook.wait_for(lambda _: len(mine()) >= 3, timeout=20)
    assert [e["event"] for e in mine()][:3] == ["conversation.started", "conversation.message.received",
                                                "conversation.message.sent"]
    assert mine()[0]["data"]["contact"] == contact and mine()[0]["data"]["contactName"] == name

    reply = await gateway.post(f"{CONVERSATIONS}/{cid}/messages", headers=h, json={"text": "Soy Carlos, dime"})
    assert reply.status_code == 202, reply.text
    await _wait(lambda: _true(len([m for m in evolution.sent if m["number"] == contact]) == 2))
    await evolution.emit(instance, evolution.message_upsert(instance, contact, "¿Tienen planes anuales?"))
    marker = "5511987650999"
    await evolution.emit(instance, evolution.message_upsert(instance, marker, "marker"))
    await _wait(lambda: _true([m for m in evolution.sent if m["number"] == marker]))
    assert [m["text"] for m in evolution.sent if m["number"] == contact] == [
        "¡Hola! Soy Sofía, ¿en qué te ayudo?", "Soy Carlos, dime"]  # the agent stayed quiet

    engine = create_async_engine(stack.database_urls["conversations"])
    try:
        async with engine.begin() as conn:  # a day of silence (CONVERSATION_IDLE_MINUTES defaults to 1440)
            await conn.execute(text("UPDATE conversations SET last_message_at = :t WHERE id = :id"),
                               {"t": datetime.now(UTC) - timedelta(minutes=1441), "id": cid})
    finally:
        await engine.dispose()
    await hook.wait_for(lambda _: any(e["event"] == "conversation.ended" for e in mine()), timeout=20)
    events = [e["event"] for e in mine()]
    assert events == ["conversation.started", "conversation.message.received", "conversation.message.sent",
                      "conversation.message.sent", "conversation.message.received", "conversation.ended"]
    assert mine()[-1]["data"]["reason"] == "IDLE"


async def _true(value):
    return value


async def test_cloud_api_handshake_signed_batch_and_replay_through_the_gateway(gateway, owner_headers, graph):
    h = owner_headers
    number, token, secret = str(uuid.uuid4().int)[:15], "EAAG" + uuid.uuid4().hex, "app-" + uuid.uuid4().hex
    graph.add_number(number, token=token)
    created = await gateway.post(CHANNELS, headers=h, json={"name": "Soporte", "type": "CLOUD_API",
                                                            "phoneNumberId": number, "accessToken": token,
                                                            "appSecret": secret})
    assert created.status_code == 201, created.text
    channel = created.json()
    url = f"/api/webhooks/whatsapp/{channel['id']}"
    ok = await gateway.get(url, params={"hub.mode": "subscribe", "hub.verify_token": channel["verifyToken"],
                                        "hub.challenge": "424242"})
    assert ok.status_code == 200 and ok.text == "424242"
    assert (await gateway.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "no",
                                           "hub.challenge": "1"})).status_code == 403
    raw = json.dumps(batch(number, messages=[("573001230001", "hola", None), ("573001230002", "buenas", None),
                                             ("573001230001", "¿precio?", None)])).encode()
    headers = {"content-type": "application/json", "X-Hub-Signature-256": sign(secret, raw)}
    first = await gateway.post(url, content=raw, headers=headers)
    assert first.status_code == 200 and first.json() == {"received": 3, "new": 3}
    again = await gateway.post(url, content=raw, headers=headers)
    assert again.json() == {"received": 3, "new": 0}
    forged = await gateway.post(url, content=raw, headers=headers | {"X-Hub-Signature-256": sign("x", raw)})
    assert forged.status_code == 401

    async def recorded():
        items = (await gateway.get(CONVERSATIONS, headers=h, params={"channelId": channel["id"]})).json()["items"]
        return items if sum(c["messageCount"] for c in items) == 3 else None

    conversations = await _wait(recorded)
    assert sorted(c["contact"] for c in conversations) == ["573001230001", "573001230002"]
