"""PromQL of the dashboards (deploy/grafana/dashboards) and alert rules (deploy/prometheus/alerts.yml): where
it is, how it parses (promql-parser, Grafana variables substituted), which metrics and labels it names, and
which the services register. Shared by tests/deploy/test_dashboards.py and test_live_stack.py."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
PACKAGES = ("auth", "tenants", "support", "leads", "conversations", "billing", "webhook_dispatcher")
TARGET_LABELS = {"job", "instance", "service"}  # set by the scrape configuration, not by the services
FROM_PROMETHEUS = {"up": TARGET_LABELS}  # synthesised by Prometheus for every target
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric the services register when their app is imported."""
    for package in PACKAGES:
        importlib.import_module(f"{package}.app")
    names: dict[str, set[str]] = {}
    for name, collector in REGISTRY._names_to_collectors.items():  # private, but the only source of unused labels
        labels = set(getattr(collector, "_labelnames", ()))
        names[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return names | FROM_PROMETHEUS


def dashboard_queries(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def variable_queries(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    out = []
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"])
            assert match, v["query"]
            out.append(match.group(1))
    return out


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def all_queries() -> list[str]:
    return [q for path in DASHBOARDS for q in dashboard_queries(path) + variable_queries(path)] + [
        r["expr"] for r in alert_rules()]


def parse(expr: str) -> Any:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)  # raises on anything that is not PromQL


def selectors(node: Any, problems: list[str], metrics: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    """The (metric, matcher labels) a node selects; grouping labels are checked against its own subtree."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        return [(node.name, {m.name for m in node.matchers.matchers} - {"__name__"})]
    if kind == "MatrixSelector":
        return selectors(node.vector_selector, problems, metrics)
    children: list[Any] = []
    grouping: list[str] = []
    if kind == "AggregateExpr":
        children = [node.expr] + ([node.param] if node.param is not None else [])
        grouping = list(node.modifier.labels) if node.modifier else []
    elif kind == "Call":
        children = list(node.args)
    elif kind == "BinaryExpr":
        children = [node.lhs, node.rhs]
        if node.modifier is not None and node.modifier.matching is not None:
            grouping = list(node.modifier.matching.labels) + list(node.modifier.group_labels or [])
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        children = [node.expr]
    found = [s for child in children for s in selectors(child, problems, metrics)]
    available = TARGET_LABELS.union(*(metrics.get(name, set()) for name, _ in found))
    problems += [f"groups by {label!r}, which none of {[n for n, _ in found]} has"
                 for label in grouping if label not in available]
    return found


def metric_names_in_queries() -> set[str]:
    """Every metric name a dashboard panel, dashboard variable or alert rule selects."""
    names: set[str] = set()
    for expr in all_queries():
        names |= {name for name, _ in selectors(parse(expr), [], {})}
    return names
