"""Every query in the dispatcher's Grafana dashboard and Prometheus alerts names a metric that the
dispatcher really exports (a renamed metric must not leave a silently empty panel or a dead alert)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import webhook_dispatcher.app  # noqa: F401 - registers the dispatcher's metrics

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""], "summary": ["_sum", "_count", "", "_created"]}
PROMQL_WORDS = {"sum", "rate", "max", "min", "by", "le", "histogram_quantile", "increase", "clamp_min", "deriv",
                "and", "or", "without", "avg", "count", "status", "outcome", "result", "reason", "instance"}


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)      # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)     # ranges
    expr = re.sub(r'"[^"]*"', "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words - PROMQL_WORDS if "_" in w}


def dashboard_queries() -> list[str]:
    dash = json.loads((ROOT / "deploy/grafana/dispatcher.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_every_dashboard_and_alert_query_names_an_exported_metric():
    exported = exported_names()
    queries = dashboard_queries() + alert_queries()
    assert len(queries) >= 15
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr!r} uses {sorted(names - exported)} which the dispatcher does not export"


def test_the_dashboard_covers_what_operators_watch():
    text = " ".join(dashboard_queries())
    for metric in ("webhook_deliveries_total", "webhook_delivery_latency_seconds_bucket",
                   "webhook_deliveries_pending", "webhook_deliveries_oldest_pending_age_seconds",
                   "webhook_deliveries_due_lag_seconds", "webhook_endpoints"):
        assert metric in text
    alerts = " ".join(alert_queries())
    # The backlog alert watches lag, not age: a delivery waiting hours for its scheduled retry is not late.
    for metric in ("webhook_deliveries_total", "webhook_deliveries_due_lag_seconds",
                   "webhook_endpoints_disabled_total"):
        assert metric in alerts
