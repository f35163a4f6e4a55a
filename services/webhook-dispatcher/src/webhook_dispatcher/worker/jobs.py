"""One delivery as the worker holds it in memory, from intake (consumer or poller) to its recorded attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from webhook_dispatcher.delivery.repository import ClaimedDelivery

LEASE_MARGIN = 5.0  # seconds kept between the end of an attempt and the end of its lease


@dataclass
class Job:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: bytes
    occurred_at: datetime | None
    traceparent: str | None
    tracestate: str | None
    attempts: int  # made so far, in total
    cycle_attempts: int  # made so far in this retry cycle
    lease_deadline: float  # loop.time() at which our lease on the row ends (conservative)

    @classmethod
    def from_claim(cls, row: ClaimedDelivery, lease_deadline: float) -> Job:
        return cls(row.id, row.endpoint_id, row.event_id, row.event_type, row.body.encode(), row.occurred_at,
                   row.traceparent, row.tracestate, row.attempts, row.cycle_attempts, lease_deadline)
