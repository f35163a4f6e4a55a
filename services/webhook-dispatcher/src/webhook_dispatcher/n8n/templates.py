"""The seed's use cases as ready-made n8n workflows of real n8n nodes: the owner only fills in credentials
(SMTP, CRM header auth, Google, Slack, Twilio) in n8n, and adjusts addresses given as parameters. n8n 2.x
refuses to activate a workflow while a node lacks its credential: activating the flow before then answers
409 with the nodes and credential types to fill in (`readiness`).

    lead-processing        on `lead.created`: HTTP Request to the CRM + welcome e-mail + a follow-up task
    critical-ticket-alert  on `ticket.created`: an IF lets only CRITICAL through → Slack + SMS (Twilio) +
                           a calendar event for the incident review
    daily-report           every day at 09:00: yesterday's leads, tickets, tenants and payments read from the
                           platform with a platform API key → an HTML report → e-mail
    failed-payment         on `billing.payment_failed`: an IF on `finalAttempt` → last attempt: e-mail the
                           customer and alert the team on Slack; otherwise a reminder with the next attempt

Event-driven templates start with the platform's Webhook trigger (the n8n Webhook node hands the request
on as `{headers, params, query, body}`, so the event is `$json.body`). The daily report has no webhook: it
calls the platform (`Authorization: Bearer <apiKey>`); the key is written into those nodes' headers in n8n
and never stored by the platform.
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


Build = Callable[[BuildContext], dict[str, Any]]


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    description: str
    category: str
    trigger_events: tuple[str, ...]
    build: Build
    params: tuple[Param, ...] = field(default_factory=tuple)

    @property
    def webhook(self) -> bool:
        """Starts with the platform's Webhook trigger: it runs on events (else on a schedule)."""
        return bool(self.trigger_events)


TEMPLATES: dict[str, Template] = {}


def _template(id: str, name: str, category: str, description: str, *, events: tuple[str, ...] = (),
              params: tuple[Param, ...] = ()) -> Callable[[Build], Build]:
    """Registers the decorated workflow builder as the template `id`."""

    def register(build: Build) -> Build:
        TEMPLATES[id] = Template(id=id, name=name, description=description, category=category,
                                 trigger_events=events, build=build, params=params)
        return build

    return register


# Parameters several templates take.
FROM_EMAIL = Param("fromEmail", "Sender address of the e-mails (default a placeholder to edit in n8n)",
                   required=False)
SLACK_CHANNEL = Param("slackChannel", "Slack channel, e.g. #support", required=False)


DATA = "$json.body.data"  # the event's data, in a webhook trigger's output


def _assignment(name: str, value: str, type_: str = "string") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "value": value, "type": type_}


def _copy(*fields: str, type_: str = "string") -> list[dict[str, Any]]:
    """Assignments that copy the event's `data.<field>` as is, under the same name."""
    return [_assignment(f, f"={{{{ {DATA}.{f} }}}}", type_) for f in fields]


def _set_node(name: str, position: tuple[int, int], assignments: list[dict[str, Any]]) -> dict[str, Any]:
    return node(name, "n8n-nodes-base.set", 3.4, position,
                {"mode": "manual", "assignments": {"assignments": assignments}, "includeOtherFields": False,
                 "options": {}})


def _param(ctx: BuildContext, name: str, default: str) -> str:
    return ctx.params.get(name) or default


def _email(name: str, position: tuple[int, int], *, to: str, subject: str, html: str, from_: str) -> dict[str, Any]:
    """Send Email (SMTP credential filled in n8n)."""
    return node(name, "n8n-nodes-base.emailSend", 2.1, position,
                {"fromEmail": from_, "toEmail": to, "subject": subject, "emailFormat": "html", "html": html,
                 "options": {}})


def _slack(name: str, position: tuple[int, int], channel: str, text: str) -> dict[str, Any]:
    """Slack: post a message (Slack credential filled in n8n)."""
    return node(name, "n8n-nodes-base.slack", 2.3, position,
                {"select": "channel", "channelId": {"__rl": True, "value": channel, "mode": "name"}, "text": text,
                 "otherOptions": {}})


def _get_platform(name: str, position: tuple[int, int], ctx: BuildContext, path: str,
                  query: dict[str, str] | None = None) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "method": "GET",
        "url": ctx.params["platformUrl"].rstrip("/") + path,
        "sendHeaders": True,
        "headerParameters": {"parameters": [{"name": "Authorization", "value": f"Bearer {ctx.params['apiKey']}"}]},
        "options": {},
    }
    if query:
        parameters["sendQuery"] = True
        parameters["queryParameters"] = {"parameters": [{"name": k, "value": v} for k, v in query.items()]}
    return node(name, "n8n-nodes-base.httpRequest", 4.2, position, parameters)


