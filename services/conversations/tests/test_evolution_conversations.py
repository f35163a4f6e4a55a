"""An Evolution channel's conversations: the agent greets, rules answer, a person takes over, events keep
each conversation's order, an idle conversation ends, a server that is down delays but never loses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from common.testing.checks import assert_problem

CONVERSATIONS = "/api/platform/operations/conversations"


async def _connected_channel(api, evolution):
    channel = await api.evolution_channel()
    await evolution.emit(channel["instanceName"], evolution.connection_update(channel["instanceName"], "open"))
    return channel


async def _contact_wrote(api, evolution, contact):
    """A connected channel on which `contact` wrote "hola": (channel, its conversation)."""
    channel = await _connected_channel(api, evolution)
    await evolution.emit(channel["instanceName"], evolution.message_upsert(channel["instanceName"], contact, "hola"))
    return channel, await api.wait_until(lambda: api.conversation_of(channel["id"], contact))


async def test_the_agent_greets_answers_by_rule_and_goes_quiet_once_a_person_answers(api, owner, evolution, events):
    channel = await _connected_channel(api, evolution)
    instance = channel["instanceName"]
    await api.agent(channel["id"], greeting="Hola, soy Sofía", rules=[
        {"keywords": ["precio", "costo"], "reply": "Nuestros planes empiezan en 10 USD"},
        {"keywords": ["precio"], "reply": "never: the first rule wins"}])
    contact = "5511911110000"
    await evolution.emit(instance, evolution.message_upsert(instance, contact, "Hola, ¿cuál es el PRECIO?",
                                                            push_name="Ana Souza"))
    await api.wait_until(lambda: len([m for m in evolution.sent if m["number"] == contact]) == 2)
    assert [m["text"] for m in evolution.sent if m["number"] == contact] == [
        "Hola, soy Sofía", "Nuestros planes empiezan en 10 USD"]
    conversation = await api.conversation_of(channel["id"], contact)
    assert conversation["contactName"] == "Ana Souza" and conversation["status"] == "OPEN"

    cid = conversation["id"]
    names = ["conversation.started", "conversation.message.received", "conversation.message.sent",
             "conversation.message.sent"]
    await events.wait_for(lambda e: e.event == "conversation.message.sent" and e.data["conversationId"] == cid
                          and e.data["text"].startswith("Nuestros"))
    mine = [e for e in events.matching(lambda e: e.data.get("conversationId") == cid)]
    assert [e.event for e in mine] == names
    assert mine[0].data["contact"] == contact and mine[0].data["contactName"] == "Ana Souza"
    assert mine[1].data["text"] == "Hola, ¿cuál es el PRECIO?" and mine[1].data["direction"] == "INBOUND"

    reply = await owner.post(f"{CONVERSATIONS}/{cid}/messages", json={"text": "Soy Carlos, te ayudo yo"})
    assert reply.status_code == 202 and reply.json()["sender"] == "PERSON"
    await api.wait_until(lambda: len([m for m in evolution.sent if m["number"] == contact]) == 3)
    await evolution.emit(instance, evolution.message_upsert(instance, contact, "¿y el precio anual?"))
    marker = "5511911119999"
    await evolution.emit(instance, evolution.message_upsert(instance, marker, "marker"))
    await api.wait_until(lambda: [m for m in evolution.sent if m["number"] == marker])
    assert [m["text"] for m in evolution.sent if m["number"] == contact][-1] == "Soy Carlos, te ayudo yo"
    detail = (await owner.get(f"{CONVERSATIONS}/{cid}")).json()
    assert detail["handedOff"] is True and detail["messageCount"] == 5


async def test_fromme_is_skipped_lid_senders_are_accepted_and_duplicates_dropped(api, owner, evolution):
    channel = await _connected_channel(api, evolution)
    instance = channel["instanceName"]
    body = evolution.message_upsert(instance, "123456789012345@lid", "hola desde lid", push_name="Lid")
    assert (await evolution.emit(instance, body)).json() == {"received": 1, "new": 1}
    assert (await evolution.emit(instance, body)).json() == {"received": 1, "new": 0}
    mine = evolution.message_upsert(instance, "123456789012345@lid", "echo of ours", from_me=True)
    assert (await evolution.emit(instance, mine)).json() == {"received": 0, "new": 0}
    group = evolution.message_upsert(instance, "120363@g.us", "group")
    assert (await evolution.emit(instance, group)).json()["received"] == 0
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "123456789012345@lid"))
    assert [m["text"] for m in await api.messages(conversation["id"])] == ["hola desde lid"]


async def test_contact_asking_for_a_human_hands_off_and_close_ends_it(api, owner, evolution, events):
    channel = await _connected_channel(api, evolution)
    instance = channel["instanceName"]
    await api.agent(channel["id"], greeting="Hola", handoffMessage="Te paso con una persona",
                    rules=[{"keywords": ["hola"], "reply": "¿En qué te ayudo?"}])
    contact = "5511922220000"
    await evolution.emit(instance, evolution.message_upsert(instance, contact, "Quiero hablar con un HUMANO"))
    await api.wait_until(lambda: len([m for m in evolution.sent if m["number"] == contact]) == 1)
    assert [m["text"] for m in evolution.sent if m["number"] == contact] == ["Te paso con una persona"]
    conversation = await api.conversation_of(channel["id"], contact)
    assert conversation["handedOff"] and conversation["handoffReason"] == "CONTACT_ASKED"
    closed = await owner.post(f"{CONVERSATIONS}/{conversation['id']}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED"
    assert_problem(await owner.post(f"{CONVERSATIONS}/{conversation['id']}/close"), 409)
    assert_problem(await owner.post(f"{CONVERSATIONS}/{conversation['id']}/messages", json={"text": "x"}), 409)
    ended = await events.wait_for(lambda e: e.event == "conversation.ended"
                                  and e.data["conversationId"] == conversation["id"])
    assert ended.data["reason"] == "CLOSED"
    # The contact writes again: a new conversation, greeted again.
    await evolution.emit(instance, evolution.message_upsert(instance, contact, "hola otra vez"))
    await api.wait_until(lambda: len([m for m in evolution.sent if m["number"] == contact]) == 3)
    conversations = await api.conversations(channelId=channel["id"], q=contact)
    assert [c["status"] for c in conversations] == ["OPEN", "CLOSED"]


async def test_an_idle_conversation_ends_by_itself(api, owner, evolution, events, db):
    contact = "5511933330000"
    channel, conversation = await _contact_wrote(api, evolution, contact)
    async with db.begin() as conn:  # a day and a minute of silence
        await conn.execute(text("UPDATE conversations SET last_message_at = :t WHERE id = :id"),
                           {"t": datetime.now(UTC) - timedelta(minutes=1441), "id": conversation["id"]})
    ended = await events.wait_for(lambda e: e.event == "conversation.ended"
                                  and e.data["conversationId"] == conversation["id"])
    assert ended.data["reason"] == "IDLE"
    detail = (await owner.get(f"{CONVERSATIONS}/{conversation['id']}")).json()
    assert detail["status"] == "CLOSED" and detail["closeReason"] == "IDLE"


async def test_an_evolution_server_that_is_down_delays_messages_and_loses_none(api, owner, evolution):
    contact = "5511944440000"
    _, conversation = await _contact_wrote(api, evolution, contact)
    await evolution.go_down()
    try:
        ids = []
        for text_ in ("uno", "dos", "tres"):
            resp = await owner.post(f"{CONVERSATIONS}/{conversation['id']}/messages", json={"text": text_})
            ids.append(resp.json()["id"])

        async def retried():
            first = [m for m in await api.messages(conversation["id"]) if m["id"] == ids[0]][0]
            return first["attempts"] >= 2 and first["status"] == "QUEUED"

        await api.wait_until(retried, timeout=30)
    finally:
        await evolution.come_back()
    await api.wait_until(lambda: len([m for m in evolution.sent if m["number"] == contact]) == 3, timeout=30)
    assert [m["text"] for m in evolution.sent if m["number"] == contact] == ["uno", "dos", "tres"]

    async def all_sent():
        messages = {m["id"]: m for m in await api.messages(conversation["id"])}
        return all(messages[i]["status"] == "SENT" for i in ids)

    await api.wait_until(all_sent)


async def test_evolution_delivery_updates_move_the_status_forward(api, owner, evolution):
    contact = "5511955550000"
    channel, conversation = await _contact_wrote(api, evolution, contact)
    instance = channel["instanceName"]
    reply = await owner.post(f"{CONVERSATIONS}/{conversation['id']}/messages", json={"text": "¿Cómo te ayudo?"})
    sent = await api.wait_until(lambda: [m for m in evolution.sent if m["number"] == contact])
    key_id = sent[0]["id"]

    async def status_is(expected):
        found = [m for m in await api.messages(conversation["id"]) if m["id"] == reply.json()["id"]]
        return found and found[0]["status"] == expected and found[0]["externalId"] == key_id

    await api.wait_until(lambda: status_is("SENT"))
    for status in ("DELIVERY_ACK", "READ", "DELIVERY_ACK"):  # a late DELIVERY_ACK does not undo READ
        body = {"event": "messages.update", "instance": instance,
                "data": {"keyId": key_id, "remoteJid": f"{contact}@s.whatsapp.net", "fromMe": True,
                         "status": status, "instanceId": "x"}}
        assert (await evolution.emit(instance, body)).status_code == 200
    await evolution.emit(instance, evolution.message_upsert(instance, "5511955559999", "marker"))
    await api.wait_until(lambda: api.conversation_of(channel["id"], "5511955559999"))
    assert await status_is("READ")


async def test_keywords_match_whole_words_not_parts_of_words(api, owner, evolution):
    channel = await _connected_channel(api, evolution)
    instance = channel["instanceName"]
    await api.agent(channel["id"], handoffMessage="Te paso con una persona", rules=[
        {"keywords": ["precio"], "reply": "Desde 10 USD"},
        {"keywords": ["buenos dias"], "reply": "¡Buenos días!"},
        {"keywords": ["quiero", "tienen", "mucho"], "reply": "Cuéntame más"}])
    expected = {  # contact: (what they write, what the agent answers)
        "5511966660001": ("Quiero un plan personal", "Cuéntame más"),
        "5511966660002": ("¿Tienen agentes de ventas?", "Cuéntame más"),
        "5511966660003": ("te aprecio mucho", "Cuéntame más"),
        "5511966660004": ("¿Puedo hablar con una PERSONA?", "Te paso con una persona"),
        "5511966660005": ("Buenos Días, equipo", "¡Buenos días!"),
    }
    for contact, (text_, _) in expected.items():
        await evolution.emit(instance, evolution.message_upsert(instance, contact, text_))

    def answers():
        sent = {m["number"]: m["text"] for m in evolution.sent if m["number"] in expected}
        return sent if len(sent) == len(expected) else None

    assert await api.wait_until(answers) == {contact: reply for contact, (_, reply) in expected.items()}
    handed_off = {c["contact"]: c["handedOff"] for c in await api.conversations(channelId=channel["id"])}
    assert handed_off == {contact: contact.endswith("4") for contact in expected}


async def test_a_nul_character_is_dropped_and_the_other_messages_of_the_post_are_stored(api, evolution):
    channel = await _connected_channel(api, evolution)
    instance = channel["instanceName"]
    contact = "5511944440000"
    first = evolution.message_upsert(instance, contact, "ho\u0000la", push_name="Jo\u0000ão")
    second = evolution.message_upsert(instance, contact, "segunda")
    first["data"]["message"] = {"imageMessage": {"caption": "fo\u0000to", "mimetype": "image/jpeg"}}
    first["data"]["messageType"] = "imageMessage"
    body = first | {"data": [first["data"], second["data"]]}
    answer = await evolution.emit(instance, body)
    assert answer.status_code == 200 and answer.json() == {"received": 2, "new": 2}, answer.text
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], contact))

    async def stored():
        messages = await api.messages(conversation["id"])
        return messages if len(messages) == 2 else None

    messages = await api.wait_until(stored)
    assert [(m["type"], m["text"], m["caption"]) for m in messages] == [("image", None, "foto"),
                                                                      ("text", "segunda", None)]
    assert conversation["contactName"] == "João"
