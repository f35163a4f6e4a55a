"""Cloud API inbound: signed on the raw body, batched, at least once (deduplicated), routed by number;
outbound errors as Meta answers them."""

from __future__ import annotations

import json
from pathlib import Path

from common.testing.checks import assert_problem
from common.testing.fake_whatsapp import batch, text_message, wamid

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "specs" / "whatsapp-cloud" / "examples" / \
    "webhook-payloads.json"


async def _counts(api, channel_id):
    conversations = await api.scalar("SELECT count(*) FROM conversations WHERE channel_id = :c", c=channel_id)
    messages = await api.scalar("SELECT count(*) FROM messages WHERE channel_id = :c", c=channel_id)
    stored = await api.scalar("SELECT count(*) FROM inbound_events WHERE channel_id = :c", c=channel_id)
    return conversations, messages, stored


async def test_a_batch_with_three_messages_and_two_statuses_is_recorded_once(api, graph, owner):
    channel = await api.cloud_channel()
    await api.agent(channel["id"], greeting="¡Hola! Soy el asistente.")
    number = channel["phoneNumberId"]
    first = await api.post_cloud(channel, text_message(number, "573001112233", "Hola", name="Ana"))
    assert first.status_code == 200, first.text
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573001112233"))
    greeting = await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573001112233"])
    assert greeting[0]["text"] == "¡Hola! Soy el asistente." and greeting[0]["phone_number_id"] == number
    sent_id = greeting[0]["id"]
    await api.wait_until(lambda: _has(api, conversation["id"], lambda m: m["externalId"] == sent_id
                                      and m["status"] == "SENT"))

    body = batch(number, messages=[("573001112233", "¿Precio?", None), ("573001112233", "¿Envío?", None),
                                   ("573009998877", "Buenas", None)],
                 statuses=[(sent_id, "delivered", "573001112233"), (sent_id, "read", "573001112233")],
                 names={"573009998877": "Luis"})
    answer = await api.post_cloud(channel, body)
    assert answer.status_code == 200 and answer.json() == {"received": 5, "new": 5}
    await api.wait_until(lambda: _has(api, conversation["id"], lambda m: m["externalId"] == sent_id
                                      and m["status"] == "READ"))
    await api.wait_until(lambda: api.conversation_of(channel["id"], "573009998877"))
    before = await _counts(api, channel["id"])
    assert before[:2] == (2, 6)  # 4 inbound + 2 greetings

    again = await api.post_cloud(channel, body)  # Meta delivers at least once
    assert again.status_code == 200 and again.json() == {"received": 5, "new": 0}
    late = await api.post_cloud(channel, batch(number, statuses=[(sent_id, "delivered", "573001112233")]))
    assert late.json()["new"] == 0  # the same status again is a duplicate too
    marker = await api.post_cloud(channel, text_message(number, "573005550000", "marker"))
    assert marker.status_code == 200
    await api.wait_until(lambda: api.conversation_of(channel["id"], "573005550000"))
    assert (await _counts(api, channel["id"]))[1] == before[1] + 2  # only the marker and its greeting
    messages = await api.messages(conversation["id"])
    assert [m["text"] for m in messages if m["direction"] == "INBOUND"] == ["Hola", "¿Precio?", "¿Envío?"]
    assert next(m for m in messages if m["externalId"] == sent_id)["status"] == "READ"


async def _has(api, conversation_id, predicate):
    return any(predicate(m) for m in await api.messages(conversation_id))


