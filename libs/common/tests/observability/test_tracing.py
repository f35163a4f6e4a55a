"""One SERVER span per request, named by its route template, whose trace id the response reports."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from common.app import create_service_app
from common.config import ServiceSettings


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
