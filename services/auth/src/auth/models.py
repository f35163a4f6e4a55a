"""ORM models of the auth service (Alembic's target metadata)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import ModelBase, new_metadata


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        Index("ix_users_tenant_id", "tenant_id"),
        # The owner belongs to no tenant; every tenant role belongs to exactly one.
        CheckConstraint("(platform_role = 'PLATFORM_OWNER') = (tenant_id IS NULL)", name="role_tenant"),
    )

    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    platform_role: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SigningKey(Base):
    """An RSA key pair for access tokens; the newest unretired one signs, all published ones verify."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_encrypted: Mapped[str] = mapped_column(Text)  # PKCS#8 PEM, sealed with SecretBox
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RefreshToken(Base):
    """One opaque refresh token (only its SHA-256 is stored); a login starts a family, each use rotates."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginAttempt(Base):
    """A failed login, kept for the throttling window; a success clears its (email, IP) failures."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_ip_created", "email", "ip", "created_at"),
        Index("ix_login_attempts_ip_created", "ip", "created_at"),
    )

    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    cleared: Mapped[bool] = mapped_column(default=False)


class ApiKey(Base):
    """A platform API key for machines (`plk_<public id>_<secret>`): the public id in clear for lookup, the
    SHA-256 of the whole key to check it. The key itself is shown once, at creation or rotation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("(role = 'PLATFORM_OWNER') = (tenant_id IS NULL)", name="role_tenant"),
    )

    name: Mapped[str] = mapped_column(String(200))
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                         nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The key this one replaced; unique, so a key is rotated at most once.
    rotated_from: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"),
                                                           nullable=True, unique=True)