@_template(
    "lead-processing", "Lead processing", "sales",
    "On every new lead (lead.created): sends the lead to a CRM (HTTP Request with a Header Auth credential), "
    "e-mails a welcome (SMTP credential) and adds a follow-up task due in 2 days (Google Tasks credential).",
    events=("lead.created",),
    params=(Param("crmUrl", "The CRM's endpoint that takes a new lead as JSON (POST)", required=False),
            FROM_EMAIL))
def _lead_processing(ctx: BuildContext) -> dict[str, Any]:
    assert ctx.webhook_path and ctx.webhook_id
    lead = _set_node("Lead", (260, 0), [
        *_copy("leadId", "name", "email", "company", "source", "stage"),
        _assignment("tenantId", "={{ $json.body.tenantId }}"),
        _assignment("eventId", "={{ $json.body.id }}"),
    ])
    crm = node("Send to CRM", "n8n-nodes-base.httpRequest", 4.2, (520, -160), {
        "method": "POST",
        "url": _param(ctx, "crmUrl", "https://crm.example.com/api/leads"),
        "authentication": "genericCredentialType", "genericAuthType": "httpHeaderAuth",
        "sendBody": True, "specifyBody": "json",
        "jsonBody": "={{ JSON.stringify({ externalId: $json.leadId, name: $json.name, email: $json.email, "
                    "company: $json.company, source: $json.source }) }}",
        "options": {},
    })
    welcome = _email("Welcome e-mail", (520, 0), to="={{ $json.email }}", from_=_param(ctx, "fromEmail", "sales@example.com"),
                     subject="=Thanks for your interest, {{ $json.name }}",
                     html="=<p>Hello {{ $json.name }},</p><p>thank you for contacting us. We will be in touch "
                          "shortly.</p>")
    follow_up = node("Follow-up task", "n8n-nodes-base.googleTasks", 1, (520, 160), {
        "task": "@default",
        "title": "=Follow up with {{ $json.name }} ({{ $json.company || $json.email }})",
        "additionalFields": {"dueDate": "={{ $now.plus({ days: 2 }).toISO() }}",
                             "notes": "=Lead {{ $json.leadId }} from {{ $json.source }}"},
    })
    nodes = [webhook_node(ctx.webhook_path, ctx.webhook_id), lead, crm, welcome, follow_up]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, "Lead")
    for target in ("Send to CRM", "Welcome e-mail", "Follow-up task"):
        connect(connections, "Lead", target)
    return workflow(ctx.name, nodes, connections)


PRIORITY_EXPRESSION = "={{ $json.body.data.priority }}"


def _if_node(name: str, position: tuple[int, int], left: str, operator: dict[str, Any],
             right: Any = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"id": str(uuid.uuid4()), "leftValue": left, "rightValue": right,
                                 "operator": operator}
    return node(name, "n8n-nodes-base.if", 2, position, {
        "conditions": {
            "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
            "conditions": [condition],
            "combinator": "and",
        },
        "options": {},
    })


@_template(
    "critical-ticket-alert", "Critical ticket alert", "support",
    "On every new ticket (ticket.created): an IF node on {{$json.body.data.priority}} lets only CRITICAL "
    "tickets through to the alert: a Slack message, an SMS (Twilio) and an incident review in Google Calendar "
    "(fill in the three credentials in n8n).",
    events=("ticket.created",),
    params=(SLACK_CHANNEL,
            Param("smsFrom", "Twilio number the SMS is sent from (E.164)", required=False),
            Param("smsTo", "Who gets the SMS (E.164)", required=False),
            Param("calendarId", "Google Calendar id of the incident review (default: primary)",
                  required=False)))
