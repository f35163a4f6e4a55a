from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from common.validation import StorableText

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StorableText]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), StorableText]


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DELETED = "DELETED"


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    plan: PlanName = Field(default="Free", description="Plan name or code, e.g. Free, Pro, Enterprise")
    contactEmail: EmailStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict, max_length=100)


class TenantUpdate(BaseModel):
    """Full or partial update: fields left out are kept."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    plan: PlanName | None = None
    contactEmail: EmailStr | None = None
    settings: dict[str, Any] | None = Field(default=None, max_length=100)


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class TenantRead(BaseModel):
    id: uuid.UUID
    name: str
    plan: str
    status: TenantStatus
    contactEmail: str | None
    settings: dict[str, Any]
    statusReason: str | None
    createdAt: datetime
    updatedAt: datetime
    deletedAt: datetime | None


class TenantSort(StrEnum):
    name = "name"
    name_desc = "-name"
    created = "createdAt"
    created_desc = "-createdAt"