async def test_a_forged_signature_or_bad_body_stores_nothing(api, anonymous):
    channel = await api.cloud_channel()
    body = text_message(channel["phoneNumberId"], "573001234567", "forged")
    assert_problem(await api.post_cloud(channel, body, secret="not-the-app-secret"), 401)
    raw = json.dumps(body).encode()
    url = f"/api/webhooks/whatsapp/{channel['id']}"
    assert_problem(await anonymous.post(url, content=raw, headers={"content-type": "application/json"}), 401)
    assert_problem(await api.post_cloud(channel, b"{not json"), 400)
    assert_problem(await api.post_cloud(channel, {"object": "page", "entry": []}), 400)
    big = json.dumps(text_message(channel["phoneNumberId"], "573001234567", "x" * 1_100_000)).encode()
    assert (await api.post_cloud(channel, big)).status_code == 413
    assert await _counts(api, channel["id"]) == (0, 0, 0)


async def test_every_meta_message_example_is_accepted_and_recorded_with_its_type(api):
    channel = await api.cloud_channel()
    examples = json.loads(EXAMPLES.read_text())["examples"]
    expected = {}
    for name, example in examples.items():
        for entry in example["entry"]:
            for change in entry["changes"]:
                change["value"].setdefault("metadata", {})["phone_number_id"] = channel["phoneNumberId"]
                for message in change["value"].get("messages", []):
                    message["id"] = wamid()  # Meta's examples share ids; each is its own message here
                    expected[message["id"]] = message["type"]
        answer = await api.post_cloud(channel, example)
        assert answer.status_code == 200, (name, answer.text)
    assert len(expected) == 13

    async def recorded():
        count = await api.scalar("SELECT count(*) FROM messages WHERE channel_id = :c", c=channel["id"])
        return count == len(expected)

    await api.wait_until(recorded)
    conversation = await api.conversation_of(channel["id"], "16505551234")
    messages = await api.messages(conversation["id"])
    assert {m["externalId"]: m["type"] for m in messages} == expected
    by_type = {m["type"]: m for m in messages}
    assert by_type["image"]["caption"] and by_type["text"]["text"] and by_type["location"]["caption"]
    assert conversation["contactName"] == "Sheena Nelson"


async def test_outside_the_24h_window_the_message_fails_with_the_reason_and_is_not_retried(api, graph, owner):
    channel = await api.cloud_channel()
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573004440000", "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573004440000"))
    graph.fail_next(131047)
    reply = await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages",
                             json={"text": "¿Sigue interesado?"})
    assert reply.status_code == 202 and reply.json()["status"] == "QUEUED"
    failed = await api.wait_until(lambda: _find(api, conversation["id"], reply.json()["id"], "FAILED"))
    assert "131047" in failed["failureReason"] and failed["attempts"] == 1
    graph.fail_next(130429, times=2)  # throughput limit: backs off, then goes
    second = await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages",
                              json={"text": "Segundo intento"})
    sent = await api.wait_until(lambda: _find(api, conversation["id"], second.json()["id"], "SENT"))
    assert [m["text"] for m in graph.sent if m["to"] == "573004440000"] == ["Segundo intento"]
    assert sent["externalId"].startswith("wamid.")


async def _find(api, conversation_id, message_id, status):
    found = [m for m in await api.messages(conversation_id) if m["id"] == message_id and m["status"] == status]
    return found[0] if found else None


async def _given_up(api, conversation_id, message_id):
    """Once the provider has failed `message_id` twice, it is made WHATSAPP_RETRY_GIVE_UP_HOURS old: the message, FAILED."""

    async def retried():
        found = await _find(api, conversation_id, message_id, "QUEUED")
        return found and found["attempts"] >= 2

    await api.wait_until(retried, timeout=30)
    await api.execute("UPDATE messages SET created_at = now() - interval '25 hours' WHERE id = :id", id=message_id)
    return await api.wait_until(lambda: _find(api, conversation_id, message_id, "FAILED"), timeout=30)


