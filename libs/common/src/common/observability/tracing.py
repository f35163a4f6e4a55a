"""OpenTelemetry: a tracer provider per process, exporting over OTLP only when OTEL_* says where.

Server spans for HTTP come from `TracingMiddleware` (W3C traceparent in, span around the request);
Kafka spans are made by the relay and consumer; the dispatcher injects `traceparent` on webhooks.
"""

from __future__ import annotations

import os
import random
import re
import secrets

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_configured = False
_recording = True  # until configure_tracing decides otherwise (a caller's own provider records)


def spans_recorded() -> bool:
    """False when nothing exports spans: hot paths may then skip the SDK and only propagate ids."""
    return _recording


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")
_NO_TRACE = "0" * 32


def random_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """A new span id in `parent`'s trace (a fresh trace when `parent` is missing or invalid): what an
    unrecorded SDK span would put on the wire, for a fraction of its cost. Hot paths use it when
    `spans_recorded()` is false."""
    match = _TRACEPARENT.fullmatch(parent) if parent else None
    if match is None or match.group(1) == _NO_TRACE:
        return random_traceparent()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(2)}"


def child_headers(traceparent: str | None, tracestate: str | None) -> dict[str, str]:
    """`traceparent` (and `tracestate`, when the trace is kept) of a child of the given context."""
    headers = {"traceparent": child_traceparent(traceparent)}
    if tracestate and traceparent and headers["traceparent"][3:35] == traceparent[3:35]:
        headers["tracestate"] = tracestate
    return headers


def configure_tracing(service: str) -> None:
    global _configured, _recording
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    _configured = True
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                     or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER, default on
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        # Nobody collects spans: don't record them (measured ~15% of a service's CPU at load), but keep
        # creating span contexts so trace ids still flow through logs, Kafka headers and webhooks.
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
        _recording = False
    trace.set_tracer_provider(provider)


class TracingMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.tracer = trace.get_tracer(service)
        # Nothing is sampled (no exporter: `configure_tracing`'s ALWAYS_OFF): the SDK's span would be a
        # NonRecordingSpan with random ids, and `_unsampled` makes that very span without the SDK's start_span
        # (~15 us of a request's CPU here). A recording provider (an exporter, a test's) takes the SDK's path.
        tracer = self.tracer
        self.unsampled = (isinstance(tracer, Tracer) and tracer.sampler is ALWAYS_OFF and tracer._is_enabled()
                          and type(tracer.id_generator) is RandomIdGenerator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/healthz", "/readyz", "/metrics"):
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                   if k in (b"traceparent", b"tracestate")}
        # No trace headers: the request starts a new trace (an empty context; the propagators, ~2 us per request,
        # would return the current one, which at a server's edge holds no span).
        ctx = propagate.extract(carrier) if carrier else otel_context.Context()
        if self.unsampled:
            await self._unsampled(scope, receive, send, ctx)
            return
        with self.tracer.start_as_current_span(f"{scope['method']} {scope['path']}", context=ctx,
                                               kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])

            async def _send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    route = getattr(scope.get("route"), "path", None)
                    if route:  # named by its template (bounded), as the HTTP semantic conventions ask
                        span.update_name(f"{scope['method']} {route}")
                        span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    tp = format(span.get_span_context().trace_id, "032x")
                    message.setdefault("headers", []).append((b"x-trace-id", tp.encode()))
                await send(message)

            await self.app(scope, receive, _send)

    async def _unsampled(self, scope: Scope, receive: Receive, send: Send, ctx: otel_context.Context) -> None:
        """What the SDK's start_as_current_span does for an unsampled span: the caller's trace (its random-id flag
        and tracestate) or a new random one, a new span id, flags without `sampled`, current while the request runs."""
        parent = trace.get_current_span(ctx).get_span_context()
        if parent.is_valid:
            trace_id, random_id, state = parent.trace_id, parent.trace_flags.random_trace_id, parent.trace_state
        else:
            trace_id, random_id, state = INVALID_TRACE_ID, True, None
            while trace_id == INVALID_TRACE_ID:
                trace_id = random.getrandbits(128)
        span_id = INVALID_SPAN_ID
        while span_id == INVALID_SPAN_ID:
            span_id = random.getrandbits(64)
        flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT)
        span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=state))
        header = (b"x-trace-id", format(trace_id, "032x").encode())

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(header)
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, ctx))  # the caller's baggage kept
        try:
            await self.app(scope, receive, _send)
        finally:
            otel_context.detach(token)
