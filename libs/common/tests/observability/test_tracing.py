"""One SERVER span per request, named by its route template, whose trace id the response reports."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from common.app import create_service_app
from common.config import ServiceSettings
from common.observability.tracing import TracingMiddleware


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A recording tracer provider for this test only (OpenTelemetry lets a process set it just once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


async def test_a_request_makes_one_server_span_named_by_its_route(spans: InMemorySpanExporter):
    router = APIRouter(prefix="/api/things")

    @router.get("/{thing_id}")
    async def get_thing(thing_id: int) -> dict:
        return {"id": thing_id}

    app = create_service_app(ServiceSettings(), title="t", description="d", routers=[router],
                             public_routes=["/api/things/{thing_id}"])
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        first = await client.get("/api/things/41", headers={"traceparent": parent})
        second = await client.get("/api/things/42")
    assert first.status_code == second.status_code == 200

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind == SpanKind.SERVER]
    assert len(finished) == len(server) == 2, [(s.name, s.kind) for s in finished]  # nothing else, no duplicate
    assert {s.name for s in server} == {"GET /api/things/{thing_id}"}  # the template, never the raw path
    assert {s.attributes["http.route"] for s in server} == {"/api/things/{thing_id}"}
    by_trace = {format(s.context.trace_id, "032x"): s for s in server}
    assert set(by_trace) == {first.headers["x-trace-id"], second.headers["x-trace-id"]}
    continued = by_trace[first.headers["x-trace-id"]]
    assert first.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace goes on
    assert continued.parent is not None and format(continued.parent.span_id, "016x") == "b7ad6b7169203331"


@pytest.mark.parametrize("incoming", [
    {},  # a new trace
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},  # sampled by the caller
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02", "tracestate": "vendor=x,other=y"},
    {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},  # invalid: a new trace
    {"traceparent": "garbage"},
])
async def test_without_an_exporter_a_request_carries_the_trace_context_the_sdk_would_give_it(
        monkeypatch: pytest.MonkeyPatch, incoming: dict[str, str]):
    """No exporter (ALWAYS_OFF): the middleware makes the unsampled span itself. What the request's code propagates
    (traceparent/tracestate, e.g. into an outbox row) and the x-trace-id answered are the SDK path's."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))
    router = APIRouter(prefix="/api/ctx")

    @router.get("")
    async def ctx() -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    seen = {}
    for fast in (True, False):
        app = create_service_app(ServiceSettings(), title="t", description="d", routers=[router],
                                 public_routes=["/api/ctx"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await client.get("/healthz")  # builds the middleware stack
            middleware = app.middleware_stack
            while not isinstance(middleware, TracingMiddleware):
                middleware = middleware.app
            assert middleware.unsampled  # the fast path applies to this provider
            middleware.unsampled = fast
            resp = await client.get("/api/ctx", headers=incoming)
        assert resp.status_code == 200
        version, trace_id, span_id, flags = resp.json()["traceparent"].split("-")
        assert resp.headers["x-trace-id"] == trace_id and span_id != "b7ad6b7169203331"
        seen[fast] = (version, flags, resp.json().get("tracestate"), trace_id if incoming.get("traceparent",
                                                                                           "").count("0af7") else "")
    assert seen[True] == seen[False]
