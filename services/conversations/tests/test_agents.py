"""Agents: an n8n flow's answers (and the fallback when it is late), business hours, enable/disable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from common.testing.checks import assert_problem
from common.testing.fake_whatsapp import text_message

AGENTS = "/api/platform/operations/agents"


async def test_an_n8n_agent_answers_with_the_flows_text_and_falls_back_when_it_is_too_slow(api, graph, n8n):
    channel = await api.cloud_channel()
    path = f"agent-{uuid.uuid4().hex[:8]}"
    url = n8n.add_flow(path, "Respuesta del flujo de n8n")
    await api.agent(channel["id"], mode="N8N", n8nWebhookUrl=url, n8nTimeoutSeconds=1.0,
                    fallbackText="Ahora no puedo responder; te escribimos pronto")
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573100000001", "¿Tienen envíos?", name="Marta"))
    await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573100000001"])
    assert [m["text"] for m in graph.sent if m["to"] == "573100000001"] == ["Respuesta del flujo de n8n"]
    [call] = [c for c in n8n.webhook_calls if c.path == path]
    assert call.body["text"] == "¿Tienen envíos?" and call.body["contactName"] == "Marta" and call.body["started"]

    n8n.delay = 3.0
    try:
        await api.post_cloud(channel, text_message(number, "573100000002", "hola"))
        await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573100000002"])
    finally:
        n8n.delay = 0.0
    assert [m["text"] for m in graph.sent if m["to"] == "573100000002"] == [
        "Ahora no puedo responder; te escribimos pronto"]


async def test_out_of_hours_the_agent_says_so_once(api, graph):
    channel = await api.cloud_channel()
    today = datetime.now(UTC).weekday()
    await api.agent(channel["id"], greeting="Hola", outOfHoursMessage="Atendemos de lunes a viernes",
                    businessHours={"timezone": "UTC", "days": [(today + 1) % 7], "start": "09:00", "end": "18:00"})
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573200000001", "hola"))
    await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573200000001"])
    await api.post_cloud(channel, text_message(number, "573200000001", "¿hay alguien?"))
    await api.post_cloud(channel, text_message(number, "573200000009", "marker"))
    await api.wait_until(lambda: [m for m in graph.sent if m["to"] == "573200000009"])
    assert [m["text"] for m in graph.sent if m["to"] == "573200000001"] == ["Atendemos de lunes a viernes"]


async def test_a_disabled_agent_is_quiet_and_one_enabled_agent_per_channel(api, owner, graph):
    channel = await api.cloud_channel()
    agent = await api.agent(channel["id"], greeting="Hola")
    assert_problem(await owner.post(AGENTS, json={"name": "Otro", "channelId": channel["id"]}), 409)
    disabled = await owner.post(f"{AGENTS}/{agent['id']}/disable")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    second = await api.agent(channel["id"], greeting="Hola del segundo")
    assert_problem(await owner.post(f"{AGENTS}/{agent['id']}/enable"), 409)
    await owner.post(f"{AGENTS}/{second['id']}/disable")
    number = channel["phoneNumberId"]
    await api.post_cloud(channel, text_message(number, "573300000001", "hola"))
    conversation = await api.wait_until(lambda: api.conversation_of(channel["id"], "573300000001"))
    assert conversation["agentId"] is None
    listed = (await owner.get(AGENTS, params={"channelId": channel["id"]})).json()
    assert listed["total"] == 2
    assert_problem(await owner.post(AGENTS, json={"name": "x", "channelId": channel["id"], "mode": "N8N"}), 422)
    assert_problem(await owner.post(AGENTS, json={"name": "x", "channelId": str(uuid.uuid4())}), 404)
    assert_problem(await owner.post(AGENTS, json={"name": "x", "channelId": channel["id"],
                                                  "businessHours": {"timezone": "Mars/Olympus"}}), 422)
    assert (await owner.delete(f"{AGENTS}/{agent['id']}")).status_code == 204
    assert_problem(await owner.get(f"{AGENTS}/{agent['id']}"), 404)


async def test_an_n8n_reply_pending_when_its_worker_died_is_asked_again_and_sent_once(api, graph, n8n):
    """The reply is recorded as pending with the inbound message; a worker that dies while the flow answers
    (here: its lease made to pass, as after a crash or a restart) leaves it, and a worker asks again."""
    channel = await api.cloud_channel()
    path = f"agent-{uuid.uuid4().hex[:8]}"
    url = n8n.add_flow(path, "Respuesta tras reiniciar")
    await api.agent(channel["id"], mode="N8N", n8nWebhookUrl=url, n8nTimeoutSeconds=10.0)
    number, contact = channel["phoneNumberId"], "573100000077"
    n8n.delay = 3.0  # the first worker's call is still waiting for the flow when it "dies"
    try:
        await api.post_cloud(channel, text_message(number, contact, "¿Hacen envíos?"))
        await api.wait_until(lambda: [c for c in n8n.webhook_calls if c.path == path])
        pending = await api.wait_until(lambda: api.scalar(
            "SELECT p.id FROM pending_replies p JOIN agents a ON a.id = p.agent_id WHERE a.channel_id = :c",
            c=uuid.UUID(channel["id"])))
        n8n.delay = 0.0
        await api.execute("UPDATE pending_replies SET lease_until = now() - interval '1 second' WHERE id = :id",
                          id=pending)
        await api.wait_until(lambda: [m for m in graph.sent if m["to"] == contact])
        assert await api.scalar("SELECT count(*) FROM pending_replies WHERE id = :id", id=pending) == 0
        # The first call answers late: its reply was queued by the other worker already, so it adds nothing.
        await api.wait_until(lambda: n8n.answered.count(path) == 2)
    finally:
        n8n.delay = 0.0
    await api.post_cloud(channel, text_message(number, contact, "marcador"))  # proves nothing more came before it
    await api.wait_until(lambda: len([m for m in graph.sent if m["to"] == contact]) >= 2)
    assert [m["text"] for m in graph.sent if m["to"] == contact] == ["Respuesta tras reiniciar"] * 2


async def test_an_n8n_reply_with_a_nul_character_is_sent_without_it(api, graph, n8n):
    """PostgreSQL text cannot hold U+0000: the flow's reply is queued without it, not lost to the fallback."""
    channel = await api.cloud_channel()
    path = f"agent-{uuid.uuid4().hex[:8]}"
    await api.agent(channel["id"], mode="N8N", n8nWebhookUrl=n8n.add_flow(path, "Hola\u0000 desde n8n"),
                    fallbackText="fallback")
    await api.post_cloud(channel, text_message(channel["phoneNumberId"], "573100000009", "hola"))
    sent = await api.wait_until(lambda: [m["text"] for m in graph.sent if m["to"] == "573100000009"])
    assert sent == ["Hola desde n8n"]
