from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from common.api import InputSchema, Schema

_PK = re.compile(r"^pk_(test|live)_[A-Za-z0-9]{8,240}$")
_SK = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{8,240}$")
_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{8,240}$")

Mode = Literal["test", "live"]


def key_mode(key: str) -> Mode:
    return "live" if key.split("_")[1] == "live" else "test"


def _matching(pattern: re.Pattern[str], example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"must look like {example}")
        return value

    return AfterValidator(check)


_Key = StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
PublishableKey = Annotated[str, _Key, _matching(_PK, "pk_test_… or pk_live_…")]
SecretKey = Annotated[str, _Key, _matching(_SK, "sk_test_…, sk_live_…, rk_test_… or rk_live_…")]
WebhookSecret = Annotated[str, _Key, _matching(_WHSEC, "whsec_…")]


class StripeSettingsUpdate(InputSchema):
    publishable_key: PublishableKey = Field(description="pk_test_… or pk_live_…")
    secret_key: SecretKey | None = Field(default=None, description="sk_… or restricted rk_… key of the same mode. "
                                         "Required the first time; when omitted later the stored key is kept")
    webhook_secret: WebhookSecret | None = Field(default=None, description="whsec_… signing secret of the "
                                                 "webhook endpoint. Required the first time; kept when omitted")

    @model_validator(mode="after")
    def _same_mode(self) -> StripeSettingsUpdate:
        if self.secret_key is not None and key_mode(self.publishable_key) != key_mode(self.secret_key):
            raise ValueError("publishableKey and secretKey must both be test keys or both live keys")
        return self


class StripeSettingsRead(Schema):
    configured: bool
    mode: Mode | None = None
    publishable_key: str | None = Field(default=None, description="Masked")
    secret_key: str | None = Field(default=None, description="Masked: only the last 4 characters")
    webhook_secret: str | None = Field(default=None, description="Masked: only the last 4 characters")
    updated_at: datetime | None = None
    webhook_url: str = Field(description="Paste this URL into Stripe's webhook endpoint settings")


class StripeTestRequest(InputSchema):
    """Optional: test a key before saving it (defaults to the stored one)."""

    secret_key: SecretKey | None = None


class StripeTestResult(Schema):
    ok: bool
    result: Literal["ok", "wrong_key", "unreachable", "error"]
    mode: Mode
    status_code: int | None
    detail: str
    duration_ms: int
