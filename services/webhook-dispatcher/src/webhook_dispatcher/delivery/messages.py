"""What goes on the wire: the Standard Webhooks headers (plus traceparent) of one attempt."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from webhook_dispatcher.delivery.signing import signature_header

tracer = trace.get_tracer("webhook_dispatcher.delivery")


def _random_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def build_headers(msg_id: str, body: bytes, keys: Sequence[bytes], *, user_agent: str,
                  timestamp: int | None = None) -> dict[str, str]:
    """Headers of one attempt, signed now (receivers reject timestamps older than ~5 minutes).

    Must run inside the attempt's span: its context becomes the request's `traceparent`.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, msg_id, ts, body),
    }
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers["traceparent"] = carrier.get("traceparent") or _random_traceparent()
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
