"""docker-compose.yml: valid against the Compose Specification's JSON Schema (vendored in deploy/schemas),
every service's environment made only of names that service reads, migrations before services, and the
observability stack wired to the files in deploy/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APIS = ("auth", "tenants", "support", "leads", "conversations", "billing", "webhook-dispatcher")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # merge keys (<<) resolved


def test_compose_file_is_valid_against_the_compose_specification(compose):
    schema = json.loads((ROOT / "deploy/schemas/compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_misspelt_key(compose):
    schema = json.loads((ROOT / "deploy/schemas/compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["auth"]["healthcheck"]["intervall"] = "5s"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_every_service_environment_name_is_read_by_that_service(compose, allowed_env_names):
    for name in APIS:
        for key in (name, f"{name}-migrate"):
            env = compose["services"][key]["environment"]
            assert env["SERVICE_NAME"] == name
            unknown = set(env) - allowed_env_names(name) - {"PORT"}
            assert not unknown, f"{key} sets {sorted(unknown)}, which {name} does not read"
        env = compose["services"][name]["environment"]
        assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SECRETS_ENCRYPTION_KEYS", "AUTH_JWKS_URL"} <= set(env)
        assert env["DATABASE_URL"].endswith("/" + name.replace("-", "_"))
    assert "PLATFORM_OWNER_PASSWORD" in compose["services"]["auth"]["environment"]


def test_one_image_and_migrations_before_every_service(compose):
    services = compose["services"]
    images = {services[n]["image"] for n in APIS} | {services[f"{n}-migrate"]["image"] for n in APIS}
    assert len(images) == 1
    for name in APIS:
        migrate = services[f"{name}-migrate"]
        assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
        assert services[name]["depends_on"][f"{name}-migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["kafka"] == {"condition": "service_healthy"}
        assert services[name]["read_only"] is True
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    # Every service's PORT is the one the gateway and Prometheus use.
    gateway_env = services["gateway"]["environment"]
    scrape = (ROOT / "deploy/prometheus/prometheus-compose.yml").read_text()
    for name in APIS:
        port = services[name]["environment"]["PORT"]
        assert gateway_env[f"{name.upper().replace('-', '_')}_UPSTREAM"] == f"{name}:{port}"
        assert f'"{name}:{port}"' in scrape and f"service: {name}}}" in scrape


def test_gateway_docs_and_observability_come_from_the_repository(compose):
    services = compose["services"]
    assert services["gateway"]["build"]["target"] == "gateway"  # Caddyfile + Swagger UI docs in the image
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/gateway/Caddyfile" in dockerfile and "devstack.docs" in dockerfile
    mounts = [v for s in services.values() for v in s.get("volumes", []) if isinstance(v, str)]
    assert not [m for m in mounts if ".data" in m], "nothing may depend on ./.data (a `make run` directory)"
    for mount in mounts:
        host = mount.split(":")[0]
        if host.startswith("./"):
            assert (ROOT / host).exists(), mount
    assert any("alerts.yml" in m for m in services["prometheus"]["volumes"])
    assert any("deploy/grafana/provisioning" in m for m in services["grafana"]["volumes"])
    assert services["grafana"]["ports"] == ["3000:3000"]
    for name in APIS:
        assert services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    collector = yaml.safe_load((ROOT / "deploy/otel/collector.yaml").read_text())
    assert "otlp" in collector["receivers"] and collector["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


def test_secrets_come_from_the_environment(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("SECRETS_ENCRYPTION_KEYS", "PLATFORM_OWNER_PASSWORD", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} must be required from the environment"
