from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from auth.user.schemas import Name, check_role_tenant
from common.api import InputSchema, Schema
from common.auth import Role

# `<service>[:<action>...]` (e.g. `leads:read`, `webhook-dispatcher:*`) or `*`; empty list = all the role allows.
Scope = Annotated[str, StringConstraints(
    max_length=100, pattern=r"^(?:\*|[a-z][a-z0-9_-]{0,49}(?::(?:[a-z][a-z0-9_-]{0,49}|\*))*)$")]
Scopes = Annotated[list[Scope], Field(max_length=50)]


class ApiKeyCreate(InputSchema):
    name: Name
    role: Role | None = Field(default=None, description="Default: PLATFORM_OWNER, or TENANT_USER with a tenantId")
    tenant_id: uuid.UUID | None = None
    scopes: Scopes = Field(default_factory=list)
    expires_at: AwareDatetime | None = Field(default=None, description="Must be in the future")

    @model_validator(mode="after")
    def _role_matches_tenant(self) -> ApiKeyCreate:
        if self.role is None:
            self.role = Role.PLATFORM_OWNER if self.tenant_id is None else Role.TENANT_USER
        if problem := check_role_tenant(self.role, self.tenant_id):
            raise ValueError(problem)
        self.scopes = sorted(set(self.scopes))
        return self


class ApiKeyRotate(InputSchema):
    grace_period_hours: int = Field(default=0, ge=0, le=168,
                                  description="How long the old key keeps working; 0 revokes it now")


class ApiKeyRead(Schema):
    """A key's metadata: never the key, never its hash."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="`plk_<public id>`, the start of the key, to recognise it")
    role: Role
    tenant_id: uuid.UUID | None
    scopes: list[str]
    active: bool = Field(description="Neither revoked nor expired")
    created_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None
    rotated_from: uuid.UUID | None
    age_days: int = Field(description="Whole days since the key was created: rotate old keys")


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key. Shown only in this response: store it now")


class IntrospectRequest(InputSchema):
    # Any string is a well-formed question: a malformed key is answered `{"active": false}`, not a 4xx;
    # other fields are ignored, as they always were.
    model_config = ConfigDict(extra="ignore")

    key: str


class ApiKeyPrincipal(Schema):
    """The caller a valid key stands for (what `common.auth.get_principal` builds a Principal from)."""

    id: uuid.UUID = Field(description="The key's id")
    email: None = None
    role: Role
    tenant_id: uuid.UUID | None
    scopes: list[str]
    key_id: str = Field(description="The key's id again, as the Principal's api_key_id")
    name: str


class IntrospectActive(Schema):
    active: Literal[True]
    principal: ApiKeyPrincipal
    cache_seconds: int = Field(description="How long the answer may be cached (never past the key's expiry)")


class IntrospectInactive(Schema):
    active: Literal[False]


IntrospectResponse = IntrospectActive | IntrospectInactive
