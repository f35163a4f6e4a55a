"""Writes deploy/k8s/base/*.yaml: the seven services share one shape, so it is written once here.

Run `python deploy/k8s/generate.py` after editing; tests/deploy/test_kubernetes.py fails when the
committed files differ from what this prints. Overlays (deploy/k8s/overlays/*) patch the result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BASE = HERE / "base"
ROOT = HERE.parents[1]
NAMESPACE = "plataforma"
IMAGE = "plataforma"  # Dockerfile target `service`; the tag is set by each overlay (images:)
PART_OF = {"app.kubernetes.io/part-of": "plataforma"}

# name, port, publishes a topic (auth has no outbox)
SERVICES = [
    ("auth", 8101, False),
    ("tenants", 8102, True),
    ("support", 8103, True),
    ("leads", 8104, True),
    ("conversations", 8105, True),
    ("billing", 8106, True),
    ("webhook-dispatcher", 8107, True),
]
# The gateway's public URL (the Ingress host): providers' and Stripe's webhooks point there. Read by the three
# services below only, so it is kept off the shared ConfigMap.
PUBLIC_URL = {"name": "PLATFORM_PUBLIC_URL", "value": "https://api.plataforma.example"}
# Settings only the owner's service reads (Settings classes): kept off the shared ConfigMap.
EXTRA_ENV = {
    "auth": [
        {"name": "PLATFORM_OWNER_EMAIL", "valueFrom": {"secretKeyRef": {"name": "plataforma-secrets",
                                                                        "key": "PLATFORM_OWNER_EMAIL"}}},
        {"name": "PLATFORM_OWNER_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "plataforma-secrets",
                                                                           "key": "PLATFORM_OWNER_PASSWORD"}}},
    ],
    "webhook-dispatcher": [
        {"name": "WEBHOOK_RETRY_SCHEDULE", "value": "5,300,1800,7200,18000,36000,36000"},
        {"name": "WEBHOOK_TIMEOUT_SECONDS", "value": "15"},
        # The pod's name: a restarted container keeps it (and takes back its own leases at once); no two live
        # pods share it.
        {"name": "WEBHOOK_REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        PUBLIC_URL,
    ],
    "conversations": [PUBLIC_URL],
    "billing": [PUBLIC_URL],
}

# Conversations runs its workers in a child process (CONVERSATIONS_WORKERS=process), which serves its own
# /metrics: the PodMonitor scrapes it by this port's name.
SIDE_PORTS = {"conversations": {"name": "worker-metrics", "containerPort": 8115}}

RESTRICTED_CONTAINER = {
    "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def labels(name: str, component: str = "api") -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **PART_OF}


def meta(name: str, component: str = "api", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(name, component), **extra}


def service_env(name: str) -> list[dict[str, Any]]:
    return [
        {"name": "SERVICE_NAME", "value": name},
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "plataforma-databases", "key": name}}},
        {"name": "SECRETS_ENCRYPTION_KEYS", "valueFrom": {"secretKeyRef": {"name": "plataforma-secrets",
                                                                           "key": "SECRETS_ENCRYPTION_KEYS"}}},
        {"name": "OTEL_SERVICE_NAME", "value": name},
    ]


def pod_spec(name: str, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        **extra,
    }


def deployment(name: str, port: int) -> dict[str, Any]:
    container = {
        "name": name,
        "image": IMAGE,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": port}, *([SIDE_PORTS[name]] if name in SIDE_PORTS else [])],
        "envFrom": [{"configMapRef": {"name": "plataforma-config"}}],
        "env": [{"name": "PORT", "value": str(port)}, *service_env(name), *EXTRA_ENV.get(name, []),
                *([{"name": "CONVERSATIONS_WORKER_PORT", "value": str(SIDE_PORTS[name]["containerPort"])}]
                  if name in SIDE_PORTS else [])],
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2,
                         "failureThreshold": 60},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": pod_spec(name, [container], terminationGracePeriodSeconds=40, topologySpreadConstraints=[{
                    "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}]),
            },
        },
    }


def migration_job(name: str) -> dict[str, Any]:
    container = {
        "name": "migrate",
        "image": IMAGE,
        "args": ["migrate"],
        "env": [{"name": "SERVICE_NAME", "value": name},
                {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "plataforma-databases",
                                                                        "key": name}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{name}-migrate", "migration"),
        "spec": {
            # Deleted a while after it succeeds, so the next `kubectl apply` (a new image) runs it again;
            # Alembic upgrades are idempotent.
            "ttlSecondsAfterFinished": 3600,
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": labels(f"{name}-migrate", "migration")},
                "spec": pod_spec(name, [container], restartPolicy="OnFailure"),
            },
        },
    }


def service(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name),
            "spec": {"selector": {"app.kubernetes.io/name": name},
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}


def pdb(name: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}}}


def hpa(name: str, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def api_network_policy(name: str, port: int) -> dict[str, Any]:
    sources: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}},
        # Prometheus (any namespace labelled for monitoring) scrapes /metrics.
        {"namespaceSelector": {"matchLabels": {"plataforma.io/monitoring": "true"}}},
    ]
    if name == "auth":  # every service checks tokens against auth's JWKS and API-key introspection
        sources.append({"podSelector": {"matchLabels": PART_OF}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name),
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "policyTypes": ["Ingress"],
                 "ingress": [{"from": sources, "ports": [
                     {"protocol": "TCP", "port": p}
                     for p in (port, *([SIDE_PORTS[name]["containerPort"]] if name in SIDE_PORTS else []))]}]},
    }


def dump(path: Path, header: str, docs: list[dict[str, Any]]) -> str:
    body = "\n---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)
    return f"# Generated by deploy/k8s/generate.py: edit that, then run it.\n# {header}\n{body}"


def kafka_topic(service_name: str) -> dict[str, Any]:
    topic = f"platform.{service_name}.events"
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": topic, "namespace": "kafka", "labels": {"strimzi.io/cluster": "plataforma", **PART_OF}},
        # Records of one aggregate share a key, hence a partition: their order holds only while the count
        # stays the same. Size it for the dispatcher replicas you will ever want (one consumer each).
        "spec": {"topicName": topic, "partitions": 6, "replicas": 3,
                 "config": {"min.insync.replicas": "2", "retention.ms": str(7 * 24 * 3600 * 1000),
                            "cleanup.policy": "delete"}},
    }


def prometheus_rule() -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "plataforma", "namespace": NAMESPACE, "labels": dict(PART_OF)},
            "spec": rules}


def files() -> dict[Path, str]:
    out: dict[Path, str] = {}
    out[BASE / "kafka-topics.yaml"] = dump(BASE, "Strimzi KafkaTopics: one per publishing service "
                                           "(platform.<service>.events).",
                                           [kafka_topic(n) for n, _, publishes in SERVICES if publishes])
    out[BASE / "prometheus-rules.yaml"] = dump(BASE, "deploy/prometheus/alerts.yml as a PrometheusRule "
                                               "(prometheus-operator).", [prometheus_rule()])
    for name, port, _ in SERVICES:
        # The dispatcher's consumers share a topic's partitions (one member each; more members wait),
        # while its delivery workers share due rows (FOR UPDATE SKIP LOCKED) however many replicas run.
        max_replicas = 12 if name == "webhook-dispatcher" else 8
        docs = [deployment(name, port), service(name, port), pdb(name), hpa(name, max_replicas),
                api_network_policy(name, port), migration_job(name)]
        out[BASE / f"{name}.yaml"] = dump(BASE / name, f"{name}: Deployment, Service, PDB, HPA, "
                                          "NetworkPolicy and its migration Job.", docs)
    return out


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for path, text in files().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    for path in stale:
        print(f"stale: {path.relative_to(ROOT)} (run python deploy/k8s/generate.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
