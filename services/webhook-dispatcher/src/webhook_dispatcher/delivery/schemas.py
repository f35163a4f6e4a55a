from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator

from common.api import InputSchema, Schema
from common.events import valid_pattern
from webhook_dispatcher.models import DeliveryStatus

# The model's statuses, under the name the API has always given them.
DeliveryStatusName = StrEnum("DeliveryStatusName", [(s.name, s.value) for s in DeliveryStatus])  # type: ignore[misc]


class RecoverStatus(StrEnum):
    FAILED = "FAILED"  # deliveries that ended in the dead letter
    SUCCEEDED = "SUCCEEDED"  # deliveries that were already delivered (sent again)
    MISSED = "MISSED"  # events received while the endpoint existed but was not ACTIVE (paused, disabled, pending)


def _pattern(value: str) -> str:
    if not valid_pattern(value):
        raise ValueError(f"unknown event type or pattern {value!r}")
    return value


EventPattern = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                         AfterValidator(_pattern)]


class DeliveryRead(Schema):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatusName
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error_class: str | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class AttemptRead(Schema):
    id: uuid.UUID
    number: int
    started_at: datetime
    duration_ms: int
    url: str
    target_ip: str | None
    request_headers: dict[str, Any]
    status_code: int | None
    response_headers: dict[str, Any] | None
    response_body: str | None = Field(description="First 4 KB of the response body")
    success: bool
    error_class: str | None = Field(description="timeout, connect, tls, dns, policy, http or protocol")
    error: str | None


class DeliveryDetail(DeliveryRead):
    payload: dict[str, Any] | None = Field(description="The body that is signed and sent (null once purged)")
    attempt_log: list[AttemptRead]


class DeliveryPage(Schema):
    items: list[DeliveryRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class RecoverRequest(InputSchema):
    since: AwareDatetime = Field(description="Events that happened at or after this time (ISO 8601 with zone)")
    until: AwareDatetime | None = None
    event_types: Annotated[list[EventPattern], Field(min_length=1, max_length=100)] | None = None
    status: Annotated[list[RecoverStatus], Field(min_length=1, max_length=3)] | RecoverStatus = Field(
        default_factory=lambda: [RecoverStatus.FAILED, RecoverStatus.MISSED],
        description="What to send again: FAILED deliveries, SUCCEEDED ones, MISSED events (never delivered)")
    dry_run: bool = False
    rate_per_second: float | None = Field(
        default=None, gt=0, le=1000,
        description="Pace of the re-sends (deliveries per second; default WEBHOOK_RECOVER_RATE_PER_SECOND). "
                    "The endpoint's own rate limit and concurrency cap apply as well.")

    @model_validator(mode="after")
    def _range(self) -> RecoverRequest:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self

    @property
    def statuses(self) -> list[RecoverStatus]:
        return [self.status] if isinstance(self.status, RecoverStatus) else list(dict.fromkeys(self.status))


class RecoverResult(Schema):
    id: uuid.UUID | None = Field(default=None, description="The recovery, to follow its progress (none with dryRun)")
    dry_run: bool
    count: int = Field(description="Deliveries (re)scheduled, or that would be with dryRun")
    failed: int
    succeeded: int
    missed: int
    rate_per_second: float
    estimated_seconds: float = Field(description="At the recovery's pace, how long the re-sends take to start")


class RecoveryProgress(Schema):
    pending: int = Field(description="Not delivered yet (waiting for their turn, or retrying)")
    succeeded: int
    failed: int = Field(description="Failed again (dead letter, replayable)")
    superseded: int = Field(description="Taken over since by a later recovery or retry, or purged by retention")
    done: bool = Field(description="Nothing of this recovery is pending any more")


class RecoveryRead(Schema):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    created_at: datetime
    since: datetime
    until: datetime | None
    event_types: list[str] | None
    status: list[RecoverStatus]
    rate_per_second: float
    count: int
    failed: int = Field(description="Of `count`: deliveries that were FAILED when the recovery started")
    succeeded: int = Field(description="Of `count`: deliveries that had SUCCEEDED when the recovery started")
    missed: int = Field(description="Of `count`: events the endpoint had never been sent")
    progress: RecoveryProgress
