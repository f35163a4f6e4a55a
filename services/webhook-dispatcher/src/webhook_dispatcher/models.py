"""ORM models of the webhook dispatcher (Alembic's target metadata).

    webhook_endpoints   subscriber URLs, their filters, encrypted secrets and health
    webhook_events      every consumed event once (the signed body is built from it; replays reuse it)
    webhook_deliveries  one row per (event, endpoint): UNIQUE (event_id, endpoint_id) is the
                        "same event never delivered twice to one endpoint" rule; `lease_until` /
                        `lease_owner` let several dispatcher replicas share due work
    webhook_attempts    one row per HTTP attempt (request/response metadata, first 4 KB of the body)
    webhook_endpoint_owners  which replica delivers to an endpoint now (a lease; see delivery/ownership.py)
    webhook_recoveries  one row per bulk recover: what was asked and how many it scheduled; the
                        deliveries it (re)scheduled point at it, which is how its progress is counted
    n8n_settings        the platform's n8n instance: URL and API key (encrypted), one row
    n8n_flows           n8n workflows the platform feeds; each flow with a Webhook trigger is backed by a
                        `webhook_endpoints` row of kind N8N_FLOW (ACTIVE while the flow is active, else
                        PAUSED), so events reach it through the same delivery machinery as webhooks
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from common.db import ModelBase, new_metadata
from common.messaging import inbox_table, outbox_table


class Base(ModelBase, DeclarativeBase):
    metadata = new_metadata()


class EndpointStatus(StrEnum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    DELETED = "DELETED"


class EndpointKind(StrEnum):
    WEBHOOK = "WEBHOOK"  # a subscriber URL (the webhooks API)
    N8N_FLOW = "N8N_FLOW"  # the production webhook of an n8n flow (the n8n API; hidden from the webhooks API)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Endpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_status", "status"),
                      CheckConstraint("NOT trusted OR kind = 'N8N_FLOW'", name="trusted_only_n8n"))

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    events: Mapped[list[str]] = mapped_column(JSONB, default=list)
    status: Mapped[str] = mapped_column(String(30), default=EndpointStatus.PENDING_VERIFICATION)
    status_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(20))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    verification_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=10)
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    ordered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    kind: Mapped[str] = mapped_column(String(20), default=EndpointKind.WEBHOOK,
                                      server_default=EndpointKind.WEBHOOK.value)
    # Skips the subscriber SSRF policy: set only on N8N_FLOW endpoints, whose URL is built from the n8n URL
    # the platform owner configured (trusted admin configuration, typically http://127.0.0.1:5678).
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Event(Base):
    """`id` is the event id (the `webhook-id` header); `body` the exact bytes that are signed and sent."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_occurred_at", "occurred_at"),
                      Index("ix_webhook_events_created_at", "created_at"))

    event_type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    ordering_key: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    traceparent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tracestate: Mapped[str | None] = mapped_column(String(512), nullable=True)


class Delivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        # The poller: due work per endpoint, oldest first.
        Index("ix_webhook_deliveries_due", "endpoint_id", "next_attempt_at",
              postgresql_where=text("status = 'PENDING'")),
        # Ordered endpoints: the head of each aggregate's queue.
        Index("ix_webhook_deliveries_ordering", "endpoint_id", "ordering_key", "seq",
              postgresql_where=text("status = 'PENDING'")),
        Index("ix_webhook_deliveries_endpoint_seq", "endpoint_id", "seq"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
        Index("ix_webhook_deliveries_recovery", "recovery_id", postgresql_where=text("recovery_id IS NOT NULL")),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), unique=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(100))
    ordering_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cycle_attempts: Mapped[int] = mapped_column(Integer, default=0)  # since the last (re)schedule
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error_class: Mapped[str | None] = mapped_column(String(30), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The bulk recover that last (re)scheduled this delivery, if any.
    recovery_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_recoveries.id", ondelete="SET NULL"), nullable=True)


class Recovery(Base):
    __tablename__ = "webhook_recoveries"
    __table_args__ = (Index("ix_webhook_recoveries_endpoint", "endpoint_id", "created_at"),)

    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    event_types: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True), nullable=True)
    statuses: Mapped[list[str]] = mapped_column(JSONB, default=list)
    rate_per_second: Mapped[float] = mapped_column(Float)
    total: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer)
    missed: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class Attempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id", "number"),
        Index("ix_webhook_attempts_created_at", "created_at"),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2048))
    target_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True), nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    error_class: Mapped[str | None] = mapped_column(String(30), nullable=True)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class N8nSettings(Base):
    """The platform's n8n instance (one row, `singleton` = true)."""

    __tablename__ = "n8n_settings"

    singleton: Mapped[bool] = mapped_column(Boolean, default=True, unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    api_key_encrypted: Mapped[str] = mapped_column(Text)
    api_key_hint: Mapped[str] = mapped_column(String(20))
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class N8nFlow(Base):
    __tablename__ = "n8n_flows"

    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(50), nullable=True)
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    trigger_events: Mapped[list[str]] = mapped_column(JSONB, default=list)
    mode: Mapped[str] = mapped_column(String(20))  # create | register
    template: Mapped[str | None] = mapped_column(String(50), nullable=True)
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    # The production webhook path (`{n8n}/webhook/{path}`); null for flows without a Webhook trigger.
    webhook_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    webhook_node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), nullable=True, unique=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


endpoint_owners = Table(
    "webhook_endpoint_owners", Base.metadata,
    Column("endpoint_id", Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", Uuid, nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
# The retention purge deletes old inbox rows too (one per consumed event).
Index("ix_inbox_processed_at", inbox.c.processed_at)
