"""Channels: creation on the provider, secrets encrypted and masked, QR, status from webhooks, checks."""

from __future__ import annotations

import base64
import uuid

from common.testing.checks import assert_problem

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