def _critical_ticket_alert(ctx: BuildContext) -> dict[str, Any]:
    assert ctx.webhook_path and ctx.webhook_id
    is_critical = _if_node("Priority is CRITICAL", (260, 0), PRIORITY_EXPRESSION,
                           {"type": "string", "operation": "equals"}, "CRITICAL")
    alert = _set_node("Critical ticket alert", (520, -100), [
        _assignment("text", f"=Critical ticket: {{{{ {DATA}.subject }}}} ({{{{ {DATA}.ticketId }}}})"),
        *_copy("ticketId", "tenantId", "subject"),
    ])
    slack = _slack("Slack", (780, -260), _param(ctx, "slackChannel", "#support"), "=:rotating_light: {{ $json.text }}")
    sms = node("SMS", "n8n-nodes-base.twilio", 1, (780, -100), {
        "from": _param(ctx, "smsFrom", "+15005550006"), "to": _param(ctx, "smsTo", "+15005550006"),
        "message": "={{ $json.text }}",
    })
    calendar = _param(ctx, "calendarId", "primary")
    review = node("Incident review", "n8n-nodes-base.googleCalendar", 1.3, (780, 60), {
        # "From list" mode: n8n's "ID" mode only takes an e-mail-like id and refuses to activate on "primary".
        "calendar": {"__rl": True, "value": calendar, "mode": "list", "cachedResultName": calendar},
        "start": "={{ $now.plus({ hours: 1 }).toISO() }}",
        "end": "={{ $now.plus({ hours: 2 }).toISO() }}",
        "additionalFields": {"summary": "=Incident: {{ $json.subject }}",
                             "description": "=Ticket {{ $json.ticketId }} of tenant {{ $json.tenantId }}"},
    })
    nodes = [webhook_node(ctx.webhook_path, ctx.webhook_id), is_critical, alert, slack, sms, review,
             node("Not critical", "n8n-nodes-base.noOp", 1, (520, 100))]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, "Priority is CRITICAL")
    connect(connections, "Priority is CRITICAL", "Critical ticket alert", output=0)  # true
    connect(connections, "Priority is CRITICAL", "Not critical", output=1)  # false
    for target in ("Slack", "SMS", "Incident review"):
        connect(connections, "Critical ticket alert", target)
    return workflow(ctx.name, nodes, connections)


METRICS_PATH = "/api/platform/leads/metrics"
YESTERDAY_FROM = "={{ $now.minus({ days: 1 }).startOf('day').toISO() }}"
YESTERDAY_TO = "={{ $now.startOf('day').toISO() }}"
# Counts yesterday's rows of the platform's lists (newest first; the first 100 are enough for a day of most
# platforms, and the report says when a list was cut).
_REPORT_CODE = """const from = $now.minus({ days: 1 }).startOf('day');
const to = $now.startOf('day');
const inDay = (value) => { if (!value) return false; const t = DateTime.fromISO(value); return t >= from && t < to; };
const page = (name) => $(name).first().json;
const tickets = page('Tickets').items.filter((t) => inDay(t.createdAt));
const tenants = page('Tenants').items.filter((t) => inDay(t.createdAt));
const paid = page('Payments').items.filter((i) => inDay(i.paidAt));
const leads = page('Lead metrics');
return [{ json: {
  date: from.toISODate(),
  leads: leads.totals,
  tickets: { created: tickets.length, critical: tickets.filter((t) => t.priority === 'CRITICAL').length },
  tenants: { created: tenants.length },
  payments: { count: paid.length, amountPaid: paid.reduce((sum, i) => sum + i.amountPaid, 0),
              currency: paid.length ? paid[0].currency : null },
} }];"""
_REPORT_HTML = """<h1>Plataforma: {{ $json.date }}</h1>
<table>
<tr><td>New leads</td><td>{{ $json.leads.total ?? JSON.stringify($json.leads) }}</td></tr>
<tr><td>Tickets opened (critical)</td><td>{{ $json.tickets.created }} ({{ $json.tickets.critical }})</td></tr>
<tr><td>New tenants</td><td>{{ $json.tenants.created }}</td></tr>
<tr><td>Payments</td><td>{{ $json.payments.count }}: {{ $json.payments.amountPaid / 100 }} {{ $json.payments.currency }}</td></tr>
</table>"""


@_template(
    "daily-report", "Daily report", "reporting",
    "Every day at 09:00 (Schedule trigger) reads yesterday's numbers from the platform with a platform API "
    f"key as Bearer token (lead metrics GET {{platformUrl}}{METRICS_PATH}, tickets, tenants, paid invoices), "
    "builds an HTML report and e-mails it. Create the key with POST /api/auth/api-keys (scopes `leads:read`, "
    "`support:read`, `tenants:read`, `billing:read`); it is written into the workflow in n8n and never stored "
    "by the platform.",
    params=(
        Param("platformUrl", "Base URL n8n uses to reach the platform API, e.g. "
              "https://plataforma.example.com (defaults to PLATFORM_PUBLIC_URL when that is set)"),
        Param("apiKey", "A platform API key (plk_...) allowed to read lead metrics", secret=True),
        Param("timezone", "Time zone of the 09:00 schedule, e.g. America/Sao_Paulo (default: n8n's)",
              required=False),
        Param("reportTo", "Who receives the report by e-mail", required=False),
        FROM_EMAIL,
    ))
