"""Alert rules and Prometheus configurations checked by Prometheus's own `promtool` (Debian package
`prometheus`; .ci/run installs it): the rules load, every alert fires in its unit test on a synthetic bad
series and stays quiet on a healthy one (deploy/prometheus/tests/alerts.test.yml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy/prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROM)


def test_rules_load():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_configurations_load(config):
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_a_bad_series_and_stays_quiet_on_a_healthy_one():
    alerts = yaml.safe_load((PROM / "alerts.yml").read_text())
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"]}
    cases = [c for t in yaml.safe_load((PROM / "tests/alerts.test.yml").read_text())["tests"]
             for c in t["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == names, "an alert has no firing test"
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == names, "an alert has no quiet test"
    result = promtool("test", "rules", "tests/alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
