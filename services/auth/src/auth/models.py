"""Table models of the auth service (Alembic's target metadata)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field

from common.db.base import TableModel, new_registry

Timestamp = DateTime(timezone=True)


class Base(TableModel, registry=new_registry()):
    pass


class User(Base, table=True):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        Index("ix_users_tenant_id", "tenant_id"),
        # The owner belongs to no tenant; every tenant role belongs to exactly one.
        CheckConstraint("(platform_role = 'PLATFORM_OWNER') = (tenant_id IS NULL)", name="role_tenant"),
    )

    email: str = Field(sa_type=String(320))
    password_hash: str = Field(sa_type=String(255))
    platform_role: str = Field(sa_type=String(20))
    tenant_id: uuid.UUID | None = None
    name: str | None = Field(default=None, sa_type=String(200))
    is_active: bool = True
    last_login_at: datetime | None = Field(default=None, sa_type=Timestamp)


class SigningKey(Base, table=True):
    """An RSA key pair for access tokens; the newest unretired one signs, all published ones verify."""

    __tablename__ = "signing_keys"

    kid: str = Field(sa_type=String(64), unique=True)
    private_key_encrypted: str = Field(sa_type=Text)  # PKCS#8 PEM, sealed with SecretBox
    public_jwk: dict[str, Any] = Field(sa_type=JSONB)
    retired_at: datetime | None = Field(default=None, sa_type=Timestamp)


class RefreshToken(Base, table=True):
    """One opaque refresh token (only its SHA-256 is stored); a login starts a family, each use rotates."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    token_hash: str = Field(sa_type=String(64), unique=True)
    family_id: uuid.UUID
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    expires_at: datetime = Field(sa_type=Timestamp)
    used_at: datetime | None = Field(default=None, sa_type=Timestamp)
    revoked_at: datetime | None = Field(default=None, sa_type=Timestamp)


class LoginAttempt(Base, table=True):
    """A failed login, kept for the throttling window; a success clears its (email, IP) failures."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_ip_created", "email", "ip", "created_at"),
        Index("ix_login_attempts_ip_created", "ip", "created_at"),
    )

    email: str = Field(sa_type=String(320))
    ip: str = Field(sa_type=String(64))
    cleared: bool = False


class ApiKey(Base, table=True):
    """A platform API key for machines (`plk_<public id>_<secret>`): the public id in clear for lookup, the
    SHA-256 of the whole key to check it. The key itself is shown once, at creation or rotation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("(role = 'PLATFORM_OWNER') = (tenant_id IS NULL)", name="role_tenant"),
    )

    name: str = Field(sa_type=String(200))
    public_id: str = Field(sa_type=String(32), unique=True)
    key_hash: str = Field(sa_type=String(64))
    role: str = Field(sa_type=String(20))
    tenant_id: uuid.UUID | None = None
    scopes: list[str] = Field(default_factory=list, sa_type=ARRAY(String(100)),
                              sa_column_kwargs={"server_default": "{}"})
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    expires_at: datetime | None = Field(default=None, sa_type=Timestamp)
    last_used_at: datetime | None = Field(default=None, sa_type=Timestamp)
    revoked_at: datetime | None = Field(default=None, sa_type=Timestamp)
    # The key this one replaced; unique, so a key is rotated at most once.
    rotated_from: uuid.UUID | None = Field(default=None, foreign_key="api_keys.id", ondelete="SET NULL",
                                           unique=True)
