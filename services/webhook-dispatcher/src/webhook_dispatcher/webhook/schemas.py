from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, Field, StringConstraints

from common.api import InputSchema, Schema
from common.events import valid_pattern
from common.validation import omitted_not_null
from webhook_dispatcher.models import EndpointStatus
from webhook_dispatcher.outbound.signing import InvalidSecret, secret_key

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


# The statuses the API shows and filters by: the model's, but DELETED (a deleted endpoint is gone from the API).
EndpointStatusName = StrEnum("EndpointStatusName",  # type: ignore[misc]
                             [(s.name, s.value) for s in EndpointStatus if s is not EndpointStatus.DELETED])


class EndpointCreate(InputSchema):
    url: Url = Field(description="https:// URL that receives the events")
    events: Patterns = Field(description="Exact event names, prefix wildcards like `lead.*`, or `*`")
    secret: Secret = None
    description: Description | None = None
    max_concurrency: MaxConcurrency | None = None
    rate_limit_per_second: RateLimit | None = None
    ordered: bool = Field(default=False,
                          description="Deliver the events of one aggregate (tenant, lead, ...) one at a time, in order")


class EndpointUpdate(InputSchema):
    """Partial update: fields left out are kept. A new `url` is verified again before it receives events."""

    url: Url | None = None
    events: Patterns | None = None
    description: Description | None = None
    max_concurrency: MaxConcurrency | None = None
    rate_limit_per_second: RateLimit | None = None
    ordered: bool | None = None

    _not_null = omitted_not_null("url", "events", "max_concurrency", "ordered")


class RotateSecret(InputSchema):
    secret: Secret = None
    grace_hours: float | None = Field(default=None, ge=0, le=168,
                                     description="How long the old secret keeps signing too (default 24, max 168)")


class StatusChange(InputSchema):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class VerificationRead(Schema):
    success: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    delivery_id: uuid.UUID


class SecretRotationRead(Schema):
    previous_secret_expires_at: datetime


class EndpointRead(Schema):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    status: EndpointStatusName
    status_reason: str | None
    # Read from the row's `secret_hint`; the responses that show the full secret set it themselves.
    secret: str = Field(validation_alias=AliasChoices("secret", "secret_hint"),
                        description="Masked: only the last 4 characters")
    verification_error: str | None
    verified_at: datetime | None
    failing_since: datetime | None
    disabled_at: datetime | None
    max_concurrency: int
    rate_limit_per_second: float | None
    ordered: bool
    secret_rotation: SecretRotationRead | None
    created_at: datetime
    updated_at: datetime
    verification: VerificationRead | None = Field(
        default=None, description="Outcome of the challenge, when this request sent one")


class EndpointCreated(EndpointRead):
    secret: str = Field(description="The full signing secret: shown only in this response")


class RecoveryOffer(Schema):
    """What a re-enabled endpoint missed while it was off, and the request that sends it."""

    since: datetime = Field(description="When the endpoint stopped receiving (failing, disabled or paused)")
    count: int = Field(description="Deliveries a recover from `since` would send now (FAILED + MISSED)")
    failed: int
    missed: int
    recover: dict[str, Any] = Field(description="POST this to /{id}/recover (add dryRun or ratePerSecond)")


class Resumed(EndpointRead):
    recovery_offer: RecoveryOffer | None = Field(
        default=None, description="Present when the endpoint was PAUSED or DISABLED until this call")


class SecretRotated(EndpointRead):
    secret: str = Field(description="The new full signing secret: shown only in this response")


class TestSent(Schema):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    success: bool
    status_code: int | None
    error: str | None
    duration_ms: int
