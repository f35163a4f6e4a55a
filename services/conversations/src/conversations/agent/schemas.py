from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import Field, field_validator

from common.api import InputSchema, Schema

Text = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\S")]
Keyword = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class AgentMode(StrEnum):
    RULES = "RULES"
    N8N = "N8N"


class Rule(InputSchema):
    """Answer `reply` when the message has any of `keywords` as whole words (case and accents ignored)."""

    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=50)]
    reply: Text


class BusinessHours(InputSchema):
    timezone: str = Field(default="UTC", max_length=64, description="IANA name, e.g. America/Bogota")
    days: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(min_length=1, max_length=7)] = Field(
        default=[0, 1, 2, 3, 4], description="0 = Monday ... 6 = Sunday")
    start: HHMM = "09:00"
    end: HHMM = "18:00"

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError("unknown time zone")
        return value


class AgentFields(InputSchema):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")] | None = None
    enabled: bool | None = None
    mode: AgentMode | None = None
    greeting: Text | None = None
    rules: Annotated[list[Rule], Field(max_length=100)] | None = Field(
        default=None, description="Ordered: the first rule that matches answers")
    business_hours: BusinessHours | None = None
    out_of_hours_message: Text | None = None
    handoff_keywords: Annotated[list[Keyword], Field(max_length=50)] | None = Field(
        default=None, description="A contact writing one of these asks for a person: the agent goes quiet")
    handoff_message: Text | None = None
    n8n_webhook_url: Annotated[str, Field(max_length=1000, pattern=r"^https?://[^\s/?#]+[^\s]*$")] | None = Field(
        default=None, alias="n8nWebhookUrl",
        description="N8N mode: the flow's production webhook URL; its answer is the reply")
    n8n_timeout_seconds: Annotated[float, Field(gt=0, le=60)] | None = Field(default=None, alias="n8nTimeoutSeconds")
    fallback_text: Text | None = Field(default=None, description="N8N mode: sent when the flow fails or is late")


class AgentCreate(AgentFields):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
    channel_id: uuid.UUID


class AgentUpdate(AgentFields):
    pass


class AgentRead(Schema):
    id: uuid.UUID
    name: str
    channel_id: uuid.UUID
    enabled: bool
    mode: AgentMode
    greeting: str | None = None
    rules: list[dict[str, object]]
    business_hours: dict[str, object] | None = None
    out_of_hours_message: str | None = None
    handoff_keywords: list[str]
    handoff_message: str | None = None
    n8n_webhook_url: str | None = Field(default=None, alias="n8nWebhookUrl")
    n8n_timeout_seconds: float = Field(alias="n8nTimeoutSeconds")
    fallback_text: str | None = None
    created_at: datetime
    updated_at: datetime
