"""Dashboards (deploy/grafana) and alert rules (deploy/prometheus): each dashboard is Grafana dashboard JSON
as the Grafana Foundation SDK models it, every PromQL expression parses with a real PromQL parser, and every
metric and label it names is one the services export (a renamed metric must not leave an empty panel or a
dead alert). Alerts carry `for:`, a severity, a summary and a runbook section that exists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql_queries import (
    DASHBOARDS,
    ROOT,
    TARGET_LABELS,
    alert_rules,
    all_queries,
    dashboard_queries,
    exported,
    parse,
    selectors,
)


@pytest.mark.parametrize("expr", all_queries())
def test_every_query_parses_and_names_exported_metrics_and_labels(expr):
    metrics = exported()
    problems: list[str] = []
    found = selectors(parse(expr), problems, metrics)
    assert found, expr
    for name, labels in found:
        if name not in metrics:
            problems.append(f"{name} is not exported by any service")
        elif unknown := labels - metrics[name] - TARGET_LABELS:
            problems.append(f"{name} has no label {sorted(unknown)}")
    assert not problems, f"{expr}: {problems}"


def test_the_check_catches_a_renamed_metric_or_label():
    metrics = exported()
    for expr in ('sum(rate(webhook_delivery_total[5m]))', 'sum by (endpoint) (webhook_deliveries_total)',
                 'http_requests_total{path="/x"}'):
        problems: list[str] = []
        found = selectors(parse(expr), problems, metrics)
        problems += [n for n, labels in found if n not in metrics or labels - metrics[n] - TARGET_LABELS]
        assert problems, expr
    with pytest.raises(ValueError):
        parse("sum(rate(http_requests_total[5m])")


def test_dashboards_are_generated_from_the_sdk_builders():
    result = subprocess.run([sys.executable, str(ROOT / "deploy/grafana/generate.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in DASHBOARDS} == {"overview.json", "auth.json", "dispatcher.json", "billing.json",
                                           "conversations.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_dashboard_json(path):
    data = json.loads(path.read_text())
    # The SDK's model of a dashboard: what it does not know (a misspelt key, a wrong nesting) is dropped.
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data
    broken = json.loads(path.read_text())
    broken["panels"][1]["gridPoss"] = broken["panels"][1].pop("gridPos")
    assert json.loads(json.dumps(Dashboard.from_json(broken), cls=JSONEncoder)) != broken


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_has_variables_units_and_thresholds(path):
    board = json.loads(path.read_text())
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "service", "instance"} <= variables
    panels = [p for p in board["panels"] if p["type"] != "row"]
    for panel in panels:
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert "$instance" in target["expr"], (panel["title"], target["expr"])
    assert sum(1 for p in panels if len(p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])) > 1) >= 3


def test_overview_covers_what_the_issue_lists():
    text = " ".join(dashboard_queries(ROOT / "deploy/grafana/dashboards/overview.json"))
    for metric in ("up{", "http_requests_total", "http_request_duration_seconds_bucket", "outbox_unpublished",
                   "outbox_oldest_unpublished_age_seconds", "kafka_consumer_lag_messages", "events_published_total",
                   "events_received_total", "webhook_deliveries_total"):
        assert metric in text, metric
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (service, route, le)" in text


def test_dispatcher_dashboard_covers_what_operators_watch():
    text = " ".join(dashboard_queries(ROOT / "deploy/grafana/dashboards/dispatcher.json"))
    for metric in ("webhook_deliveries_total", "webhook_delivery_latency_seconds_bucket",
                   "webhook_deliveries_pending", "webhook_deliveries_oldest_pending_age_seconds",
                   "webhook_deliveries_due_lag_seconds", "webhook_endpoints", "webhook_engine_in_flight",
                   "webhook_attempt_duration_seconds_bucket", "webhook_endpoints_disabled_total"):
        assert metric in text
    alerts = " ".join(r["expr"] for r in alert_rules())
    # The backlog alert watches lag, not age: a delivery waiting hours for its scheduled retry is not late.
    for metric in ("webhook_deliveries_total", "webhook_deliveries_due_lag_seconds",
                   "webhook_endpoints_disabled_total"):
        assert metric in alerts


def runbook_anchors() -> set[str]:
    text = (ROOT / "deploy/RUNBOOK.md").read_text()
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{2,3} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_for_severity_summary_and_a_runbook_section(rule):
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"]
    runbook = rule["annotations"]["runbook"]
    assert runbook == f"deploy/RUNBOOK.md#{rule['alert'].lower()}"
    assert rule["alert"].lower() in runbook_anchors(), f"deploy/RUNBOOK.md has no section {rule['alert']}"


def test_readme_lists_every_alert_with_its_runbook_link():
    readme = (ROOT / "README.md").read_text()
    for rule in alert_rules():
        assert f"[{rule['alert']}](deploy/RUNBOOK.md#{rule['alert'].lower()})" in readme, rule["alert"]
