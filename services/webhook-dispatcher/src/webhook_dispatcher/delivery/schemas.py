from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from common.events import valid_pattern


class DeliveryStatusName(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


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


class DeliveryRead(BaseModel):
    id: uuid.UUID
    endpointId: uuid.UUID
    eventId: uuid.UUID
    eventType: str
    status: DeliveryStatusName
    attempts: int
    nextAttemptAt: datetime | None
    lastAttemptAt: datetime | None
    lastStatusCode: int | None
    lastErrorClass: str | None
    lastError: str | None
    deliveredAt: datetime | None
    createdAt: datetime


class AttemptRead(BaseModel):
    id: uuid.UUID
    number: int
    startedAt: datetime
    durationMs: int
    url: str
    targetIp: str | None
    requestHeaders: dict[str, Any]
    statusCode: int | None
    responseHeaders: dict[str, Any] | None
    responseBody: str | None = Field(description="First 4 KB of the response body")
    success: bool
    errorClass: str | None = Field(description="timeout, connect, tls, dns, policy, http or protocol")
    error: str | None


class DeliveryDetail(DeliveryRead):
    payload: dict[str, Any] | None = Field(description="The body that is signed and sent (null once purged)")
    attemptLog: list[AttemptRead]


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="Events that happened at or after this time (ISO 8601 with zone)")
    until: AwareDatetime | None = None
    eventTypes: Annotated[list[EventPattern], Field(min_length=1, max_length=100)] | None = None
    status: Annotated[list[RecoverStatus], Field(min_length=1, max_length=3)] | RecoverStatus = Field(
        default_factory=lambda: [RecoverStatus.FAILED, RecoverStatus.MISSED],
        description="What to send again: FAILED deliveries, SUCCEEDED ones, MISSED events (never delivered)")
    dryRun: bool = False
    ratePerSecond: float | None = Field(
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


class RecoverResult(BaseModel):
    id: uuid.UUID | None = Field(default=None, description="The recovery, to follow its progress (none with dryRun)")
    dryRun: bool
    count: int = Field(description="Deliveries (re)scheduled, or that would be with dryRun")
    failed: int
    succeeded: int
    missed: int
    ratePerSecond: float
    estimatedSeconds: float = Field(description="At the recovery's pace, how long the re-sends take to start")


class RecoveryProgress(BaseModel):
    pending: int = Field(description="Not delivered yet (waiting for their turn, or retrying)")
    succeeded: int
    failed: int = Field(description="Failed again (dead letter, replayable)")
    superseded: int = Field(description="Taken over since by a later recovery or retry, or purged by retention")
    done: bool = Field(description="Nothing of this recovery is pending any more")


class RecoveryRead(BaseModel):
    id: uuid.UUID
    endpointId: uuid.UUID
    createdAt: datetime
    since: datetime
    until: datetime | None
    eventTypes: list[str] | None
    status: list[RecoverStatus]
    ratePerSecond: float
    count: int
    failed: int = Field(description="Of `count`: deliveries that were FAILED when the recovery started")
    succeeded: int = Field(description="Of `count`: deliveries that had SUCCEEDED when the recovery started")
    missed: int = Field(description="Of `count`: events the endpoint had never been sent")
    progress: RecoveryProgress
