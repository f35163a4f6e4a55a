"""The SSRF policy is applied again on every attempt, not only when the endpoint was created.

An endpoint accepted yesterday can point into a private network today (its DNS changed, or the owner
tightened WEBHOOK_ALLOWED_PRIVATE_CIDRS). Here the transport's policy loses the allow-list for the test
receiver's 127.0.0.1 after the endpoint was verified: what the check then sees is exactly what a host
now resolving to loopback looks like.
"""

from __future__ import annotations

import uuid

from common.testing.webhooks import ids_of, wait_delivery
from webhook_dispatcher.security import WebhookPolicy

API = "/api/platform/webhooks"


async def test_an_attempt_into_a_private_network_is_refused_by_policy_and_recorded(
        owner, receiver, endpoints, publish, dispatcher, monkeypatch):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["tenant.created"])
    assert endpoint["status"] == "ACTIVE"
    verified = len(hook.events())  # the challenge got through while 127.0.0.1 was allowed

    transport = dispatcher.app.state.worker.transport
    allowed = transport.policy
    monkeypatch.setattr(transport, "policy", WebhookPolicy(allow_http=allowed.allow_http))
    monkeypatch.setattr(transport, "_checked", {})  # forget targets checked under the old policy
    envelope = await publish("tenant.created", {"tenantId": str(uuid.uuid4()), "name": "Rede Interna",
                                                "plan": "Pro", "status": "ACTIVE"})
    delivery = await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "FAILED")
    assert len(hook.events()) == verified  # not one byte reached the private address

    attempts = (await owner.get(f"{API}/deliveries/{delivery['id']}/attempts")).json()
    assert len(attempts) == delivery["attempts"] == 3  # refused each time it was tried, on the schedule
    for attempt in attempts:
        assert attempt["errorClass"] == "policy", attempt
        assert "127.0.0.1" in attempt["error"] and attempt["statusCode"] is None
        assert attempt["responseHeaders"] in (None, {}) and not attempt["responseBody"]

    # The address is allowed again: the dead letter is replayable, with its webhook-id.
    monkeypatch.setattr(transport, "policy", allowed)
    transport._checked.clear()
    assert (await owner.post(f"{API}/deliveries/{delivery['id']}/retry")).status_code == 202
    await wait_delivery(owner, endpoint["id"], envelope.id, lambda d: d["status"] == "SUCCEEDED")
    assert ids_of(hook)[-1] == str(envelope.id)
