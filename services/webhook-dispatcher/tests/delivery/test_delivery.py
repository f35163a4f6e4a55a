"""Events published on Kafka reach subscribers: signed, filtered, once per endpoint, retried, dead-lettered."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from standardwebhooks import Webhook

API = "/api/platform/webhooks"


def tenant_data() -> dict:
    tid = uuid.uuid4()
    return {"tenantId": str(tid), "name": f"Empresa {tid.hex[:6]}", "plan": "Pro", "status": "ACTIVE"}


def lead_data(**extra) -> dict:
    return {"leadId": str(uuid.uuid4()), "name": "Ana", "stage": "NEW"} | extra


def ids_of(hook) -> list[str]:
    return [r.headers["webhook-id"] for r in hook.events()]


async def deliveries_of(owner, endpoint_id: str, **params) -> list[dict]:
    resp = await owner.get(f"{API}/{endpoint_id}/deliveries", params={"limit": 100} | params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def test_tenant_created_reaches_the_subscriber_signed_and_traceable(receiver, endpoints, publish):
    hook = receiver.hook()
    endpoint = await endpoints(hook.url, ["tenant.created"])
    data = tenant_data()
    envelope = await publish("tenant.created", data, tenant_id=uuid.UUID(data["tenantId"]))
    await hook.wait_for(lambda h: len(h.events()) >= 1)
    [request] = hook.events()
    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body == envelope.to_webhook()
    assert set(body) == {"id", "event", "timestamp", "tenantId", "data"}
    assert request.headers["webhook-id"] == str(envelope.id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Plataforma")
    # The delivery's span is a child of the event's trace (carried from the Kafka record).
    version, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and span_id != "00f067aa0ba902b7"

