"""500 inbound messages over 50 contacts, each delivered twice and interleaved: 50 conversations, 500
messages, no duplicates, and each conversation's events in the order its messages came."""

from __future__ import annotations

import asyncio
import json

from common.testing.fake_whatsapp import sign, text_message, wamid


async def test_500_messages_twice_interleaved_over_50_contacts(api, events, anonymous):
    channel = await api.cloud_channel()
    number, secret = channel["phoneNumberId"], channel["_appSecret"]
    contacts = [f"57310{i:07d}" for i in range(50)]
    posts = []
    for n in range(10):
        for contact in contacts:
            body = json.dumps(text_message(number, contact, f"{contact} #{n}", message_id=wamid())).encode()
            posts.append(body)
    url = f"/api/webhooks/whatsapp/{channel['id']}"

    async def post(raw):
        resp = await anonymous.post(url, content=raw, headers={"content-type": "application/json",
                                                               "X-Hub-Signature-256": sign(secret, raw)})
        assert resp.status_code == 200, resp.text

    # Each message twice: the second copy a little later, interleaved with others, 20 in flight.
    order = [p for i in range(len(posts)) for p in ([posts[i]] + ([posts[i - 5]] if i >= 5 else []))] + posts[-5:]
    assert len(order) == 1000
    for start in range(0, len(order), 20):
        await asyncio.gather(*(post(raw) for raw in order[start:start + 20]))

    async def all_recorded():
        return await api.scalar("SELECT count(*) FROM messages WHERE channel_id = :c", c=channel["id"]) == 500

    await api.wait_until(all_recorded, timeout=60)
    assert await api.scalar("SELECT count(*) FROM conversations WHERE channel_id = :c", c=channel["id"]) == 50
    assert await api.scalar("SELECT count(DISTINCT external_id) FROM messages WHERE channel_id = :c",
                            c=channel["id"]) == 500
    channel_id = channel["id"]

    def received():
        return events.matching(lambda e: e.event == "conversation.message.received"
                               and e.data["channelId"] == channel_id)

    await api.wait_until(lambda: len({e.data["messageId"] for e in received()}) == 500, timeout=60)
    for contact in contacts:
        mine = [e.data["text"] for e in received() if e.data["contact"] == contact]
        seen = list(dict.fromkeys(mine))  # the outbox may publish a duplicate (same id); order is what counts
        assert seen == [f"{contact} #{n}" for n in range(10)], contact
    started = events.matching(lambda e: e.event == "conversation.started" and e.data["channelId"] == channel_id)
    assert len({e.data["conversationId"] for e in started}) == 50
