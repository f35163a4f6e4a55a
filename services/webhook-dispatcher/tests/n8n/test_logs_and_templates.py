"""A flow's logs (n8n's executions next to our delivery attempts) and the templates (the seed's three and
failed-payment)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from common.testing.checks import assert_problem
from common.testing.fake_n8n import activate_filling_credentials, fill_in_credentials
from common.testing.plugin import bearer

FLOWS = "/api/platform/n8n/flows"
TEMPLATES = "/api/platform/n8n/templates"


def lead_data() -> dict:
    return {"leadId": str(uuid.uuid4()), "name": "Ana", "stage": "NEW"}


async def test_logs_show_n8n_executions_and_our_attempts_with_filters_and_n8n_cursor(owner, n8n, flows, publish):
    flow = await flows(triggerEvents=["lead.created"])
    assert (await owner.post(f"{FLOWS}/{flow['id']}/activate")).status_code == 200
    sent = [await publish("lead.created", lead_data()) for _ in range(3)]
    await n8n.wait_for(lambda: len(n8n.executions_of(flow["workflowId"])) == 3)
    failed = n8n.add_execution(flow["workflowId"], status="error", mode="trigger")
    n8n.add_execution(flow["workflowId"], status="running")  # n8n lists it only with status=running
    other = await flows(triggerEvents=["lead.created"])
    n8n.add_execution(other["workflowId"], status="success")

    url = f"{FLOWS}/{flow['id']}/logs"
    async with asyncio.timeout(10):
        while True:  # deliveries are recorded just after n8n's answer
            logs = (await owner.get(url)).json()
            if [d["status"] for d in logs["deliveries"]] == ["SUCCEEDED"] * 3:
                break
            await asyncio.sleep(0.05)
    assert logs["workflowId"] == flow["workflowId"] and logs["executionsError"] is None
    executions = logs["executions"]
    assert [e["status"] for e in executions] == ["error", "success", "success", "success"]
    assert executions[0]["id"] == failed["id"] and executions[0]["mode"] == "trigger"
    for e in executions:
        assert e["workflowId"] == flow["workflowId"] and e["startedAt"] and e["stoppedAt"]
        assert e["durationMs"] is not None and e["durationMs"] >= 0 and e["data"] is None
    assert {d["eventId"] for d in logs["deliveries"]} == {str(e.id) for e in sent}
    assert all(d["status"] == "SUCCEEDED" and d["attemptLog"] for d in logs["deliveries"])
    call = n8n.api_calls("GET", "/executions")[-1]
    assert call.query["workflowId"] == flow["workflowId"] and call.headers["x-n8n-api-key"] == n8n.api_key

    assert [e["id"] for e in (await owner.get(url, params={"status": "error"})).json()["executions"]] == [failed["id"]]
    running = (await owner.get(url, params={"status": "running"})).json()["executions"]
    assert [e["status"] for e in running] == ["running"] and running[0]["stoppedAt"] is None
    assert running[0]["durationMs"] is None

    # n8n's cursor passes through: two pages of two.
    page1 = (await owner.get(url, params={"limit": 2})).json()
    assert len(page1["executions"]) == 2 and page1["nextCursor"]
    assert len(page1["deliveries"]) == 2 and page1["deliveriesNextCursor"]
    page2 = (await owner.get(url, params={"limit": 2, "cursor": page1["nextCursor"],
                                          "deliveriesCursor": page1["deliveriesNextCursor"]})).json()
    assert n8n.api_calls("GET", "/executions")[-1].query["cursor"] == page1["nextCursor"]
    assert len(page2["executions"]) == 2 and page2["nextCursor"] is None
    assert {e["id"] for e in page1["executions"]} | {e["id"] for e in page2["executions"]} == {
        e["id"] for e in executions}
    assert len(page2["deliveries"]) == 1 and page2["deliveriesNextCursor"] is None

    with_data = (await owner.get(url, params={"includeData": "true", "status": "success", "limit": 1})).json()
    [execution] = with_data["executions"]
    run = execution["data"]["resultData"]["runData"]["Platform event"][0]["data"]["main"][0][0]["json"]
    assert run["body"]["event"] == "lead.created" and run["body"]["id"] in {str(e.id) for e in sent}

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (await owner.get(url, params={"since": future})).json()
    assert later["executions"] == [] and later["deliveries"] == []
    earlier = (await owner.get(url, params={"until": future, "deliveryStatus": "FAILED"})).json()
    assert len(earlier["executions"]) == 4 and earlier["deliveries"] == []
    for bad in ({"status": "exploded"}, {"limit": 0}, {"since": "yesterday"}, {"since": "2025-01-01T00:00:00"},
                {"deliveriesCursor": "bogus"}):
        assert (await owner.get(url, params=bad)).status_code == 422, bad

    # n8n down: our own deliveries are still shown, with the reason.
    n8n.fail_api = (503, "n8n is restarting")
    degraded = (await owner.get(url)).json()
    assert "n8n is restarting" in degraded["executionsError"] and len(degraded["deliveries"]) == 3


async def test_templates_are_listed(owner, n8n):
    resp = await owner.get(TEMPLATES)
    assert resp.status_code == 200
    templates = {t["id"]: t for t in resp.json()}
    assert set(templates) == {"lead-processing", "critical-ticket-alert", "daily-report", "failed-payment"}
    assert templates["lead-processing"]["triggerEvents"] == ["lead.created"]
    assert templates["failed-payment"]["triggerEvents"] == ["billing.payment_failed"]
    assert templates["critical-ticket-alert"]["triggerEvents"] == ["ticket.created"]
    report = templates["daily-report"]
    assert report["trigger"] == "schedule" and report["triggerEvents"] == []
    assert {p["name"]: (p["required"], p["secret"]) for p in report["parameters"]} == {
        "platformUrl": (True, False), "apiKey": (True, True), "timezone": (False, False),
        "reportTo": (False, False), "fromEmail": (False, False)}


async def test_lead_processing_and_critical_ticket_templates_create_their_workflows(owner, n8n, flows, publish):
    leads = await flows(template="lead-processing")
    assert leads["name"] == "Lead processing" and leads["template"] == "lead-processing"
    assert leads["triggerEvents"] == ["lead.created"] and leads["mode"] == "create" and leads["webhookPath"]
    sent = n8n.api_calls("POST", "/workflows")[-1].body
    assert set(sent) == {"name", "nodes", "connections", "settings"}
    assert [n["type"] for n in sent["nodes"]] == ["n8n-nodes-base.webhook", "n8n-nodes-base.set",
                                                  "n8n-nodes-base.httpRequest", "n8n-nodes-base.emailSend",
                                                  "n8n-nodes-base.googleTasks"]
    # The seed's diagram: lead → CRM + e-mail + follow-up task, all from the lead's fields.
    assert {t["node"] for t in sent["connections"]["Lead"]["main"][0]} == {"Send to CRM", "Welcome e-mail",
                                                                            "Follow-up task"}
    trigger = sent["nodes"][0]
    assert trigger["parameters"]["path"] == leads["webhookPath"] and trigger["parameters"]["httpMethod"] == "POST"
    uuid.UUID(trigger["webhookId"])

    resp = await owner.post(f"{TEMPLATES}/critical-ticket-alert/flows", json={"name": "Alerts", "category": "ops"})
    assert resp.status_code == 201, resp.text
    alerts = resp.json()
    assert alerts["triggerEvents"] == ["ticket.created"] and alerts["category"] == "ops"
    sent = n8n.api_calls("POST", "/workflows")[-1].body
    nodes = {n["name"]: n for n in sent["nodes"]}
    [if_node] = [n for n in sent["nodes"] if n["type"] == "n8n-nodes-base.if"]
    [condition] = if_node["parameters"]["conditions"]["conditions"]
    assert condition["leftValue"] == "={{ $json.body.data.priority }}" and condition["rightValue"] == "CRITICAL"
    assert condition["operator"] == {"type": "string", "operation": "equals"}
    true_branch, false_branch = sent["connections"][if_node["name"]]["main"]
    assert "alert" in true_branch[0]["node"].lower() and true_branch[0]["node"] in nodes
    fan_out = {nodes[t["node"]]["type"] for t in sent["connections"][true_branch[0]["node"]]["main"][0]}
    assert fan_out == {"n8n-nodes-base.slack", "n8n-nodes-base.twilio", "n8n-nodes-base.googleCalendar"}
    assert false_branch[0]["node"] == "Not critical"
    assert sent["connections"]["Platform event"]["main"][0][0]["node"] == if_node["name"]

    # It works end to end against the fake: credentials filled in, active, a ticket arrives, an execution runs.
    await activate_filling_credentials(owner, alerts, n8n.url, n8n.api_key)
    await publish("ticket.created", {"ticketId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()),
                                     "subject": "Down", "priority": "CRITICAL", "status": "OPEN"})
    await n8n.wait_for(lambda: len(n8n.executions_of(alerts["workflowId"])) == 1)


async def test_activating_before_the_credentials_are_filled_in_names_what_to_fill_in(owner, n8n, flows, publish):
    leads = await flows(template="lead-processing")
    activate = f"{FLOWS}/{leads['id']}/activate"
    problem = assert_problem(await owner.post(activate), 409, detail='"Welcome e-mail" needs a credential of type smtp')
    assert problem["workflowId"] == leads["workflowId"]
    assert problem["editorUrl"] == f"{n8n.url}/workflow/{leads['workflowId']}"
    assert problem["nodes"] == [
        {"node": "Welcome e-mail", "credentialTypes": ["smtp"], "issues": ["Missing required credential: smtp"]},
        {"node": "Follow-up task", "credentialTypes": ["googleTasksOAuth2Api"],
         "issues": ["Missing required credential: googleTasksOAuth2Api"]}]
    assert "Follow-up task" in problem["detail"] and problem["editorUrl"] in problem["detail"]
    # Nothing changed: the flow is inactive here and in n8n, and receives nothing.
    flow = (await owner.get(f"{FLOWS}/{leads['id']}")).json()
    assert flow["active"] is False and flow["deliveryStatus"] == "PAUSED" and flow["activatedAt"] is None
    assert n8n.workflows[leads["workflowId"]]["active"] is False

    # One credential filled in: only the other node is still named.
    await fill_in_credentials(n8n.url, n8n.api_key, leads["workflowId"], {"Welcome e-mail": ["smtp"]})
    problem = assert_problem(await owner.post(activate), 409)
    assert [(n["node"], n["credentialTypes"]) for n in problem["nodes"]] == [("Follow-up task",
                                                                               ["googleTasksOAuth2Api"])]
    # All filled in: it activates and the next lead reaches the workflow.
    await fill_in_credentials(n8n.url, n8n.api_key, leads["workflowId"], {"Follow-up task": ["googleTasksOAuth2Api"]})
    assert (await owner.post(activate)).json()["active"] is True
    await publish("lead.created", lead_data())
    await n8n.wait_for(lambda: len(n8n.executions_of(leads["workflowId"])) == 1)


async def test_daily_report_template_schedules_at_nine_and_reads_metrics_with_a_platform_api_key(
        owner, n8n, flows, auth_server, owner_token, database):
    async with httpx.AsyncClient(base_url=auth_server.url, headers=bearer(owner_token), timeout=10) as auth:
        created = await auth.post("/api/auth/api-keys", json={"name": "n8n daily report", "scopes": ["leads:read"]})
    assert created.status_code == 201, created.text
    api_key = created.json()["key"]
    assert api_key.startswith("plk_")
    platform = "http://127.0.0.1:8080"
    resp = await owner.post(f"{TEMPLATES}/daily-report/flows",
                            json={"params": {"platformUrl": platform + "/", "apiKey": api_key,
                                             "timezone": "America/Sao_Paulo"}})
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["name"] == "Daily report" and report["template"] == "daily-report"
    assert report["webhookPath"] is None and report["webhookUrl"] is None and report["deliveryStatus"] is None
    assert report["triggerEvents"] == [] and report["secret"] is None
    assert api_key not in resp.text

    sent = n8n.api_calls("POST", "/workflows")[-1].body
    [schedule] = [n for n in sent["nodes"] if n["type"] == "n8n-nodes-base.scheduleTrigger"]
    [interval] = schedule["parameters"]["rule"]["interval"]
    assert (interval["field"], interval["triggerAtHour"], interval["triggerAtMinute"]) == ("days", 9, 0)
    reads = [n for n in sent["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    assert [n["name"] for n in reads] == ["Lead metrics", "Tickets", "Tenants", "Payments"]
    assert all(n["parameters"]["headerParameters"]["parameters"][0]["value"] == f"Bearer {api_key}" for n in reads)
    http = reads[0]
    assert http["parameters"]["method"] == "GET"
    assert http["parameters"]["url"] == f"{platform}/api/platform/leads/metrics"
    assert http["parameters"]["sendHeaders"] is True
    assert http["parameters"]["headerParameters"]["parameters"] == [{"name": "Authorization",
                                                                     "value": f"Bearer {api_key}"}]
    assert sent["connections"][schedule["name"]]["main"][0][0]["node"] == http["name"]
    assert sent["settings"]["timezone"] == "America/Sao_Paulo"
    # ... yesterday's numbers → an HTML report → e-mail.
    types = [n["type"] for n in sent["nodes"]]
    assert types[-3:] == ["n8n-nodes-base.code", "n8n-nodes-base.html", "n8n-nodes-base.emailSend"]
    assert not [n for n in sent["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    # The key went to n8n only: nothing in our database holds it in clear.
    async with database.sessionmaker() as session:
        for table in ("n8n_flows", "webhook_endpoints", "n8n_settings"):
            dump = (await session.execute(text(f"SELECT string_agg(t::text, ' ') FROM {table} t"))).scalar_one()
            assert api_key not in (dump or ""), table
    # Schedule-only flows activate in n8n (once the e-mail node has its credential) but receive no events.
    await activate_filling_credentials(owner, report, n8n.url, n8n.api_key)
    logs = (await owner.get(f"{FLOWS}/{report['id']}/logs")).json()
    assert logs["deliveries"] == [] and logs["executionsError"] is None

    bad = [
        {"params": {"platformUrl": platform}},  # apiKey missing
        {"params": {"platformUrl": platform, "apiKey": "not-a-platform-key"}},
        {"params": {"platformUrl": "ftp://x", "apiKey": api_key}},
        {"params": {"platformUrl": platform, "apiKey": api_key, "extra": "1"}},
        {"params": {"platformUrl": platform, "apiKey": api_key}, "triggerEvents": ["lead.created"]},
    ]
    for body in bad:
        resp = await owner.post(f"{TEMPLATES}/daily-report/flows", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert api_key not in resp.text
    assert (await owner.post(f"{TEMPLATES}/nope/flows", json={})).status_code == 404
    assert (await owner.post(FLOWS, json={"template": "daily-report", "params": {"platformUrl": platform,
                                                                                 "apiKey": api_key}})).status_code == 201


async def test_failed_payment_template_branches_on_the_last_attempt(owner, n8n, flows, publish):
    flow = await flows(template="failed-payment")
    assert flow["triggerEvents"] == ["billing.payment_failed"] and flow["webhookPath"]
    sent = n8n.api_calls("POST", "/workflows")[-1].body
    nodes = {n["name"]: n for n in sent["nodes"]}
    [if_node] = [n for n in sent["nodes"] if n["type"] == "n8n-nodes-base.if"]
    [condition] = if_node["parameters"]["conditions"]["conditions"]
    assert condition["leftValue"] == "={{ $json.finalAttempt }}"
    assert condition["operator"]["type"] == "boolean" and condition["operator"]["operation"] == "true"
    last, other = sent["connections"][if_node["name"]]["main"]
    assert {nodes[t["node"]]["type"] for t in last} == {"n8n-nodes-base.emailSend", "n8n-nodes-base.slack"}
    assert [nodes[t["node"]]["type"] for t in other] == ["n8n-nodes-base.emailSend"]

    await activate_filling_credentials(owner, flow, n8n.url, n8n.api_key)
    await publish("billing.payment_failed", {"tenantId": str(uuid.uuid4()), "invoiceId": "in_1", "amountDue": 4900,
                                             "currency": "USD", "attemptCount": 4, "nextPaymentAttempt": None,
                                             "finalAttempt": True})
    await n8n.wait_for(lambda: len(n8n.executions_of(flow["workflowId"])) == 1)
