"""Dispatcher metrics (ARCHITECTURE §6): outcomes, latency event time -> 2xx, attempts, backlog, endpoints."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter("webhook_deliveries_total", "Deliveries that reached an outcome",
                     ["outcome"])  # succeeded | failed | retry_scheduled
ATTEMPTS = Counter("webhook_attempts_total", "HTTP attempts by result",
                   ["result"])  # success | http | timeout | connect | tls | dns | policy | protocol
ATTEMPT_DURATION = Histogram("webhook_attempt_duration_seconds", "Duration of one HTTP attempt",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DELIVERY_LATENCY = Histogram("webhook_delivery_latency_seconds",
                             "From the event's timestamp to the subscriber's 2xx",
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200,
                                      36000, 86400))
PENDING = Gauge("webhook_deliveries_pending", "Deliveries waiting for an attempt (all replicas)")
OLDEST_PENDING_AGE = Gauge("webhook_deliveries_oldest_pending_age_seconds",
                           "Age of the oldest pending delivery, retries waiting included (0 when none)")
DUE = Gauge("webhook_deliveries_due", "Pending deliveries that could be sent now (all replicas)")
DUE_LAG = Gauge("webhook_deliveries_due_lag_seconds",
                "How long the most overdue sendable delivery has waited past its due time (0 when none): "
                "the dispatcher falling behind, not a retry waiting its turn")
ENDPOINTS = Gauge("webhook_endpoints", "Endpoints by status", ["status"])
# Names kept from before the worker was split out: dashboards and alerts read them.
QUEUED = Gauge("webhook_engine_queued", "Deliveries queued in this replica's memory")
IN_FLIGHT = Gauge("webhook_engine_in_flight", "Attempts in flight in this replica")
OWNED = Gauge("webhook_engine_endpoints_owned", "Endpoints this replica delivers to now (one owner each)")
ENDPOINTS_DISABLED = Counter("webhook_endpoints_disabled_total", "Endpoints disabled automatically",
                             ["reason"])  # gone | failing
