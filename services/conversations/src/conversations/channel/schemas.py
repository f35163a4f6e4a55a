from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, computed_field, model_validator

from common.api import InputSchema, Schema
from common.crypto import MASK
from common.validation import StorableText


class ChannelType(StrEnum):
    EVOLUTION = "EVOLUTION"
    CLOUD_API = "CLOUD_API"


class ChannelStatus(StrEnum):
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S"), StorableText]
Secret = Annotated[str, Field(min_length=4, max_length=500, pattern=r"^[\x21-\x7e]+$")]
Url = Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://[^\s/?#]+[^\s]*$"), StorableText]
Instance = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
PhoneNumberId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9]+$")]


class ChannelCredentials(InputSchema):
    """The secrets a channel connects with, given on create and replaced on update: stored encrypted,
    read back masked. EVOLUTION takes apiKey; CLOUD_API accessToken, appSecret and verifyToken."""

    api_key: Secret | None = None
    access_token: Secret | None = None
    verify_token: Secret | None = None
    app_secret: Secret | None = None


class ChannelCreate(ChannelCredentials):
    """EVOLUTION needs apiUrl, apiKey, instanceName; CLOUD_API needs phoneNumberId, accessToken, appSecret
    (verifyToken is generated when not given)."""

    name: Name
    type: ChannelType
    api_url: Url | None = None
    instance_name: Instance | None = None
    phone_number_id: PhoneNumberId | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> ChannelCreate:
        if self.type == ChannelType.EVOLUTION:
            needed = {"apiUrl": self.api_url, "apiKey": self.api_key, "instanceName": self.instance_name}
            other = {"phoneNumberId": self.phone_number_id, "accessToken": self.access_token,
                     "verifyToken": self.verify_token, "appSecret": self.app_secret}
        else:
            needed = {"phoneNumberId": self.phone_number_id, "accessToken": self.access_token,
                      "appSecret": self.app_secret}
            other = {"apiUrl": self.api_url, "apiKey": self.api_key, "instanceName": self.instance_name}
        missing = [k for k, v in needed.items() if v is None]
        if missing:
            raise ValueError(f"a {self.type.value} channel needs {', '.join(missing)}")
        extra = [k for k, v in other.items() if v is not None]
        if extra:
            raise ValueError(f"a {self.type.value} channel does not take {', '.join(extra)}")
        return self


class ChannelUpdate(ChannelCredentials):
    """New name or credentials; a channel in ERROR is tried again with them."""

    name: Name | None = None


def _masked(last4: str | None) -> str | None:
    """`last4` is what `mask` showed of the secret when it was stored: its last four, or nothing of a short one."""
    return None if last4 is None else MASK + last4


def _masked_field(last4_field: str) -> Any:
    """A read-only field that shows a credential masked (`****` + at most its last four characters, never all of
    it), read from `last4_field`."""

    def shown(self: BaseModel) -> str | None:
        return _masked(getattr(self, last4_field))

    return computed_field(property(shown))


class ChannelRead(Schema):
    id: uuid.UUID
    name: str
    type: ChannelType
    status: ChannelStatus
    status_reason: str | None = None
    api_url: str | None = None
    instance_name: str | None = None
    phone_number_id: str | None = None
    webhook_url: str | None = Field(default=None, description="Where the provider must send its webhooks")
    api_key_last4: str | None = Field(default=None, exclude=True)
    access_token_last4: str | None = Field(default=None, exclude=True)
    verify_token_last4: str | None = Field(default=None, exclude=True)
    app_secret_last4: str | None = Field(default=None, exclude=True)
    created_at: datetime
    updated_at: datetime

    api_key = _masked_field("api_key_last4")
    access_token = _masked_field("access_token_last4")
    app_secret = _masked_field("app_secret_last4")
    verify_token = _masked_field("verify_token_last4")


class ChannelCreated(ChannelRead):
    verify_token_plain: str | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verify_token(self) -> str | None:
        """Shown in full only in this answer: paste it into Meta's webhook settings."""
        return self.verify_token_plain or _masked(self.verify_token_last4)


class QrRead(Schema):
    status: ChannelStatus
    data_url: str = Field(description="data:image/png;base64,... (also served as image/png at /qr.png)")
    pairing_code: str | None = None
    count: int | None = None


class StatusRead(Schema):
    status: ChannelStatus
    status_reason: str | None = None
    provider_state: str | None = Field(default=None, description="Evolution: open, connecting or close")


class TestResult(Schema):
    ok: bool
    status: ChannelStatus
    detail: str | None = None
