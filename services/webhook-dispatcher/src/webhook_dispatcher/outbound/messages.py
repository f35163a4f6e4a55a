"""What goes on the wire: the Standard Webhooks headers (plus traceparent) of one attempt."""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from common.observability.tracing import child_headers, random_traceparent
from webhook_dispatcher.outbound.signing import signature_header

tracer = trace.get_tracer("webhook_dispatcher.outbound")


def build_headers(msg_id: str, body: bytes, keys: Sequence[bytes], *, user_agent: str,
                  timestamp: int | None = None, parent: tuple[str | None, str | None] | None = None
                  ) -> dict[str, str]:
    """Headers of one attempt, signed now (receivers reject timestamps older than ~5 minutes).

    Without `parent` it must run inside the attempt's span, whose context becomes the request's
    `traceparent`; with `parent` (the event's traceparent, tracestate; no span) a child id is made.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, msg_id, ts, body),
    }
    if parent is not None:
        headers.update(child_headers(*parent))
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers["traceparent"] = carrier.get("traceparent") or random_traceparent()
    if carrier.get("tracestate"):
        headers["tracestate"] = carrier["tracestate"]
    return headers


def attempt_span(event_type: str, endpoint_id: str, traceparent: str | None, tracestate: str | None):  # type: ignore[no-untyped-def]
    """A CLIENT span, child of the event's trace (carried from the Kafka record through the delivery row)."""
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    parent = propagate.extract(carrier) if carrier else None
    return tracer.start_as_current_span(
        f"webhook {event_type}", context=parent, kind=SpanKind.CLIENT,
        attributes={"webhook.endpoint_id": endpoint_id, "webhook.event_type": event_type},
    )
