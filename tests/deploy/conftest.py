"""Shared by the deploy checks: which environment names each service really reads."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

PACKAGES = {"auth": "auth", "tenants": "tenants", "support": "support", "leads": "leads",
            "conversations": "conversations", "billing": "billing", "webhook-dispatcher": "webhook_dispatcher"}
# Read outside the Settings classes: the OpenTelemetry SDK's standard variables (configure_tracing and
# the exporter) and the dispatcher's SSRF policy (read with os.environ, also Settings fields).
OTEL = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED", "OTEL_RESOURCE_ATTRIBUTES",
        "TRACING_DATABASE_SPANS"}  # common.observability.database_spans


def settings_names(service: str) -> set[str]:
    settings = importlib.import_module(f"{PACKAGES[service]}.config").Settings
    return {name.upper() for name in settings.model_fields}


@pytest.fixture(scope="session")
def allowed_env_names() -> Callable[[str], set[str]]:
    """service -> the names its process reads (its Settings fields, upper-cased, and OTEL_*)."""
    return lambda service: settings_names(service) | OTEL
