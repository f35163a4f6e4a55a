"""The N8N bridge against a REAL n8n (`make test-n8n` installs and starts one; see tools/n8n_real.sh).

Skipped unless N8N_URL and N8N_API_KEY are set. A dispatcher of its own (own database and consumer group)
with a retry schedule long enough to cover n8n's real activation gap.

Each template is switched on as its owner would: activating through the platform answers 409 naming the nodes
and credential types n8n wants; the test creates those credentials in n8n through n8n's public API (dummy
values from each type's schema: n8n calls no service when it activates), attaches them to the nodes, and
activates again through the platform.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from common.testing.fake_n8n import activate_filling_credentials
from common.testing.plugin import bearer
from common.testing.servers import serve_app
from webhook_dispatcher.app import create_app

N8N_URL = os.environ.get("N8N_URL", "")
N8N_API_KEY = os.environ.get("N8N_API_KEY", "")
pytestmark = pytest.mark.skipif(not (N8N_URL and N8N_API_KEY),
                                reason="needs a real n8n: N8N_URL and N8N_API_KEY (make test-n8n)")

SETTINGS = "/api/platform/integrations/n8n"
FLOWS = "/api/platform/n8n/flows"


@pytest.fixture(scope="module")
async def platform(migrated_database, make_settings, owner_token) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url=await migrated_database("webhook-dispatcher", name="real-n8n"),
                             webhook_consumer_group=f"real-n8n-{uuid.uuid4().hex[:8]}",
                             webhook_retry_schedule="0.5,1,2,3,5,8", webhook_timeout_seconds=10.0,
                             webhook_lease_seconds=30.0, n8n_timeout_seconds=20.0)
    async with serve_app(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as probe:
            async with asyncio.timeout(60):
                while (await probe.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=url, headers=bearer(owner_token), timeout=60) as client:
            resp = await client.put(SETTINGS, json={"url": N8N_URL, "apiKey": N8N_API_KEY})
            assert resp.status_code == 200, resp.text
            yield client


async def wait_logs(client: httpx.AsyncClient, flow_id: str, predicate: Any, timeout: float = 30.0,
                    **params: Any) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            resp = await client.get(f"{FLOWS}/{flow_id}/logs", params={"limit": 50} | params)
            assert resp.status_code == 200, resp.text
            logs = resp.json()
            if predicate(logs):
                return logs
            await asyncio.sleep(0.25)


# The templates' outbound nodes (CRM, e-mail, Slack, Twilio, Google) have dummy credentials and nothing to
# reach, so an execution ends in "error" at the first of them: the platform's part (trigger, Set, IF) has run.
FINISHED = ("success", "error")


async def switch_on(platform: httpx.AsyncClient, flow: dict[str, Any], **also: list[str]) -> dict[str, Any]:
    activated = await activate_filling_credentials(platform, flow, N8N_URL, N8N_API_KEY, also=also)
    assert activated["deliveryStatus"] == ("ACTIVE" if flow["webhookPath"] else None), activated
    return activated


async def execution_of(platform: httpx.AsyncClient, flow: dict[str, Any], event_id: uuid.UUID) -> dict[str, Any]:
    """The n8n execution the event started, with its data (it reached the flow's Webhook trigger)."""
    logs = await wait_logs(platform, flow["id"], lambda logs: any(
        e["status"] in FINISHED and str(event_id) in str(e["data"]) for e in logs["executions"]), includeData="true")
    return next(e for e in logs["executions"] if str(event_id) in str(e["data"]))


def lead() -> dict[str, Any]:
    return {"leadId": str(uuid.uuid4()), "name": "Ana Real", "email": "ana@example.com", "company": "ACME",
            "source": "web", "stage": "NEW"}


async def test_the_connection_test_accepts_the_real_key(platform):
    verdict = (await platform.post(f"{SETTINGS}/test")).json()
    print("n8n connection test:", verdict)
    assert verdict["ok"] is True and verdict["reachable"] is True and verdict["keyAccepted"] is True
    assert verdict["version"], "n8n's version should be read from its editor page (2.x) or settings (1.x)"
    wrong = (await platform.post(f"{SETTINGS}/test", json={"apiKey": "wrong"})).json()
    assert wrong["reachable"] is True and wrong["keyAccepted"] is False


async def test_lead_processing_flow_end_to_end(platform, publish):
    resp = await platform.post(FLOWS, json={"template": "lead-processing", "name": f"Leads {uuid.uuid4().hex[:6]}"})
    assert resp.status_code == 201, resp.text
    flow = resp.json()
    try:
        # n8n insists on the e-mail's and the task's credentials; the CRM's Header Auth the owner adds too.
        await switch_on(platform, flow, **{"Send to CRM": ["httpHeaderAuth"]})

        first = await publish("lead.created", lead())
        logs = await wait_logs(platform, flow["id"], lambda logs: any(
            e["status"] in FINISHED for e in logs["executions"]) and any(
            d["eventId"] == str(first.id) and d["status"] == "SUCCEEDED" for d in logs["deliveries"]))
        [delivery] = [d for d in logs["deliveries"] if d["eventId"] == str(first.id)]
        print("attempts:", [(a["statusCode"], a["responseBody"][:80]) for a in delivery["attemptLog"]])
        assert delivery["attemptLog"][-1]["statusCode"] == 200
        [execution] = logs["executions"]
        assert execution["mode"] == "webhook" and execution["durationMs"] is not None
        detailed = (await platform.get(f"{FLOWS}/{flow['id']}/logs", params={"includeData": "true"})).json()
        assert str(first.id) in str(detailed["executions"][0]["data"])
        # The CRM node ran with the credential attached (it fails reaching the CRM, not for a missing credential).
        assert "Send to CRM" in str(detailed["executions"][0]["data"])
        assert "Credentials not found" not in str(detailed["executions"][0]["data"])

        deactivated = await platform.post(f"{FLOWS}/{flow['id']}/deactivate")
        assert deactivated.status_code == 200, deactivated.text
        assert deactivated.json()["active"] is False
        await publish("lead.created", lead())
        await asyncio.sleep(3.0)
        after = (await platform.get(f"{FLOWS}/{flow['id']}/logs")).json()
        assert len(after["executions"]) == 1 and len(after["deliveries"]) == 1
    finally:
        await platform.delete(f"{FLOWS}/{flow['id']}", params={"deleteInN8n": "true"})


async def test_critical_ticket_alert_runs_the_alert_branch_only_for_critical_tickets(platform, publish):
    resp = await platform.post("/api/platform/n8n/templates/critical-ticket-alert/flows",
                               json={"name": f"Alerts {uuid.uuid4().hex[:6]}"})
    assert resp.status_code == 201, resp.text
    flow = resp.json()
    try:
        await switch_on(platform, flow)
        ticket = {"tenantId": str(uuid.uuid4()), "subject": "Checkout down", "status": "OPEN"}
        critical = await publish("ticket.created", ticket | {"ticketId": str(uuid.uuid4()), "priority": "CRITICAL"})
        ran = str((await execution_of(platform, flow, critical.id))["data"])
        assert "Critical ticket: Checkout down" in ran
        routine = await publish("ticket.created", ticket | {"ticketId": str(uuid.uuid4()), "priority": "LOW"})
        skipped = await execution_of(platform, flow, routine.id)
        assert skipped["status"] == "success" and "Not critical" in str(skipped["data"])
        assert "Critical ticket:" not in str(skipped["data"])
    finally:
        await platform.delete(f"{FLOWS}/{flow['id']}", params={"deleteInN8n": "true"})


async def test_register_and_daily_report_are_accepted_by_n8n(platform):
    created = (await platform.post(FLOWS, json={"name": f"Starter {uuid.uuid4().hex[:6]}"})).json()
    # The platform forgets it, then registers the same workflow back from n8n.
    assert (await platform.delete(f"{FLOWS}/{created['id']}")).status_code == 204
    registered = await platform.post(FLOWS, json={"name": "Registered", "mode": "register",
                                                  "workflowId": created["workflowId"],
                                                  "triggerEvents": ["lead.created"]})
    assert registered.status_code == 201, registered.text
    assert registered.json()["webhookPath"] == created["webhookPath"]
    await platform.delete(f"{FLOWS}/{registered.json()['id']}", params={"deleteInN8n": "true"})

    report = await platform.post("/api/platform/n8n/templates/daily-report/flows",
                                 json={"params": {"platformUrl": "http://127.0.0.1:8080", "apiKey": "plk_example"}})
    assert report.status_code == 201, report.text
    try:
        await switch_on(platform, report.json())
    finally:
        await platform.delete(f"{FLOWS}/{report.json()['id']}", params={"deleteInN8n": "true"})


async def test_failed_payment_flow_takes_the_last_attempt_branch(platform, publish):
    failed = await platform.post("/api/platform/n8n/templates/failed-payment/flows", json={})
    assert failed.status_code == 201, failed.text
    flow = failed.json()
    try:
        await switch_on(platform, flow)
        event = await publish("billing.payment_failed", {
            "tenantId": str(uuid.uuid4()), "invoiceId": "in_real", "amountDue": 4900, "currency": "usd",
            "attemptCount": 4, "nextPaymentAttempt": None, "hostedInvoiceUrl": "https://pay.example.com/in_real",
            "finalAttempt": True})
        ran = str((await execution_of(platform, flow, event.id))["data"])
        assert "Last attempt?" in ran and "Tell the customer: service suspended" in ran
        assert "Remind the customer" not in ran
    finally:
        await platform.delete(f"{FLOWS}/{flow['id']}", params={"deleteInN8n": "true"})
