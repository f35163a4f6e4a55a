"""n8n settings: URL + API key (encrypted at rest, shown masked), and the connection test's verdicts."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from common.crypto import SecretBox
from common.testing.checks import assert_problem
from common.testing.servers import free_port

SETTINGS = "/api/platform/integrations/n8n"
FLOWS = "/api/platform/n8n/flows"


async def test_the_key_is_encrypted_at_rest_and_shown_masked(owner, n8n, database, dispatcher):
    resp = await owner.put(SETTINGS, json={"url": n8n.url + "/", "apiKey": n8n.api_key})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {"configured": True, "url": n8n.url, "apiKey": "****" + n8n.api_key[-4:],
                    "updatedAt": body["updatedAt"]}
    assert (await owner.get(SETTINGS)).json() == body
    async with database.sessionmaker() as session:
        row = (await session.execute(text("SELECT * FROM n8n_settings"))).mappings().one()
    assert n8n.api_key not in str(dict(row))
    assert SecretBox(dispatcher.settings.secrets_encryption_keys).decrypt(row["api_key_encrypted"]) == n8n.api_key
    # The key may be left out to change only the URL; it is kept.
    moved = await owner.put(SETTINGS, json={"url": n8n.url.replace("127.0.0.1", "localhost")})
    assert moved.status_code == 200 and moved.json()["apiKey"] == body["apiKey"]
    assert (await owner.post(f"{SETTINGS}/test")).json()["ok"] is True


async def test_the_url_must_be_http_or_https_but_may_be_loopback_or_private(owner, n8n):
    for url in ("http://127.0.0.1:5678", "http://10.0.0.5:5678", "https://n8n.internal.example/base"):
        resp = await owner.put(SETTINGS, json={"url": url, "apiKey": "k"})
        assert resp.status_code == 200, (url, resp.text)
    for url in ("ftp://127.0.0.1/", "127.0.0.1:5678", "http://", "http://user:pw@127.0.0.1:5678",
                "http://127.0.0.1:5678/?x=1", "http://127.0.0.1:99999", "javascript:alert(1)", "", "x" * 3000):
        resp = await owner.put(SETTINGS, json={"url": url, "apiKey": "k"})
        assert_problem(resp, 422)
    for body in ({"url": n8n.url, "apiKey": 12}, {"url": n8n.url, "apiKey": ""}, {"apiKey": "k"},
                 {"url": n8n.url, "apiKey": "k", "other": 1}, []):
        assert (await owner.put(SETTINGS, json=body)).status_code == 422, body


async def test_connection_verdicts_ok_wrong_key_unreachable(owner, n8n):
    ok = await owner.post(f"{SETTINGS}/test")
    assert ok.status_code == 200
    assert ok.json() | {"durationMs": 0} == {"ok": True, "reachable": True, "keyAccepted": True,
                                             "version": n8n.version, "statusCode": 200, "durationMs": 0,
                                             "detail": "n8n is reachable and accepted the API key", "url": n8n.url}
    assert n8n.api_calls("GET", "/workflows")[-1].headers["x-n8n-api-key"] == n8n.api_key
    n8n.v2 = True  # n8n 2.x tells its version in the editor page, not in the public settings
    assert (await owner.post(f"{SETTINGS}/test")).json()["version"] == n8n.version
    n8n.v2 = False

    wrong = (await owner.post(f"{SETTINGS}/test", json={"apiKey": "not-the-key"})).json()
    assert wrong["ok"] is False and wrong["reachable"] is True and wrong["keyAccepted"] is False
    assert wrong["statusCode"] == 401 and "rejected the API key" in wrong["detail"]

    down = (await owner.post(f"{SETTINGS}/test", json={"url": f"http://127.0.0.1:{free_port()}"})).json()
    assert down["ok"] is False and down["reachable"] is False and down["keyAccepted"] is None
    assert "unreachable" in down["detail"] and down["version"] is None

    # Saved settings are tested when the body is empty; a wrong saved key is reported the same way.
    await owner.put(SETTINGS, json={"url": n8n.url, "apiKey": "stale-key"})
    saved = (await owner.post(f"{SETTINGS}/test")).json()
    assert saved["keyAccepted"] is False

    not_n8n = (await owner.post(f"{SETTINGS}/test", json={"url": n8n.url + "/elsewhere",
                                                          "apiKey": n8n.api_key})).json()
    assert not_n8n["reachable"] is True and not_n8n["keyAccepted"] is None and "404" in not_n8n["detail"]


async def test_without_settings_flows_and_tests_are_409_not_configured(owner, n8n, database):
    async with database.sessionmaker() as session:
        await session.execute(text("DELETE FROM n8n_settings"))
        await session.commit()
    assert (await owner.get(SETTINGS)).json() == {"configured": False, "url": None, "apiKey": None,
                                                  "updatedAt": None}
    resp = await owner.post(f"{SETTINGS}/test")
    assert resp.status_code == 409 and "not configured" in resp.json()["detail"]
    assert (await owner.post(FLOWS, json={"name": "x"})).status_code == 409
    first = await owner.put(SETTINGS, json={"url": n8n.url})
    assert first.status_code == 422 and "apiKey" in first.json()["detail"]
    assert (await owner.put(SETTINGS, json={"url": n8n.url, "apiKey": n8n.api_key})).status_code == 200


async def test_a_new_url_moves_every_flow_webhook_with_it(owner, n8n, flows, database):
    flow = await flows(triggerEvents=["lead.created"])
    assert flow["webhookUrl"] == f"{n8n.url}/webhook/{flow['webhookPath']}"
    other = n8n.url.replace("127.0.0.1", "localhost")
    assert (await owner.put(SETTINGS, json={"url": other})).status_code == 200
    moved = (await owner.get(f"{FLOWS}/{flow['id']}")).json()
    assert moved["webhookUrl"] == f"{other}/webhook/{flow['webhookPath']}"
    async with database.sessionmaker() as session:
        url = (await session.execute(text("SELECT e.url FROM webhook_endpoints e JOIN n8n_flows f "
                                          "ON f.endpoint_id = e.id WHERE f.id = :id"),
                                     {"id": uuid.UUID(flow["id"])})).scalar_one()
    assert url == moved["webhookUrl"]
