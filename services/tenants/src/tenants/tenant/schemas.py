from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import EmailStr, Field, StringConstraints, field_validator

from common.api import InputSchema, Schema
from common.validation import StorableText
from tenants.models import Plan

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StorableText]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), StorableText]


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DELETED = "DELETED"


class TenantCreate(InputSchema):
    name: Name
    plan: PlanName = Field(default="Free", description="Plan name or code, e.g. Free, Pro, Enterprise")
    contact_email: EmailStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict, max_length=100)


class TenantUpdate(InputSchema):
    """Full or partial update: fields left out are kept."""

    name: Name | None = None
    plan: PlanName | None = None
    contact_email: EmailStr | None = None
    settings: dict[str, Any] | None = Field(default=None, max_length=100)


class StatusChange(InputSchema):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class TenantRead(Schema):
    id: uuid.UUID
    name: str
    plan: str  # the plan's name (from the row's plan)
    status: TenantStatus
    contact_email: str | None
    settings: dict[str, Any]
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @field_validator("plan", mode="before")
    @classmethod
    def _plan_name(cls, value: Any) -> Any:
        return value.name if isinstance(value, Plan) else value


class TenantSort(StrEnum):
    name = "name"
    name_desc = "-name"
    created = "createdAt"
    created_desc = "-createdAt"
