from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from common.auth import Role
from common.validation import StorableText as CleanText

# Lenient on purpose: `owner@plataforma.local` must pass, which strict validators reject as special-use.
Email = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320,
                                         pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), CleanText]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), CleanText]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), CleanText]


def check_role_tenant(role: Role, tenant_id: uuid.UUID | None) -> str | None:
    """The rule the database also enforces; returns why a combination is invalid."""
    if role is Role.PLATFORM_OWNER and tenant_id is not None:
        return "A PLATFORM_OWNER belongs to no tenant: leave tenantId out"
    if role is not Role.PLATFORM_OWNER and tenant_id is None:
        return f"A {role} needs a tenantId"
    return None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    platformRole: Role
    tenantId: uuid.UUID | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _role_matches_tenant(self) -> UserCreate:
        if problem := check_role_tenant(self.platformRole, self.tenantId):
            raise ValueError(problem)
        return self


class UserUpdate(BaseModel):
    """Partial update: fields left out are kept. A new password, role or deactivation ends the user's sessions."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    isActive: bool | None = None
    password: Password | None = None
    platformRole: Role | None = None
    tenantId: uuid.UUID | None = Field(default=None, description="Needed when changing to a tenant role")


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None
    platformRole: Role
    tenantId: uuid.UUID | None
    isActive: bool
    lastLoginAt: datetime | None
    createdAt: datetime
    updatedAt: datetime


class UserSummary(BaseModel):
    """The user as shown in a login response."""

    id: uuid.UUID
    email: str
    platformRole: Role
    tenantId: uuid.UUID | None
    name: str | None
