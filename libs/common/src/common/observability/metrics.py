"""Prometheus metrics shared by every service. Labels are bounded: route templates, never raw paths."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.asgi import HttpMiddleware

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to Kafka", ["source"])
OUTBOX_LAG = Gauge("outbox_unpublished", "Outbox rows seen unpublished in the last relay pass", ["source"])
CONSUMED = Counter("events_consumed_total", "Events applied by a consumer (after dedupe)", ["consumer"])
RETENTION_DELETED = Counter("retention_deleted_rows_total",
                            "Outbox/inbox rows deleted after OUTBOX_RETENTION_HOURS", ["table"])
CONSUMER_ERRORS = Counter("event_consumer_errors_total", "Consumer errors", ["consumer", "kind"])
# For the overview dashboard and its alerts (deploy/grafana, deploy/prometheus). Labels stay bounded: the
# service, the event type (the catalogue), the consumer group and topic (a handful per service).
OUTBOX_OLDEST_AGE = Gauge("outbox_oldest_unpublished_age_seconds",
                          "Age of the oldest unpublished outbox row in the last relay pass (0 when none)",
                          ["source"])
EVENTS_PUBLISHED = Counter("events_published_total", "Events the outbox relay published to Kafka, by type",
                           ["source", "event"])
EVENTS_RECEIVED = Counter("events_received_total",
                          "Events a consumer read from Kafka, by type (redeliveries included)", ["consumer", "event"])
CONSUMER_LAG = Gauge("kafka_consumer_lag_messages",
                     "Records between this member's position and the end of its assigned partitions, per topic",
                     ["group", "topic"])


class MetricsMiddleware(HttpMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        # The labelled children, looked up once per (method, route[, status]): `labels()` validates and locks
        # on every call. Bounded as the labels are (route templates, "unmatched").
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            counter = self._counters.get((method, template, status))
            if counter is None:
                counter = self._counters[(method, template, status)] = HTTP_REQUESTS.labels(method, template,
                                                                                             str(status))
            latency = self._latencies.get((method, template))
            if latency is None:
                latency = self._latencies[(method, template)] = HTTP_LATENCY.labels(method, template)
            counter.inc()
            latency.observe(time.perf_counter() - start)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
