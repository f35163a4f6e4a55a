from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from common.api import InputSchema, Schema
from common.auth import Role
from common.validation import StorableText

# Lenient on purpose: `owner@plataforma.local` must pass, which strict validators reject as special-use.
Email = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320,
                                         pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), StorableText]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), StorableText]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StorableText]


def check_role_tenant(role: Role, tenant_id: uuid.UUID | None) -> str | None:
    """The rule the database also enforces; returns why a combination is invalid."""
    if role is Role.PLATFORM_OWNER and tenant_id is not None:
        return "A PLATFORM_OWNER belongs to no tenant: leave tenantId out"
    if role is not Role.PLATFORM_OWNER and tenant_id is None:
        return f"A {role} needs a tenantId"
    return None


class UserCreate(InputSchema):
    email: Email
    password: Password
    platform_role: Role
    tenant_id: uuid.UUID | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _role_matches_tenant(self) -> UserCreate:
        if problem := check_role_tenant(self.platform_role, self.tenant_id):
            raise ValueError(problem)
        return self


class UserUpdate(InputSchema):
    """Partial update: fields left out are kept. A new password, role or deactivation ends the user's sessions."""

    name: Name | None = None
    is_active: bool | None = None
    password: Password | None = None
    platform_role: Role | None = None
    tenant_id: uuid.UUID | None = Field(default=None, description="Needed when changing to a tenant role")


class UserRead(Schema):
    id: uuid.UUID
    email: str
    name: str | None
    platform_role: Role
    tenant_id: uuid.UUID | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserSummary(Schema):
    """The user as shown in a login response."""

    id: uuid.UUID
    email: str
    platform_role: Role
    tenant_id: uuid.UUID | None
    name: str | None
