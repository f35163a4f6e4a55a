"""The platform as `make run` starts it (every service a process, behind the gateway), exporting traces to
an OTLP/HTTP receiver in this test and scraped over /metrics after a short workload:

* one API call that ends in a webhook is one trace: the OTLP export (decoded with opentelemetry-proto, not
  our span objects) holds the gateway's (Caddy's) SERVER span as the root, the service's SERVER span under
  it, the SQL statements' CLIENT spans under that (TRACING_DATABASE_SPANS=true: OpenTelemetry's SQLAlchemy
  instrumentation), the relay's PRODUCER span, the dispatcher's CONSUMER span and the attempt's CLIENT span,
  all with the trace id the subscriber receives in `traceparent`, whose parent is that CLIENT span;
* every metric the dashboards and alerts name is served by a running service, and the overview's event
  metrics carry samples after the workload.

The stack has databases and consumer groups of its own (ops_* / prefix), so it never meets the e2e stack's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from common.testing.receiver import webhook_receiver
from common.testing.servers import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql_queries import metric_names_in_queries

OWNER_EMAIL, OWNER_PASSWORD = "owner@ops.local", "Ops-Owner-Passw0rd"
pytestmark = pytest.mark.timeout(300)


class OtlpReceiver:
    """POST /v1/traces (OTLP/HTTP, protobuf): keeps every exported span with its resource's service.name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def trace(self, trace_id: str) -> list[tuple[str, Span]]:
        return [(s, span) for s, span in self.spans if span.trace_id.hex() == trace_id]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def until(predicate, timeout: float = 20.0, interval: float = 0.2):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="module")
async def otlp():
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
async def subscriber():
    async with webhook_receiver() as r:
        yield r


@pytest.fixture(scope="module")
async def live(tmp_path_factory, postgres, kafka_broker, otlp, subscriber):
    from devstack.services import SERVICES
    from devstack.supervisor import Stack

    databases = {f"{s.env_prefix}_DATABASE_URL": postgres.async_url(f"ops_{s.database}") for s in SERVICES}
    # As `make run` gets it from its environment: the services and the gateway (Caddy) export there.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fifth of a second, not five
            "TRACING_DATABASE_SPANS": "true"}
    stack = Stack(tmp_path_factory.mktemp("ops-stack"), env={**os.environ, **otel}, extra_env={
        **databases,
        "KAFKA_CONSUMER_GROUP_PREFIX": f"ops-{uuid.uuid4().hex[:6]}.",
        "PLATFORM_OWNER_EMAIL": OWNER_EMAIL,
        "PLATFORM_OWNER_PASSWORD": OWNER_PASSWORD,
        "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32",
        "WEBHOOK_CA_BUNDLE": str(subscriber.ca_bundle_path),
    })
    stack.postgres, stack.broker = postgres, kafka_broker
    try:
        await stack.start_services([s.name for s in SERVICES], ports={s.name: free_port() for s in SERVICES})
        await stack.start_gateway(port=free_port())
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(scope="module")
async def workload(live, subscriber):
    """Login, a verified webhook endpoint, a tenant created through the gateway and its delivery."""
    async with httpx.AsyncClient(base_url=live.gateway.url, timeout=15) as gateway:
        login = await gateway.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        hook = subscriber.hook()
        endpoint = await gateway.post("/api/platform/webhooks", headers=headers,
                                      json={"url": hook.url, "events": ["tenant.*"], "description": "ops"})
        assert endpoint.status_code == 201 and endpoint.json()["status"] == "ACTIVE", endpoint.text
        created = await gateway.post("/api/platform/tenants", headers=headers,
                                     json={"name": f"Ops {uuid.uuid4().hex[:8]}", "plan": "Pro"})
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        await hook.wait_for(lambda h: [r for r in h.events() if r.json()["data"].get("tenantId") == tenant_id],
                            timeout=20)
        [delivery] = [r for r in hook.events() if r.json()["data"].get("tenantId") == tenant_id]
        return {"trace_id": created.headers["x-trace-id"], "delivery": delivery}


