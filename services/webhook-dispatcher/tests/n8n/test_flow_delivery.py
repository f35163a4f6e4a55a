"""Active flows receive their platform events at `{n8n}/webhook/{path}` through the webhooks' delivery
machinery: the same body, Standard Webhooks signature, retries (through n8n's activation gap), attempt log."""

from __future__ import annotations

import asyncio
import uuid

from standardwebhooks import Webhook

FLOWS = "/api/platform/n8n/flows"


def lead_data(**extra) -> dict:
    return {"leadId": str(uuid.uuid4()), "name": "Ana", "email": "ana@example.com", "stage": "NEW"} | extra


def calls_to(n8n, flow: dict) -> list:
    return [c for c in n8n.webhook_calls if c.path == flow["webhookPath"]]


async def wait_logs(owner, flow: dict, predicate, timeout: float = 10.0) -> dict:
    """Poll the flow's logs until `predicate(logs)` holds (deliveries are recorded just after the answer)."""
    async with asyncio.timeout(timeout):
        while True:
            logs = (await owner.get(f"{FLOWS}/{flow['id']}/logs")).json()
            if predicate(logs):
                return logs
            await asyncio.sleep(0.05)


async def activate(owner, flow: dict) -> dict:
    resp = await owner.post(f"{FLOWS}/{flow['id']}/activate")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_an_active_flow_receives_matching_events_signed_and_retried_through_the_activation_gap(
        owner, n8n, flows, publish):
    flow = await flows(triggerEvents=["lead.created"])
    n8n.gap_requests = 1  # n8n registers the production webhook a moment after answering activate
    await activate(owner, flow)
    envelope = await publish("lead.created", lead_data())
    await publish("lead.updated", lead_data(changes=["name"]))  # not a trigger event of the flow
    await n8n.wait_for(lambda: len(n8n.executions_of(flow["workflowId"])) >= 1)
    calls = calls_to(n8n, flow)
    assert len(calls) == 2  # 404 "not registered", then accepted
    assert {c.headers["webhook-id"] for c in calls} == {str(envelope.id)}
    for call in calls:
        assert Webhook(flow["secret"]).verify(call.raw, call.headers) == envelope.to_webhook()
        assert call.headers["content-type"] == "application/json" and call.headers["traceparent"]
    [execution] = n8n.executions_of(flow["workflowId"])
    assert execution["status"] == "success" and execution["mode"] == "webhook"

    logs = await wait_logs(owner, flow, lambda logs: [d["status"] for d in logs["deliveries"]] == ["SUCCEEDED"])
    [delivery] = logs["deliveries"]
    assert delivery["eventId"] == str(envelope.id) and delivery["status"] == "SUCCEEDED"
    assert delivery["attempts"] == 2
    first, second = delivery["attemptLog"]
    assert first["statusCode"] == 404 and "not registered" in first["responseBody"] and not first["success"]
    assert second["statusCode"] == 200 and second["success"]
    assert first["url"] == flow["webhookUrl"] and first["targetIp"] == "127.0.0.1"
    assert first["requestHeaders"]["webhook-id"] == second["requestHeaders"]["webhook-id"] == str(envelope.id)
    # The webhooks API can show and replay a flow's delivery by its id.
    detail = (await owner.get(f"/api/platform/webhooks/deliveries/{delivery['id']}")).json()
    assert detail["payload"] == envelope.to_webhook()


async def test_an_inactive_flow_receives_nothing_and_deactivating_stops_deliveries(owner, n8n, flows, publish):
    witness = await flows(triggerEvents=["ticket.created"])
    idle = await flows(triggerEvents=["ticket.*"])
    toggled = await flows(triggerEvents=["ticket.created"])
    await activate(owner, witness)
    await activate(owner, toggled)
    ticket = {"tenantId": str(uuid.uuid4()), "subject": "Help", "priority": "LOW", "status": "OPEN"}
    first = await publish("ticket.created", ticket | {"ticketId": str(uuid.uuid4())})
    await n8n.wait_for(lambda: any(c.headers.get("webhook-id") == str(first.id) and c.path == toggled["webhookPath"]
                                   for c in n8n.webhook_calls) and len(n8n.executions_of(witness["workflowId"])) == 1)
    resp = await owner.post(f"{FLOWS}/{toggled['id']}/deactivate")
    assert resp.json()["deliveryStatus"] == "PAUSED"
    second = await publish("ticket.created", ticket | {"ticketId": str(uuid.uuid4())})
    await n8n.wait_for(lambda: len(n8n.executions_of(witness["workflowId"])) == 2)
    assert calls_to(n8n, idle) == []
    assert str(second.id) not in {c.headers.get("webhook-id") for c in calls_to(n8n, toggled)}
    assert (await owner.get(f"{FLOWS}/{idle['id']}/logs")).json()["deliveries"] == []


async def test_a_changed_trigger_filter_applies_to_the_next_events(owner, n8n, flows, publish):
    flow = await flows(triggerEvents=["lead.converted"])
    await activate(owner, flow)
    await owner.patch(f"{FLOWS}/{flow['id']}", json={"triggerEvents": ["lead.stage.changed"]})
    await publish("lead.converted", lead_data(convertedAt="2025-01-27T10:00:00Z"))
    moved = await publish("lead.stage.changed", lead_data(**{"from": "NEW", "to": "WON"}))
    await n8n.wait_for(lambda: len(n8n.executions_of(flow["workflowId"])) >= 1)
    assert {c.headers["webhook-id"] for c in calls_to(n8n, flow)} == {str(moved.id)}


async def test_a_flow_can_be_told_when_a_subscriber_endpoint_is_disabled(owner, n8n, flows, publish, receiver,
                                                                        endpoints):
    flow = await flows(triggerEvents=["webhook.endpoint.disabled"])
    await activate(owner, flow)
    gone = receiver.hook(status=410)
    endpoint = await endpoints(gone.url, ["lead.created"])
    await publish("lead.created", lead_data())
    await n8n.wait_for(lambda: any(c.body["data"]["endpointId"] == endpoint["id"] for c in calls_to(n8n, flow)))
    [call] = [c for c in calls_to(n8n, flow) if c.body["data"]["endpointId"] == endpoint["id"]]
    announced = Webhook(flow["secret"]).verify(call.raw, call.headers)
    assert announced["event"] == "webhook.endpoint.disabled" and announced["data"]["status"] == "DISABLED"
    assert "410" in announced["data"]["reason"]
    assert (await owner.get(f"/api/platform/webhooks/{endpoint['id']}")).json()["status"] == "DISABLED"
