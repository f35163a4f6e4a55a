from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from common.events import valid_pattern
from common.validation import omitted_not_null
from webhook_dispatcher.delivery.signing import InvalidSecret, secret_key

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Pattern = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def unique_patterns(value: list[str]) -> list[str]:
    """Known event names or patterns only (the message says where to find them), de-duplicated."""
    unknown = [p for p in value if not valid_pattern(p)]
    if unknown:
        raise ValueError(
            f"unknown event type or pattern: {', '.join(repr(p) for p in unknown[:10])}; use exact names from "
            "GET /api/platform/webhooks/event-types, a prefix wildcard such as 'lead.*', or '*'")
    return list(dict.fromkeys(value))  # de-duplicated, order kept


def subscribable_event(value: str | None) -> str | None:
    """One exact event name that endpoints can subscribe to (not a pattern)."""
    if value is not None and (value.endswith("*") or not valid_pattern(value)):
        raise ValueError(f"unknown event type {value!r}; use an exact name from "
                         "GET /api/platform/webhooks/event-types (patterns such as 'lead.*' are not accepted here)")
    return value


def _secret(value: str | None) -> str | None:
    if value is not None:
        try:
            secret_key(value)
        except InvalidSecret as exc:
            raise ValueError(str(exc)) from None
    return value


Patterns = Annotated[list[Pattern], Field(min_length=1, max_length=100), AfterValidator(unique_patterns)]
Secret = Annotated[str | None, Field(max_length=200,
                                     description="`whsec_` + base64 of 24-64 random bytes; generated when omitted"),
                   AfterValidator(_secret)]
MaxConcurrency = Annotated[int, Field(ge=1, le=200, description="Attempts in flight at once to this endpoint")]
RateLimit = Annotated[float, Field(gt=0, le=10_000, description="At most this many attempts per second")]


class EndpointStatusName(StrEnum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="https:// URL that receives the events")
    events: Patterns = Field(description="Exact event names, prefix wildcards like `lead.*`, or `*`")
    secret: Secret = None
    description: Description | None = None
    maxConcurrency: MaxConcurrency | None = None
    rateLimitPerSecond: RateLimit | None = None
    ordered: bool = Field(default=False,
                          description="Deliver the events of one aggregate (tenant, lead, ...) one at a time, in order")


class EndpointUpdate(BaseModel):
    """Partial update: fields left out are kept. A new `url` is verified again before it receives events."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Patterns | None = None
    description: Description | None = None
    maxConcurrency: MaxConcurrency | None = None
    rateLimitPerSecond: RateLimit | None = None
    ordered: bool | None = None

    _not_null = omitted_not_null("url", "events", "maxConcurrency", "ordered")


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: Secret = None
    graceHours: float | None = Field(default=None, ge=0, le=168,
                                     description="How long the old secret keeps signing too (default 24, max 168)")


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class VerificationRead(BaseModel):
    success: bool
    statusCode: int | None
    error: str | None
    durationMs: int
    deliveryId: uuid.UUID


class SecretRotationRead(BaseModel):
    previousSecretExpiresAt: datetime


class EndpointRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    status: EndpointStatusName
    statusReason: str | None
    secret: str = Field(description="Masked: only the last 4 characters")
    verificationError: str | None
    verifiedAt: datetime | None
    failingSince: datetime | None
    disabledAt: datetime | None
    maxConcurrency: int
    rateLimitPerSecond: float | None
    ordered: bool
    secretRotation: SecretRotationRead | None
    createdAt: datetime
    updatedAt: datetime
    verification: VerificationRead | None = Field(
        default=None, description="Outcome of the challenge, when this request sent one")


class EndpointCreated(EndpointRead):
    secret: str = Field(description="The full signing secret: shown only in this response")


class RecoveryOffer(BaseModel):
    """What a re-enabled endpoint missed while it was off, and the request that sends it."""

    since: datetime = Field(description="When the endpoint stopped receiving (failing, disabled or paused)")
    count: int = Field(description="Deliveries a recover from `since` would send now (FAILED + MISSED)")
    failed: int
    missed: int
    recover: dict[str, Any] = Field(description="POST this to /{id}/recover (add dryRun or ratePerSecond)")


class Resumed(EndpointRead):
    recoveryOffer: RecoveryOffer | None = Field(
        default=None, description="Present when the endpoint was PAUSED or DISABLED until this call")


class SecretRotated(EndpointRead):
    secret: str = Field(description="The new full signing secret: shown only in this response")


class TestSent(BaseModel):
    deliveryId: uuid.UUID
    eventId: uuid.UUID
    success: bool
    statusCode: int | None
    error: str | None
    durationMs: int