async def test_an_expired_token_puts_the_channel_in_error_and_holds_the_message(api, graph, owner, events):
    channel = await api.cloud_channel()
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573007770000", "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573007770000"))
    graph.expire_token(number)
    reply = await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages",
                             json={"text": "Hola de nuevo"})
    await events.wait_for(lambda e: e.event == "channel.status.changed" and e.data["channelId"] == channel["id"]
                          and e.data["status"] == "ERROR")
    held = await _find(api, conversation["id"], reply.json()["id"], "QUEUED")
    assert held is not None and "190" in held["failureReason"]
    new_token = "EAAGfresh" + graph.numbers[number]["token"][-8:]
    graph.numbers[number].update(token=new_token, expired=False)
    patched = await owner.patch(f"/api/platform/operations/channels/{channel['id']}", json={"accessToken": new_token})
    assert patched.json()["status"] == "CONNECTED"
    await api.wait_until(lambda: _find(api, conversation["id"], reply.json()["id"], "SENT"))


async def test_processed_webhook_rows_go_after_their_retention(api, db):
    from sqlalchemy import text

    from common.db import Database
    from conversations.webhook.handlers import purge_inbound

    channel = await api.cloud_channel()
    await api.post_cloud(channel, text_message(channel["phoneNumberId"], "573006660000", "hola"))
    await api.wait_until(lambda: api.conversation_of(channel["id"], "573006660000"))
    async with db.begin() as conn:
        await conn.execute(text("UPDATE inbound_events SET processed_at = now() - interval '8 days' "
                                "WHERE channel_id = :c"), {"c": channel["id"]})
    database = Database(str(db.url.render_as_string(hide_password=False)), pool_size=1)
    try:
        assert await purge_inbound(database, 168) >= 1
    finally:
        await database.dispose()
    assert await api.scalar("SELECT count(*) FROM inbound_events WHERE channel_id = :c", c=channel["id"]) == 0
    assert await api.scalar("SELECT count(*) FROM messages WHERE channel_id = :c", c=channel["id"]) == 1


async def test_a_failed_status_marks_the_message_failed_with_metas_reason(api, graph, owner):
    channel = await api.cloud_channel()
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573008880000", "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573008880000"))
    reply = await owner.post(f"/api/platform/operations/conversations/{conversation['id']}/messages",
                             json={"text": "¿Sigues ahí?"})
    sent = await api.wait_until(lambda: _find(api, conversation["id"], reply.json()["id"], "SENT"))
    failed = batch(number, statuses=[(sent["externalId"], "failed", "573008880000")],
                   errors={sent["externalId"]: {"code": 131026, "title": "Message undeliverable"}})
    assert (await api.post_cloud(channel, failed)).json() == {"received": 1, "new": 1}
    done = await api.wait_until(lambda: _find(api, conversation["id"], reply.json()["id"], "FAILED"))
    assert done["failureReason"] == "131026: Message undeliverable"


async def test_a_new_contacts_replies_keep_their_order_when_the_first_is_throttled(api, graph):
    """The greeting of a conversation goes to the provider as the batch that started it commits; Meta throttles
    it (130429): it is tried again, and the agent's next reply in that conversation waits for it."""
    channel = await api.cloud_channel()
    await api.agent(channel["id"], greeting="¡Hola!", rules=[{"keywords": ["precio"], "reply": "Cuesta 10"}])
    number, contact = channel["phoneNumberId"], "573004440001"
    graph.fail_next(130429)
    body = batch(number, messages=[(contact, "Buenas", None), (contact, "¿precio?", None)])
    assert (await api.post_cloud(channel, body)).json() == {"received": 2, "new": 2}
    sent = await api.wait_until(lambda: (texts := [m["text"] for m in graph.sent if m["to"] == contact])[1:] and texts)
    assert sent == ["¡Hola!", "Cuesta 10"]
    tried = [r["body"]["text"]["body"] for r in graph.requests if r["body"].get("to") == contact]
    assert tried == ["¡Hola!", "¡Hola!", "Cuesta 10"]  # the throttled greeting again, then the next reply
    conversation = await api.conversation_of(channel["id"], contact)
    statuses = {m["text"]: m["status"] for m in await api.messages(conversation["id"]) if m["direction"] == "OUTBOUND"}
    assert statuses == {"¡Hola!": "SENT", "Cuesta 10": "SENT"}