def _daily_report(ctx: BuildContext) -> dict[str, Any]:
    schedule = node("Every day at 09:00", "n8n-nodes-base.scheduleTrigger", 1.2, (0, 0), {
        "rule": {"interval": [{"field": "days", "daysInterval": 1, "triggerAtHour": 9, "triggerAtMinute": 0}]},
    })
    reads = [
        _get_platform("Lead metrics", (220, 0), ctx, METRICS_PATH,
                      {"createdFrom": YESTERDAY_FROM, "createdTo": YESTERDAY_TO}),
        _get_platform("Tickets", (440, 0), ctx, "/api/platform/support/tickets", {"limit": "100"}),
        _get_platform("Tenants", (660, 0), ctx, "/api/platform/tenants", {"limit": "100", "sort": "created_desc"}),
        _get_platform("Payments", (880, 0), ctx, "/api/platform/billing/invoices", {"status": "paid", "limit": "100"}),
    ]
    numbers = node("Yesterday's numbers", "n8n-nodes-base.code", 2, (1100, 0), {"jsCode": _REPORT_CODE})
    html = node("HTML report", "n8n-nodes-base.html", 1.2, (1320, 0),
                {"operation": "generateHtmlTemplate", "html": _REPORT_HTML})
    mail = _email("E-mail the report", (1540, 0), to=_param(ctx, "reportTo", "owner@example.com"),
                  from_=_param(ctx, "fromEmail", "reports@example.com"),
                  subject="=Plataforma daily report {{ $('Yesterday\'s numbers').first().json.date }}",
                  html="={{ $json.html }}")
    chain = [schedule, *reads, numbers, html, mail]
    connections: dict[str, Any] = {}
    for source, target in zip(chain, chain[1:], strict=False):
        connect(connections, source["name"], target["name"])
    settings = {"timezone": ctx.params["timezone"]} if ctx.params.get("timezone") else None
    return workflow(ctx.name, chain, connections, settings)


@_template(
    "failed-payment", "Failed payment", "billing",
    "On every failed payment (billing.payment_failed): an IF on {{$json.body.data.finalAttempt}} splits the "
    "last attempt (Stripe gave up: tell the customer the service will be suspended, alert the team on Slack) "
    "from the others (a reminder with the next attempt's date).",
    events=("billing.payment_failed",),
    params=(Param("customerEmail", "Where the customer e-mails go (default: an expression to edit in n8n)",
                  required=False), FROM_EMAIL, SLACK_CHANNEL))
def _failed_payment(ctx: BuildContext) -> dict[str, Any]:
    assert ctx.webhook_path and ctx.webhook_id
    payment = _set_node("Payment", (260, 0), [
        *_copy("tenantId", "invoiceId"),
        _assignment("amount", f"={{{{ ({DATA}.amountDue / 100).toFixed(2) }}}} {{{{ {DATA}.currency }}}}"),
        *_copy("attemptCount", type_="number"),
        *_copy("nextPaymentAttempt", "hostedInvoiceUrl"),
        *_copy("finalAttempt", type_="boolean"),
    ])
    last = _if_node("Last attempt?", (520, 0), "={{ $json.finalAttempt }}", {"type": "boolean", "operation": "true",
                                                                               "singleValue": True})
    billing_email = _param(ctx, "customerEmail", "={{ $json.tenantId }}@customers.example.com")
    from_ = _param(ctx, "fromEmail", "billing@example.com")
    final_mail = _email("Tell the customer: service suspended", (780, -120), to=billing_email, from_=from_,
                        subject="=Payment failed: your service will be suspended",
                        html="=<p>We could not collect {{ $json.amount }} after {{ $json.attemptCount }} attempts.</p>"
                             "<p>Pay now to keep your service: <a href=\"{{ $json.hostedInvoiceUrl }}\">invoice</a>.</p>")
    team = _slack("Alert the team", (780, 40), _param(ctx, "slackChannel", "#billing"),
                  "=:warning: Stripe gave up on invoice {{ $json.invoiceId }} ({{ $json.amount }}) of tenant "
                  "{{ $json.tenantId }}")
    reminder = _email("Remind the customer", (780, 200), to=billing_email, from_=from_,
                      subject="=Payment failed: we will try again",
                      html="=<p>Payment attempt {{ $json.attemptCount }} of {{ $json.amount }} failed. We will "
                           "try again on {{ $json.nextPaymentAttempt }}.</p><p>Update your payment method: "
                           "<a href=\"{{ $json.hostedInvoiceUrl }}\">invoice</a>.</p>")
    nodes = [webhook_node(ctx.webhook_path, ctx.webhook_id), payment, last, final_mail, team, reminder]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, "Payment")
    connect(connections, "Payment", "Last attempt?")
    connect(connections, "Last attempt?", final_mail["name"], output=0)  # true: Stripe gave up
    connect(connections, "Last attempt?", "Alert the team", output=0)
    connect(connections, "Last attempt?", "Remind the customer", output=1)
    return workflow(ctx.name, nodes, connections)