async def test_one_api_call_is_one_trace_up_to_the_subscriber(workload, otlp):
    _, trace_id, parent_span_id, _ = workload["delivery"].headers["traceparent"].split("-")
    assert trace_id == workload["trace_id"]

    def complete():
        spans = otlp.trace(trace_id)
        kinds = {(service, span.kind) for service, span in spans}
        wanted = {("gateway", Span.SPAN_KIND_SERVER),
                  ("tenants", Span.SPAN_KIND_SERVER), ("tenants", Span.SPAN_KIND_PRODUCER),
                  ("webhook-dispatcher", Span.SPAN_KIND_CONSUMER)}
        # The attempt by name: the dispatcher's SQL spans are CLIENT spans too, and may be exported first.
        attempted = any(span.kind == Span.SPAN_KIND_CLIENT and span.name.startswith("webhook") for _, span in spans)
        # Each process exports in its own batches: a child may arrive before its parent does.
        ids = {span.span_id for _, span in spans}
        closed = all(not span.parent_span_id or span.parent_span_id in ids for _, span in spans)
        return wanted <= kinds and attempted and closed

    await until(complete)
    spans = otlp.trace(trace_id)
    [gateway] = [span for s, span in spans if s == "gateway"]
    assert gateway.kind == Span.SPAN_KIND_SERVER and gateway.name == "gateway POST"
    assert not gateway.parent_span_id  # the root: the request as it reached the platform
    [server] = [span for s, span in spans if s == "tenants" and span.kind == Span.SPAN_KIND_SERVER]
    assert server.name == "POST /api/platform/tenants"
    assert server.parent_span_id == gateway.span_id  # Caddy passed its span on in `traceparent`
    # The request's SQL, each statement a span under the request (its text, never its parameters).
    statements = {attribute(span, "db.statement"): span for s, span in spans
                  if s == "tenants" and span.kind == Span.SPAN_KIND_CLIENT and attribute(span, "db.system")}
    assert any("INSERT INTO tenants (" in text for text in statements), list(statements)
    assert any("INSERT INTO outbox" in text for text in statements), list(statements)  # the event, same request
    assert all("Ops " not in text for text in statements)  # the tenant's name is a bound parameter
    assert {attribute(span, "db.system") for span in statements.values()} == {"postgresql"}
    [attempt] = [span for s, span in spans if span.kind == Span.SPAN_KIND_CLIENT and span.name.startswith("webhook")]
    assert attempt.span_id.hex() == parent_span_id  # the subscriber's parent is the attempt
    # Each hop is a child of an earlier one: the spans form one tree rooted at the gateway's span.
    ids = {span.span_id for _, span in spans}
    for _, span in spans:
        assert span is gateway or span.parent_span_id in ids, span.name


def attribute(span: Span, key: str) -> str | None:
    return next((a.value.string_value for a in span.attributes if a.key == key), None)


async def scrape(live) -> dict[str, list]:
    families: dict[str, list] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for proc in live.services.values():
            text = (await client.get(f"{proc.url}/metrics")).text
            for family in text_string_to_metric_families(text):
                families.setdefault(family.name, []).extend(family.samples)
    return families


def exported_names(families: dict[str, list]) -> set[str]:
    return set(families) | {sample.name for samples in families.values() for sample in samples} | {
        f"{name}_total" for name in families} | {f"{name}_bucket" for name in families}


async def test_running_services_serve_every_metric_the_dashboards_and_alerts_name(workload, live):
    def samples_of(families, name, **labels):
        return [s for s in families.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]

    async def workload_visible():
        families = await scrape(live)
        return families if (
            samples_of(families, "events_published", source="tenants", event="tenant.created")
            and samples_of(families, "events_received", event="tenant.created")
            and samples_of(families, "outbox_oldest_unpublished_age_seconds", source="tenants")
            and [s for s in families.get("kafka_consumer_lag_messages", [])
                 if s.labels["topic"] == "platform.tenants.events"]) else None

    families = await until(workload_visible, timeout=30, interval=1.0)
    served = exported_names(families) | {"up"}
    missing = sorted(n for n in metric_names_in_queries() if n not in served)
    assert not missing, f"named by dashboards or alerts, served by no running service: {missing}"
