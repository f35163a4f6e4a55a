"""deploy/k8s: each overlay builds with a real kustomize (`kubectl kustomize`), every object it yields is valid
against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail) or the vendored CRD schema,
and the properties an SRE relies on hold (probes, limits, non-root, read-only root, PDB, HPA, policies,
migrations as Jobs, secrets only referenced, topics sized as the services expect)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"  # the kubectl Debian ships; kubernetes-validate has schemas up to 1.37
# The operators' CRD schemas, vendored with their source and version (deploy/schemas/README.md).
CRD_SCHEMAS = {("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafka.strimzi.io_kafkatopic_v1beta2.json",
               ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrule_v1.json",
               ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitor_v1.json",
               ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_cluster_v1.json"}
APIS = ("auth", "tenants", "support", "leads", "conversations", "billing", "webhook-dispatcher")
PUBLISHERS = APIS[1:]


@cache
def build(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (Debian package `kubectl`; .ci/run installs it)")
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@cache
def crd_validator(key: tuple[str, str]) -> Any:
    # jsonschema-rs: the CRDs' patterns are Go regexes (e.g. an inline `(?i)`), which Python's re rejects.
    return jsonschema_rs.validator_for(json.loads((ROOT / "deploy/schemas/crds" / CRD_SCHEMAS[key]).read_text()))


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in build(overlay) if o["kind"] == kind]


def by_name(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects(overlay, kind)}


def test_the_generated_base_is_up_to_date():
    result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_kubernetes_and_crd_schemas(overlay):
    seen = set()
    for obj in build(overlay):
        key = (obj["apiVersion"], obj["kind"])
        seen.add(key)
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if key in CRD_SCHEMAS:
            try:
                crd_validator(key).validate(obj)
            except jsonschema_rs.ValidationError as exc:
                pytest.fail(f"{overlay}: {where}: {exc}")
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {where}: {exc.message} at {list(exc.path)}")
    assert ("kafka.strimzi.io/v1beta2", "KafkaTopic") in seen
    assert ("monitoring.coreos.com/v1", "PodMonitor") in seen
    assert ("monitoring.coreos.com/v1", "PrometheusRule") in seen
    assert (("postgresql.cnpg.io/v1", "Cluster") in seen) == (overlay == "prod")


def test_the_validators_reject_what_a_cluster_would_reject():
    deployment = copy.deepcopy(by_name("prod", "Deployment")["auth"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    topic = copy.deepcopy(objects("prod", "KafkaTopic")[0])
    topic["spec"]["partitions"] = 0
    assert not crd_validator(("kafka.strimzi.io/v1beta2", "KafkaTopic")).is_valid(topic)
    rule = copy.deepcopy(objects("prod", "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["for_"] = "5m"
    assert not crd_validator(("monitoring.coreos.com/v1", "PrometheusRule")).is_valid(rule)
    monitor = copy.deepcopy(objects("prod", "PodMonitor")[0])
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"  # not a Prometheus duration
    assert not crd_validator(("monitoring.coreos.com/v1", "PodMonitor")).is_valid(monitor)
    monitor = copy.deepcopy(objects("prod", "PodMonitor")[0])
    monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    assert not crd_validator(("monitoring.coreos.com/v1", "PodMonitor")).is_valid(monitor)
    cluster = copy.deepcopy(objects("prod", "Cluster")[0])
    cluster["spec"]["instances"] = 0
    assert not crd_validator(("postgresql.cnpg.io/v1", "Cluster")).is_valid(cluster)
    cluster = copy.deepcopy(objects("prod", "Cluster")[0])
    cluster["spec"]["bootstrap"]["initdb"]["postInitSql"] = cluster["spec"]["bootstrap"]["initdb"].pop("postInitSQL")
    assert not crd_validator(("postgresql.cnpg.io/v1", "Cluster")).is_valid(cluster)
    cluster = copy.deepcopy(objects("prod", "Cluster")[0])
    cluster["spec"]["primaryUpdateStrategy"] = "automatic"
    assert not crd_validator(("postgresql.cnpg.io/v1", "Cluster")).is_valid(cluster)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_probed_limited_and_unprivileged(overlay):
    deployments = by_name(overlay, "Deployment")
    assert set(deployments) == {*APIS, "gateway"}
    pods = [d["spec"]["template"]["spec"] for d in deployments.values()]
    pods += [j["spec"]["template"]["spec"] for j in objects(overlay, "Job")]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsUser"] != 0, c["name"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], c["name"]
    for name in APIS:
        c = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_autoscaling_and_migrations_cover_every_service(overlay):
    assert set(by_name(overlay, "PodDisruptionBudget")) >= {*APIS, "gateway"}
    hpas = by_name(overlay, "HorizontalPodAutoscaler")
    assert set(hpas) == {*APIS, "gateway"}
    for name, h in hpas.items():
        assert h["spec"]["scaleTargetRef"]["name"] == name
    jobs = by_name(overlay, "Job")
    assert set(jobs) == {f"{s}-migrate" for s in APIS}
    for s in APIS:
        container = jobs[f"{s}-migrate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["migrate"]
        assert {"name": "SERVICE_NAME", "value": s} in container["env"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_the_apis_and_only_the_ingress_reaches_the_gateway(overlay):
    policies = by_name(overlay, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for name in APIS:
        sources = [peer for rule in policies[name]["spec"]["ingress"] for peer in rule["from"]]
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}} in sources
        others = [p for p in sources if "podSelector" in p and "namespaceSelector" not in p
                  and p["podSelector"]["matchLabels"].get("app.kubernetes.io/name") != "gateway"]
        # Only auth is called by the other services (JWKS, API-key introspection).
        assert bool(others) == (name == "auth"), name
    assert policies["gateway"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    kafka = policies["plataforma-kafka-clients"]
    assert kafka["metadata"]["namespace"] == "kafka"
    if overlay == "prod":
        assert policies["plataforma-pg"]["spec"]["ingress"][0]["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "plataforma"}}}]
    ingress = by_name(overlay, "Ingress")["gateway"]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "gateway"
    assert ("tls" in ingress["spec"]) == (overlay == "prod")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_committed(overlay):
    assert objects(overlay, "Secret") == []
    text = json.dumps(build(overlay))
    for word in ("PASSWORD", "SECRETS_ENCRYPTION_KEYS"):
        for cm in objects(overlay, "ConfigMap"):
            assert word not in json.dumps(cm.get("data", {})), cm["metadata"]["name"]
    assert "plataforma-secrets" in text and "plataforma-databases" in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_exist_for_every_publisher_with_the_partitions_the_services_use(overlay):
    config = by_name(overlay, "ConfigMap")["plataforma-config"]["data"]
    topics = {t["spec"]["topicName"]: t for t in objects(overlay, "KafkaTopic")}
    assert set(topics) == {f"platform.{s}.events" for s in PUBLISHERS}
    for t in topics.values():
        assert t["spec"]["partitions"] == int(config["KAFKA_TOPIC_PARTITIONS"])
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == "plataforma"
    dispatcher = by_name(overlay, "HorizontalPodAutoscaler")["webhook-dispatcher"]
    assert dispatcher["spec"]["minReplicas"] <= int(config["KAFKA_TOPIC_PARTITIONS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_name_is_one_the_service_reads(overlay, allowed_env_names):
    config = by_name(overlay, "ConfigMap")["plataforma-config"]["data"]
    shared = set.intersection(*(allowed_env_names(s) for s in APIS))
    assert set(config) <= shared, set(config) - shared
    for name in APIS:
        pod = by_name(overlay, "Deployment")[name]["spec"]["template"]["spec"]
        env = {e["name"] for e in pod["containers"][0]["env"]}
        assert env <= allowed_env_names(name) | {"PORT"}, (name, env - allowed_env_names(name))
        assert {"DATABASE_URL", "SECRETS_ENCRYPTION_KEYS", "SERVICE_NAME"} <= env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_every_service_with_its_service_label(overlay):
    monitor = objects(overlay, "PodMonitor")[0]
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    assert relabel["targetLabel"] == "service"
    for name in APIS:
        labels = by_name(overlay, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "api"
    rule = objects(overlay, "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
