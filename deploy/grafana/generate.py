"""Builds deploy/grafana/dashboards/*.json with the Grafana Foundation SDK's typed builders.

Run `python deploy/grafana/generate.py` after editing; tests/deploy/test_dashboards.py fails when a
committed dashboard differs from what this builds, when a query does not parse as PromQL, or when it names
a metric or label the services do not export. `service` and `instance` are target labels set by the scrape
configuration (deploy/prometheus, the PodMonitor), so every panel can be narrowed by the variables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as viz
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'service=~"$service", instance=~"$instance"'
# Requests of API clients: Prometheus's own scrapes and the orchestrator's probes are not traffic (at a 1 s
# scrape they were most of an idle service's request rate, and a starting service's 503 /readyz its "errors").
API = SEL + ', route!~"/metrics|/healthz|/readyz"'
RATE = "$__rate_interval"


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    return query.legend_format(legend) if legend else query


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(v, c) for v, c in steps])


GREEN = (None, "green")


def series(title: str, unit: str, queries: list[tuple[str, str]], *, w: int = 12, h: int = 8,
           description: str = "", limits: db.ThresholdsConfig | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).datasource(DS).unit(unit).span(w).height(h)
             .fill_opacity(10).line_width(1)
             .legend(viz.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
                     .show_legend(True))
             .tooltip(viz.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)))
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(q(expr, legend, chr(ord("A") + i)))
    if description:
        panel = panel.description(description)
    return panel.thresholds(limits) if limits else panel


def single(title: str, unit: str, expr: str, limits: db.ThresholdsConfig, *, w: int = 6, h: int = 4,
           description: str = "", legend: str = "") -> stat.Panel:
    panel = stat.Panel().title(title).datasource(DS).unit(unit).span(w).height(h).with_target(
        q(expr, legend)).thresholds(limits).color_mode(BigValueColorMode.VALUE).graph_mode(
        BigValueGraphMode.AREA).reduce_options(viz.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return panel.description(description) if description else panel


def variables(board: db.Dashboard, *, service: str | None = None) -> db.Dashboard:
    board = board.with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    if service is None:
        board = board.with_variable(
            db.QueryVariable("service").label("Service").datasource(DS)
            .query('label_values(up{job="plataforma"}, service)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*"))
        instances = 'label_values(up{job="plataforma", service=~"$service"}, instance)'
    else:
        board = board.with_variable(db.ConstantVariable("service").value(service))
        instances = f'label_values(up{{job="plataforma", service="{service}"}}, instance)'
    return board.with_variable(
        db.QueryVariable("instance").label("Instance").datasource(DS).query(instances)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*"))


def base(uid: str, title: str, tags: list[str]) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).tags(["plataforma", *tags]).timezone("utc").refresh("30s")
            .time("now-3h", "now").tooltip(DashboardCursorSync.CROSSHAIR).readonly()
            .link(db.DashboardLink("Plataforma").type("dashboards").tags(["plataforma"]).as_dropdown(True)
                  .include_vars(True).keep_time(True)))


def overview() -> db.Dashboard:
    up = f'up{{job="plataforma", {SEL}}}'
    return (
        variables(base("plataforma-overview", "Plataforma · Overview", ["overview"]))
        .with_row(db.Row("Services"))
        .with_panel(single("Services up", "none", f"sum(up{{job=\"plataforma\", {SEL}}})",
                           thresholds((None, "red"), (7, "green")), w=4,
                           description="Targets answering /metrics (7 services when one replica each)."))
        .with_panel(series("Up by instance", "none", [(f"min by (service, instance) ({up})", "{{service}} {{instance}}")],
                           w=8, h=4, limits=thresholds((None, "red"), (1, "green"))))
        .with_panel(single("5xx ratio (all services)", "percentunit",
                           f'(sum(rate(http_requests_total{{{API}, status=~"5.."}}[{RATE}])) or vector(0)) / '
                           f"sum(rate(http_requests_total{{{API}}}[{RATE}]))",
                           thresholds(GREEN, (0.01, "yellow"), (0.05, "red")), w=6))
        .with_panel(single("Requests/s", "reqps", f"sum(rate(http_requests_total{{{API}}}[{RATE}]))",
                           thresholds(GREEN), w=6))
        .with_panel(series("Request rate by service", "reqps",
                           [(f"sum by (service) (rate(http_requests_total{{{API}}}[{RATE}]))", "{{service}}")]))
        .with_panel(series("Error ratio (5xx) by service", "percentunit",
                           # 0 % (not "No data") for a service that served requests and no 5xx.
                           [(f'(sum by (service) (rate(http_requests_total{{{API}, status=~"5.."}}[{RATE}])) '
                             f"or 0 * sum by (service) (rate(http_requests_total{{{API}}}[{RATE}]))) / "
                             f"sum by (service) (rate(http_requests_total{{{API}}}[{RATE}]))", "{{service}}")],
                           limits=thresholds(GREEN, (0.01, "yellow"), (0.05, "red"))))
        .with_panel(series("Latency p50 / p95 / p99 by route", "s", [
            (f"histogram_quantile({p}, sum by (service, route, le) "
             f"(rate(http_request_duration_seconds_bucket{{{API}}}[{RATE}])))",
             f"p{round(p * 100)} {{{{service}}}} {{{{route}}}}")
            for p in (0.5, 0.95, 0.99)], w=24, h=10, limits=thresholds(GREEN, (0.5, "yellow"), (1, "red"))))
        .with_row(db.Row("Events (outbox → Kafka → consumers)"))
        .with_panel(series("Outbox backlog (unpublished rows) by service", "short",
                           [(f"max by (service) (outbox_unpublished{{{SEL}}})", "{{service}}")], w=8))
        .with_panel(series("Age of the oldest unpublished event", "s",
                           [(f"max by (service) (outbox_oldest_unpublished_age_seconds{{{SEL}}})", "{{service}}")],
                           w=8, limits=thresholds(GREEN, (10, "yellow"), (60, "red")),
                           description="The relay publishes in milliseconds: growth means it is not publishing."))
        .with_panel(series("Consumer lag by group and topic", "short",
                           [(f"sum by (group, topic) (kafka_consumer_lag_messages{{{SEL}}})",
                             "{{group}} · {{topic}}")], w=8, limits=thresholds(GREEN, (1000, "red"))))
        .with_panel(series("Events published per type", "ops",
                           [(f"sum by (event) (rate(events_published_total{{{SEL}}}[{RATE}]))", "{{event}}")]))
        .with_panel(series("Events received per type (all consumers)", "ops",
                           [(f"sum by (event) (rate(events_received_total{{{SEL}}}[{RATE}]))", "{{event}}")]))
        .with_panel(series("Events applied by consumer (after dedupe)", "ops",
                           [(f"sum by (service, consumer) (rate(events_consumed_total{{{SEL}}}[{RATE}]))",
                             "{{service}} · {{consumer}}")]))
        .with_panel(series("Consumer errors", "ops",
                           [(f"sum by (service, consumer, kind) (rate(event_consumer_errors_total{{{SEL}}}[{RATE}]))",
                             "{{service}} · {{consumer}} · {{kind}}")], limits=thresholds(GREEN, (0.001, "red"))))
        .with_row(db.Row("Webhooks"))
        .with_panel(series("Webhook deliveries by outcome", "ops",
                           [(f"sum by (outcome) (rate(webhook_deliveries_total{{{SEL}}}[{RATE}]))", "{{outcome}}")]))
        .with_panel(series("Webhook backlog: due lag", "s",
                           [(f"max(webhook_deliveries_due_lag_seconds{{{SEL}}})", "due lag")],
                           limits=thresholds(GREEN, (60, "yellow"), (300, "red"))))
    )


def auth() -> db.Dashboard:
    sel = 'service="auth", instance=~"$instance"'

    def route(path: str) -> str:
        return f'{sel}, route="{path}"'

    login, refresh = route("/api/auth/login"), route("/api/auth/refresh")
    introspect = route("/api/auth/api-keys/introspect")
    return (
        variables(base("plataforma-auth", "Plataforma · Auth", ["auth"]), service="auth")
        .with_panel(single("Logins/s (200)", "reqps",
                           f'sum(rate(http_requests_total{{{login}, status="200"}}[{RATE}]))', thresholds(GREEN)))
        .with_panel(single("Failed logins/s (401)", "reqps",
                           f'sum(rate(http_requests_total{{{login}, status="401"}}[{RATE}]))',
                           thresholds(GREEN, (0.5, "yellow"), (2, "red"))))
        .with_panel(single("Throttled logins/s (429)", "reqps",
                           f'sum(rate(http_requests_total{{{login}, status="429"}}[{RATE}]))',
                           thresholds(GREEN, (0.05, "yellow"), (0.2, "red"))))
        .with_panel(single("Refresh rejected/s (401)", "reqps",
                           f'sum(rate(http_requests_total{{{refresh}, status="401"}}[{RATE}]))',
                           thresholds(GREEN, (0.1, "yellow"), (1, "red")),
                           description="Expired, revoked or REUSED refresh tokens (a reuse revokes the family). "
                                       "Auth does not count reuse apart yet."))
        .with_panel(series("Login outcomes", "reqps",
                           [(f"sum by (status) (rate(http_requests_total{{{login}}}[{RATE}]))", "{{status}}")]))
        .with_panel(series("Refresh outcomes", "reqps",
                           [(f"sum by (status) (rate(http_requests_total{{{refresh}}}[{RATE}]))", "{{status}}")]))
        .with_panel(series("Login latency (Argon2 bound) p50 / p99", "s", [
            (f"histogram_quantile({p}, sum by (le) (rate(http_request_duration_seconds_bucket{{{login}}}[{RATE}])))",
             f"p{round(p * 100)}") for p in (0.5, 0.99)], limits=thresholds(GREEN, (0.5, "yellow"), (1, "red"))))
        .with_panel(series("API-key introspection by status", "reqps",
                           [(f"sum by (status) (rate(http_requests_total{{{introspect}}}[{RATE}]))", "{{status}}")],
                           description="Every service checks plk_ keys here; 429 = a client IP over its failures."))
        .with_panel(series("Requests by route", "reqps",
                           [(f"sum by (route) (rate(http_requests_total{{{sel}}}[{RATE}]))", "{{route}}")], w=24))
    )


def dispatcher() -> db.Dashboard:
    sel = 'service="webhook-dispatcher", instance=~"$instance"'
    return (
        variables(base("plataforma-dispatcher", "Plataforma · Webhook dispatcher", ["webhooks"]),
                  service="webhook-dispatcher")
        .with_panel(single("Deliveries/s (2xx)", "reqps",
                           f'sum(rate(webhook_deliveries_total{{{sel}, outcome="succeeded"}}[{RATE}]))',
                           thresholds(GREEN)))
        .with_panel(single("Pending backlog", "short", f"max(webhook_deliveries_pending{{{sel}}})",
                           thresholds(GREEN, (1000, "yellow"), (10000, "red"))))
        .with_panel(single("Lag of due deliveries", "s", f"max(webhook_deliveries_due_lag_seconds{{{sel}}})",
                           thresholds(GREEN, (60, "yellow"), (300, "red"))))
        .with_panel(single("Disabled endpoints", "short", f'max(webhook_endpoints{{{sel}, status="DISABLED"}})',
                           thresholds(GREEN, (1, "orange"))))
        .with_panel(series("Throughput by outcome (retries: retry_scheduled)", "reqps",
                           [(f"sum by (outcome) (rate(webhook_deliveries_total{{{sel}}}[{RATE}]))", "{{outcome}}")]))
        .with_panel(series("Event → 2xx latency", "s", [
            (f"histogram_quantile({p}, sum by (le) (rate(webhook_delivery_latency_seconds_bucket{{{sel}}}[{RATE}])))",
             f"p{round(p * 100)}") for p in (0.5, 0.99)], limits=thresholds(GREEN, (5, "yellow"), (60, "red"))))
        .with_panel(series("Attempts by result", "reqps",
                           [(f"sum by (result) (rate(webhook_attempts_total{{{sel}}}[{RATE}]))", "{{result}}")]))
        .with_panel(series("Attempt duration (all endpoints)", "s", [
            (f"histogram_quantile({p}, sum by (le) (rate(webhook_attempt_duration_seconds_bucket{{{sel}}}[{RATE}])))",
             f"p{round(p * 100)}") for p in (0.5, 0.99)],
            description="Per endpoint: GET /api/platform/webhooks/{id}/deliveries (an endpoint label would be "
                        "unbounded in Prometheus).", limits=thresholds(GREEN, (5, "yellow"), (15, "red"))))
        .with_panel(series("Backlog: pending, due now, and their ages", "short", [
            (f"max(webhook_deliveries_pending{{{sel}}})", "pending"),
            (f"max(webhook_deliveries_due{{{sel}}})", "due now"),
            (f"max(webhook_deliveries_oldest_pending_age_seconds{{{sel}}})", "oldest pending age (s)"),
            (f"max(webhook_deliveries_due_lag_seconds{{{sel}}})", "due lag (s)")]))
        .with_panel(series("Endpoints by status", "short",
                           [(f"max by (status) (webhook_endpoints{{{sel}}})", "{{status}}")]))
        .with_panel(series("Lanes per replica: queued, in flight, endpoints owned", "short", [
            (f"sum by (instance) (webhook_engine_queued{{{sel}}})", "queued {{instance}}"),
            (f"sum by (instance) (webhook_engine_in_flight{{{sel}}})", "in flight {{instance}}"),
            (f"sum by (instance) (webhook_engine_endpoints_owned{{{sel}}})", "owned {{instance}}")]))
        .with_panel(series("Endpoints disabled automatically", "short",
                           [(f"sum by (reason) (increase(webhook_endpoints_disabled_total{{{sel}}}[1h]))",
                             "{{reason}}")]))
        .with_panel(series("Consumer lag (routing events into deliveries)", "short",
                           [(f"sum by (topic) (kafka_consumer_lag_messages{{{sel}}})", "{{topic}}")],
                           limits=thresholds(GREEN, (1000, "red"))))
    )


def billing() -> db.Dashboard:
    sel = 'service="billing", instance=~"$instance"'
    events = 'source="billing"'
    stripe_hook = f'{sel}, route="/api/webhooks/stripe"'
    return (
        variables(base("plataforma-billing", "Plataforma · Billing (Stripe)", ["billing"]), service="billing")
        .with_panel(single("Stripe calls failing", "percentunit",
                           f'(sum(rate(billing_stripe_requests_total{{{sel}, outcome!="ok"}}[{RATE}])) or vector(0)) '
                           f'/ clamp_min(sum(rate(billing_stripe_requests_total{{{sel}}}[{RATE}])), 1e-9)',
                           thresholds(GREEN, (0.05, "yellow"), (0.2, "red")),
                           description="Retryable (network, 429, 5xx) and rejected calls over all calls."))
        # Counts of bad things read 0, not "No data", while none happened.
        .with_panel(single("Payments failed (1 h)", "short",
                           f'sum(increase(events_published_total{{{sel}, {events}, event="billing.payment_failed"}}[1h])) '
                           f"or vector(0)",
                           thresholds(GREEN, (5, "yellow"), (20, "red"))))
        .with_panel(single("Suspensions for non-payment (1 h)", "short",
                           f'sum(increase(events_published_total{{{sel}, {events}, '
                           f'event="billing.subscription.delinquent"}}[1h])) or vector(0)',
                           thresholds(GREEN, (1, "yellow"), (10, "red")),
                           description="billing.subscription.delinquent: Stripe gave up and the grace "
                                       "(BILLING_SUSPEND_GRACE_HOURS) ended; tenants suspends the tenant on it."))
        .with_panel(single("Stripe webhook 5xx/s", "reqps",
                           f'sum(rate(http_requests_total{{{stripe_hook}, status=~"5.."}}[{RATE}])) or vector(0)',
                           thresholds(GREEN, (0.01, "red"))))
        .with_panel(series("Stripe calls by outcome", "reqps",
                           [(f"sum by (outcome) (rate(billing_stripe_requests_total{{{sel}}}[{RATE}]))",
                             "{{outcome}}")]))
        .with_panel(series("Stripe call latency p50 / p99", "s", [
            (f"histogram_quantile({p}, sum by (le) (rate(billing_stripe_request_duration_seconds_bucket"
             f"{{{sel}}}[{RATE}])))", f"p{round(p * 100)}") for p in (0.5, 0.99)],
            limits=thresholds(GREEN, (2, "yellow"), (10, "red"))))
        .with_panel(series("Stripe webhook events received by type", "ops",
                           [(f"sum by (type) (rate(billing_stripe_events_received_total{{{sel}}}[{RATE}]))",
                             "{{type}}")]))
        .with_panel(series("Stripe events applied by outcome", "ops",
                           [(f"sum by (outcome) (rate(billing_stripe_events_processed_total{{{sel}}}[{RATE}]))",
                             "{{outcome}}")]))
        .with_panel(series("Billing events out", "ops",
                           [(f"sum by (event) (rate(events_published_total{{{sel}, {events}}}[{RATE}]))", "{{event}}")],
                           w=24))
    )


def conversations() -> db.Dashboard:
    sel = 'service="conversations", instance=~"$instance"'
    events = 'source="conversations"'
    hooks = f'{sel}, route=~"/api/webhooks/(whatsapp|evolution)/.*", method="POST"'
    return (
        variables(base("plataforma-conversations", "Plataforma · Conversations (WhatsApp)", ["conversations"]),
                  service="conversations")
        .with_panel(single("Channels not connected", "none",
                           f'sum(max by (type, status) (conversations_channels{{{sel}, status!="CONNECTED"}}))',
                           thresholds(GREEN, (1, "red")),
                           description="DISCONNECTED, CONNECTING or ERROR (credentials refused)."))
        .with_panel(single("Inbound messages/s", "ops",
                           f'sum(rate(conversations_inbound_items_total{{{sel}, kind="message"}}[{RATE}]))',
                           thresholds(GREEN)))
        .with_panel(single("Outbound failing", "percentunit",
                           f'(sum(rate(conversations_outbound_messages_total{{{sel}, outcome!="sent"}}[{RATE}])) or vector(0)) '
                           f'/ clamp_min(sum(rate(conversations_outbound_messages_total{{{sel}}}[{RATE}])), 1e-9)',
                           thresholds(GREEN, (0.05, "yellow"), (0.2, "red")),
                           description="Failed, retried or refused for credentials, over all hand-offs."))
        .with_panel(single("Webhook ack p99", "s",
                           f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
                           f"{{{hooks}}}[{RATE}])))",
                           thresholds(GREEN, (0.02, "yellow"), (0.2, "red")),
                           description="Time to answer a provider's webhook POST (stored before the 200)."))
        .with_panel(series("Inbound by provider and type", "ops",
                           [(f"sum by (provider, kind, type) (rate(conversations_inbound_items_total{{{sel}}}[{RATE}]))",
                             "{{provider}} {{kind}} {{type}}")]))
        .with_panel(series("Outbound by provider and outcome", "ops",
                           [(f"sum by (provider, outcome) (rate(conversations_outbound_messages_total{{{sel}}}"
                             f"[{RATE}]))", "{{provider}} {{outcome}}")]))
        .with_panel(series("Provider errors by code class", "ops",
                           [(f"sum by (provider, code_class) (rate(conversations_provider_errors_total{{{sel}}}"
                             f"[{RATE}]))", "{{provider}} {{code_class}}")],
                           limits=thresholds(GREEN, (1, "red"))))
        .with_panel(series("Channels by status", "none",
                           [(f"sum by (type, status) (max by (type, status, instance) (conversations_channels{{{sel}}}))",
                             "{{type}} {{status}}")]))
        .with_panel(series("Webhook answers by status", "reqps",
                           [(f"sum by (route, status) (rate(http_requests_total{{{hooks}}}[{RATE}]))",
                             "{{route}} {{status}}")]))
        .with_panel(series("Conversation events out", "ops",
                           [(f"sum by (event) (rate(events_published_total{{{events}, instance=~\"$instance\"}}[{RATE}]))",
                             "{{event}}")]))
    )


DASHBOARDS = {"overview.json": overview, "auth.json": auth, "dispatcher.json": dispatcher, "billing.json": billing,
              "conversations.json": conversations}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    OUT.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        path, text = OUT / name, render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    for name in stale:
        print(f"stale: deploy/grafana/dashboards/{name} (run python deploy/grafana/generate.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