async def test_a_message_the_provider_keeps_failing_is_given_up_and_the_next_one_goes(api, graph, owner):
    channel = await api.cloud_channel()
    contact = "573009990000"
    await api.post_cloud(channel, text_message(channel["phoneNumberId"], contact, "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))
    url = f"/api/platform/operations/conversations/{conversation['id']}/messages"
    graph.fail_next(131000, times=10_000)  # Meta's unknown error, answered as HTTP 500, for as long as it takes
    try:
        first = (await owner.post(url, json={"text": "uno"})).json()
        second = (await owner.post(url, json={"text": "dos"})).json()
        failed = await _given_up(api, conversation["id"], first["id"])
        assert failed["failureReason"].startswith("gave up after") and "HTTP 500" in failed["failureReason"]
    finally:
        graph._failures.clear()
    await api.wait_until(lambda: _find(api, conversation["id"], second["id"], "SENT"), timeout=30)
    assert [m["text"] for m in graph.sent if m["to"] == contact] == ["dos"]


async def test_a_nul_character_is_dropped_and_the_rest_of_the_delivery_is_stored(api, graph):
    """PostgreSQL text and jsonb cannot hold U+0000: a message carrying one (in its text, caption or the
    contact's name) is stored without it, and the other messages of the same POST are stored too."""
    channel = await api.cloud_channel()
    number = channel["phoneNumberId"]
    body = batch(number, messages=[("573001230000", "ho\u0000la", None), ("573001230000", "sin nul", None)],
                 names={"573001230000": "An\u0000a"})
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append({"from": "573001230000", "id": wamid(), "timestamp": value["messages"][0]["timestamp"],
                              "type": "image", "image": {"id": "1\u00002", "caption": "fo\u0000to",
                                                         "mime_type": "image/jpeg"}})
    answer = await api.post_cloud(channel, body)
    assert answer.status_code == 200 and answer.json() == {"received": 3, "new": 3}, answer.text
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573001230000"))

    async def stored():
        messages = await api.messages(conversation["id"])
        return messages if len(messages) == 3 else None

    messages = await api.wait_until(stored)
    assert [(m["text"], m["caption"]) for m in messages] == [("hola", None), ("sin nul", None), (None, "foto")]
    assert conversation["contactName"] == "Ana"


async def test_metas_throttling_codes_are_retried_later_and_still_given_up(api, graph, owner):
    """131056 (too many messages to one recipient) and 131048 (spam rate limit) are throttling in Meta's error
    codes, like 130429, 4 and 80007: the message waits and goes; a message throttled past
    WHATSAPP_RETRY_GIVE_UP_HOURS is FAILED all the same."""
    channel = await api.cloud_channel()
    contact = "573009990011"
    await api.post_cloud(channel, text_message(channel["phoneNumberId"], contact, "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))
    url = f"/api/platform/operations/conversations/{conversation['id']}/messages"
    for code in (131056, 131048):
        graph.fail_next(code, times=4)  # more than one call's own tries: the message is queued again, then goes
        sent = (await owner.post(url, json={"text": f"tras {code}"})).json()
        message = await api.wait_until(lambda sent=sent: _find(api, conversation["id"], sent["id"], "SENT"), timeout=30)
        assert message["attempts"] >= 2
    assert [m["text"] for m in graph.sent if m["to"] == contact] == ["tras 131056", "tras 131048"]

    graph.fail_next(131056, times=10_000)
    try:
        stuck = (await owner.post(url, json={"text": "nunca"})).json()
        failed = await _given_up(api, conversation["id"], stuck["id"])
        assert failed["failureReason"].startswith("gave up after") and "131056" in failed["failureReason"]
    finally:
        graph._failures.clear()
