"""The seed's three use cases as ready-made n8n workflows.

    lead-processing        on `lead.created`: the lead's fields, ready for the next step (CRM, e-mail ...)
    critical-ticket-alert  on `ticket.created`: an IF node lets only priority CRITICAL through to the alert
    daily-report           every day at 09:00: reads the platform's lead metrics with a platform API key

Event-driven templates start with the platform's Webhook trigger (the n8n Webhook node hands the request
on as `{headers, params, query, body}`, so the event is `$json.body`). The daily report has no webhook: it
calls the platform (`GET {platformUrl}/api/platform/leads/metrics`, `Authorization: Bearer <apiKey>`).
The key is written into that node's headers in n8n and never stored by the platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webhook_dispatcher.n8n.workflows import WEBHOOK_NODE_NAME, connect, node, webhook_node, workflow

API_KEY_PREFIX = "plk_"


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = True
    secret: bool = False  # sent to n8n only, never stored nor shown by the platform


@dataclass(frozen=True)
class BuildContext:
    name: str
    webhook_path: str | None
    webhook_id: str | None
    params: dict[str, str]


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    description: str
    category: str
    trigger_events: tuple[str, ...]
    webhook: bool  # starts with the platform's Webhook trigger (else: it cannot receive events)
    build: Callable[[BuildContext], dict[str, Any]]
    params: tuple[Param, ...] = field(default_factory=tuple)


def _assignment(name: str, value: str, type_: str = "string") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "value": value, "type": type_}


def _set_node(name: str, position: tuple[int, int], assignments: list[dict[str, Any]]) -> dict[str, Any]:
    return node(name, "n8n-nodes-base.set", 3.4, position,
                {"mode": "manual", "assignments": {"assignments": assignments}, "includeOtherFields": False,
                 "options": {}})


def _lead_processing(ctx: BuildContext) -> dict[str, Any]:
    assert ctx.webhook_path and ctx.webhook_id
    data = "$json.body.data"
    lead = _set_node("Lead", (260, 0), [
        _assignment("leadId", f"={{{{ {data}.leadId }}}}"),
        _assignment("name", f"={{{{ {data}.name }}}}"),
        _assignment("email", f"={{{{ {data}.email }}}}"),
        _assignment("company", f"={{{{ {data}.company }}}}"),
        _assignment("source", f"={{{{ {data}.source }}}}"),
        _assignment("stage", f"={{{{ {data}.stage }}}}"),
        _assignment("tenantId", "={{ $json.body.tenantId }}"),
        _assignment("eventId", "={{ $json.body.id }}"),
    ])
    nodes = [webhook_node(ctx.webhook_path, ctx.webhook_id), lead,
             node("Send to CRM", "n8n-nodes-base.noOp", 1, (520, 0))]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, "Lead")
    connect(connections, "Lead", "Send to CRM")
    return workflow(ctx.name, nodes, connections)


PRIORITY_EXPRESSION = "={{ $json.body.data.priority }}"


def _critical_ticket_alert(ctx: BuildContext) -> dict[str, Any]:
    assert ctx.webhook_path and ctx.webhook_id
    is_critical = node("Priority is CRITICAL", "n8n-nodes-base.if", 2, (260, 0), {
        "conditions": {
            "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
            "conditions": [{"id": str(uuid.uuid4()), "leftValue": PRIORITY_EXPRESSION, "rightValue": "CRITICAL",
                            "operator": {"type": "string", "operation": "equals"}}],
            "combinator": "and",
        },
        "options": {},
    })
    data = "$json.body.data"
    alert = _set_node("Critical ticket alert", (520, -100), [
        _assignment("text", f"=Critical ticket: {{{{ {data}.subject }}}} ({{{{ {data}.ticketId }}}})"),
        _assignment("ticketId", f"={{{{ {data}.ticketId }}}}"),
        _assignment("tenantId", f"={{{{ {data}.tenantId }}}}"),
    ])
    nodes = [webhook_node(ctx.webhook_path, ctx.webhook_id), is_critical, alert,
             node("Not critical", "n8n-nodes-base.noOp", 1, (520, 100))]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, "Priority is CRITICAL")
    connect(connections, "Priority is CRITICAL", "Critical ticket alert", output=0)  # true
    connect(connections, "Priority is CRITICAL", "Not critical", output=1)  # false
    return workflow(ctx.name, nodes, connections)


METRICS_PATH = "/api/platform/leads/metrics"


def _daily_report(ctx: BuildContext) -> dict[str, Any]:
    schedule = node("Every day at 09:00", "n8n-nodes-base.scheduleTrigger", 1.2, (0, 0), {
        "rule": {"interval": [{"field": "days", "daysInterval": 1, "triggerAtHour": 9, "triggerAtMinute": 0}]},
    })
    metrics = node("Lead metrics", "n8n-nodes-base.httpRequest", 4.2, (260, 0), {
        "method": "GET",
        "url": ctx.params["platformUrl"].rstrip("/") + METRICS_PATH,
        "sendHeaders": True,
        "headerParameters": {"parameters": [{"name": "Authorization", "value": f"Bearer {ctx.params['apiKey']}"}]},
        "options": {},
    })
    report = _set_node("Daily report", (520, 0), [
        _assignment("report", "={{ JSON.stringify($json) }}"),
        _assignment("date", "={{ $now.toISODate() }}"),
    ])
    connections: dict[str, Any] = {}
    connect(connections, "Every day at 09:00", "Lead metrics")
    connect(connections, "Lead metrics", "Daily report")
    settings = {"timezone": ctx.params["timezone"]} if ctx.params.get("timezone") else None
    return workflow(ctx.name, [schedule, metrics, report], connections, settings)


TEMPLATES: dict[str, Template] = {t.id: t for t in (
    Template(
        id="lead-processing", name="Lead processing", category="sales",
        description="On every new lead (lead.created): picks the lead's fields (name, e-mail, company, source, "
                    "stage) ready for the next step, e.g. a CRM or a welcome e-mail.",
        trigger_events=("lead.created",), webhook=True, build=_lead_processing),
    Template(
        id="critical-ticket-alert", name="Critical ticket alert", category="support",
        description="On every new ticket (ticket.created): an IF node on {{$json.body.data.priority}} lets only "
                    "CRITICAL tickets through to the alert step (connect it to e-mail, Slack, SMS ...).",
        trigger_events=("ticket.created",), webhook=True, build=_critical_ticket_alert),
    Template(
        id="daily-report", name="Daily report", category="reporting",
        description="Every day at 09:00 (Schedule trigger) reads the platform's lead metrics "
                    f"(GET {{platformUrl}}{METRICS_PATH}) with a platform API key as Bearer token, and builds a "
                    "report. Create the key with POST /api/auth/api-keys (scope `leads:read` is enough); "
                    "it is written into the workflow in n8n and never stored by the platform.",
        trigger_events=(), webhook=False, build=_daily_report,
        params=(
            Param("platformUrl", "Base URL n8n uses to reach the platform API, e.g. https://plataforma.example.com "
                  "(defaults to PLATFORM_PUBLIC_URL when that is set)"),
            Param("apiKey", "A platform API key (plk_...) allowed to read lead metrics", secret=True),
            Param("timezone", "Time zone of the 09:00 schedule, e.g. America/Sao_Paulo (default: n8n's)",
                  required=False),
        )),
)}
