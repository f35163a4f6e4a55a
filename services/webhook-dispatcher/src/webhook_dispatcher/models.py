"""ORM models of the webhook dispatcher (Alembic's target metadata).

    webhook_endpoints   subscriber URLs, their filters, encrypted secrets and health
    webhook_events      every consumed event once (the signed body is built from it; replays reuse it)
    webhook_deliveries  one row per (event, endpoint): UNIQUE (event_id, endpoint_id) is the
                        "same event never delivered twice to one endpoint" rule; `lease_until` /
                        `lease_owner` let several dispatcher replicas share due work
    webhook_attempts    one row per HTTP attempt (request/response metadata, first 4 KB of the body)
    webhook_endpoint_owners  which replica delivers to an endpoint now (a lease; see worker/ownership.py)
    webhook_recoveries  one row per bulk recover: what was asked and how many it scheduled; the
                        deliveries it (re)scheduled point at it, which is how its progress is counted
    n8n_settings        the platform's n8n instance: URL and API key (encrypted), one row
    n8n_flows           n8n workflows the platform feeds; each flow with a Webhook trigger is backed by a
                        `webhook_endpoints` row of kind N8N_FLOW (ACTIVE while the flow is active, else
                        PAUSED), so events reach it through the same delivery machinery as webhooks
"""

# No `from __future__ import annotations`: SQLModel reads the column types from the annotations.
import uuid
from datetime import UTC, datetime
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
from sqlalchemy.types import Uuid
from sqlmodel import Field

from common.db.base import TableModel, new_registry
from common.db.secret_column import encrypted, hint
from common.messaging import inbox_table, outbox_table

TZ = DateTime(timezone=True)


class Base(TableModel, registry=new_registry()):
    pass


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


class WebhookEndpoint(Base, table=True):
    """A subscriber endpoint (kind WEBHOOK) or the webhook of an n8n flow (kind N8N_FLOW)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_status", "status"),
                      # The lists (newest first, by offset or cursor) read a range of this one, or with one
                      # `status` of the next; `eventType` and `q` (url, description) are found by GIN indexes.
                      Index("ix_webhook_endpoints_live_created_id", "kind", "created_at", "id",
                            postgresql_where=text("status <> 'DELETED'")),
                      Index("ix_webhook_endpoints_live_status_created_id", "kind", "status", "created_at", "id",
                            postgresql_where=text("status <> 'DELETED'")),
                      Index("ix_webhook_endpoints_live_events", "events", postgresql_using="gin",
                            postgresql_where=text("status <> 'DELETED'")),
                      *(Index(f"ix_webhook_endpoints_live_{column}_trgm", column, postgresql_using="gin",
                              postgresql_ops={column: "gin_trgm_ops"},
                              postgresql_with={"fastupdate": "on", "gin_pending_list_limit": "64"},
                              postgresql_where=text("status <> 'DELETED'")) for column in ("url", "description")),
                      CheckConstraint("NOT trusted OR kind = 'N8N_FLOW'", name="trusted_only_n8n"))

    url: str = Field(sa_type=String(2048))
    description: str | None = Field(default=None, sa_type=String(500))
    events: list[str] = Field(default_factory=list, sa_type=JSONB)
    status: str = Field(default=EndpointStatus.PENDING_VERIFICATION, sa_type=String(30))
    status_reason: str | None = Field(default=None, sa_type=String(1000))
    secret_encrypted: str = encrypted()
    secret_hint: str = hint()
    previous_secret_encrypted: str | None = encrypted(optional=True)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=TZ)
    verification_error: str | None = Field(default=None, sa_type=String(1000))
    verified_at: datetime | None = Field(default=None, sa_type=TZ)
    max_concurrency: int = Field(default=10, sa_type=Integer)
    rate_limit_per_second: float | None = Field(default=None, sa_type=Float)
    ordered: bool = Field(default=False, sa_type=Boolean, sa_column_kwargs={"server_default": text("false")})
    failing_since: datetime | None = Field(default=None, sa_type=TZ)
    disabled_at: datetime | None = Field(default=None, sa_type=TZ)
    paused_at: datetime | None = Field(default=None, sa_type=TZ)
    deleted_at: datetime | None = Field(default=None, sa_type=TZ)
    created_by: uuid.UUID | None = Field(default=None, sa_type=Uuid)
    kind: str = Field(default=EndpointKind.WEBHOOK, sa_type=String(20),
                      sa_column_kwargs={"server_default": EndpointKind.WEBHOOK.value})
    # Skips the subscriber SSRF policy: set only on N8N_FLOW endpoints, whose URL is built from the n8n URL
    # the platform owner configured (trusted admin configuration, typically http://127.0.0.1:5678).
    trusted: bool = Field(default=False, sa_type=Boolean, sa_column_kwargs={"server_default": text("false")})

    @property
    def secret_rotation(self) -> dict[str, datetime] | None:
        """The rotation in progress: until when the previous secret signs too (None when none is)."""
        expires = self.previous_secret_expires_at
        if self.previous_secret_encrypted and expires is not None and expires > datetime.now(UTC):
            return {"previous_secret_expires_at": expires}
        return None


class Event(Base, table=True):
    """`id` is the event id (the `webhook-id` header); `body` the exact bytes that are signed and sent."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_occurred_at", "occurred_at"),
                      Index("ix_webhook_events_created_at", "created_at"))

    event_type: str = Field(sa_type=String(100))
    occurred_at: datetime = Field(sa_type=TZ)
    tenant_id: uuid.UUID | None = Field(default=None, sa_type=Uuid)
    ordering_key: str = Field(sa_type=String(200))
    body: str = Field(sa_type=Text)
    traceparent: str | None = Field(default=None, sa_type=String(100))
    tracestate: str | None = Field(default=None, sa_type=String(512))


class Delivery(Base, table=True):
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

    # Assigned by PostgreSQL (identity): the order deliveries were created in (cursors, ordered endpoints).
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=False), unique=True,
                                                           nullable=False))
    endpoint_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                                    nullable=False))
    event_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("webhook_events.id", ondelete="CASCADE"),
                                                 nullable=False))
    event_type: str = Field(sa_type=String(100))
    ordering_key: str = Field(sa_type=String(200))
    status: str = Field(default=DeliveryStatus.PENDING, sa_type=String(20))
    attempts: int = Field(default=0, sa_type=Integer)
    cycle_attempts: int = Field(default=0, sa_type=Integer)  # since the last (re)schedule
    next_attempt_at: datetime | None = Field(default=None, sa_type=TZ)
    lease_until: datetime | None = Field(default=None, sa_type=TZ)
    lease_owner: uuid.UUID | None = Field(default=None, sa_type=Uuid)
    last_attempt_at: datetime | None = Field(default=None, sa_type=TZ)
    last_status_code: int | None = Field(default=None, sa_type=Integer)
    last_error_class: str | None = Field(default=None, sa_type=String(30))
    last_error: str | None = Field(default=None, sa_type=String(1000))
    delivered_at: datetime | None = Field(default=None, sa_type=TZ)
    # The bulk recover that last (re)scheduled this delivery, if any.
    recovery_id: uuid.UUID | None = Field(default=None, sa_column=Column(
        Uuid, ForeignKey("webhook_recoveries.id", ondelete="SET NULL"), nullable=True))


class Recovery(Base, table=True):
    __tablename__ = "webhook_recoveries"
    __table_args__ = (Index("ix_webhook_recoveries_endpoint", "endpoint_id", "created_at"),)

    endpoint_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                                    nullable=False))
    since: datetime = Field(sa_type=TZ)
    until: datetime | None = Field(default=None, sa_type=TZ)
    event_types: list[str] | None = Field(default=None, sa_type=JSONB(none_as_null=True))
    statuses: list[str] = Field(default_factory=list, sa_type=JSONB)
    rate_per_second: float = Field(sa_type=Float)
    total: int = Field(sa_type=Integer)
    failed: int = Field(sa_type=Integer)
    succeeded: int = Field(sa_type=Integer)
    missed: int = Field(sa_type=Integer)
    created_by: uuid.UUID | None = Field(default=None, sa_type=Uuid)


class Attempt(Base, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id", "number"),
        Index("ix_webhook_attempts_created_at", "created_at"),
    )

    delivery_id: uuid.UUID = Field(sa_column=Column(
        Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False))
    endpoint_id: uuid.UUID = Field(sa_type=Uuid)
    number: int = Field(sa_type=Integer)
    started_at: datetime = Field(sa_type=TZ)
    duration_ms: int = Field(sa_type=Integer)
    url: str = Field(sa_type=String(2048))
    target_ip: str | None = Field(default=None, sa_type=String(64))
    request_headers: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    status_code: int | None = Field(default=None, sa_type=Integer)
    response_headers: dict[str, Any] | None = Field(default=None, sa_type=JSONB(none_as_null=True))
    response_body: str | None = Field(default=None, sa_type=Text)
    success: bool = Field(default=False, sa_type=Boolean)
    error_class: str | None = Field(default=None, sa_type=String(30))
    error: str | None = Field(default=None, sa_type=String(1000))


class N8nSettings(Base, table=True):
    """The platform's n8n instance (one row, `singleton` = true)."""

    __tablename__ = "n8n_settings"

    singleton: bool = Field(default=True, sa_type=Boolean, unique=True)
    url: str = Field(sa_type=String(2048))
    api_key_encrypted: str = encrypted()
    api_key_hint: str = hint()
    updated_by: uuid.UUID | None = Field(default=None, sa_type=Uuid)


class N8nFlow(Base, table=True):
    __tablename__ = "n8n_flows"

    name: str = Field(sa_type=String(200))
    category: str | None = Field(default=None, sa_type=String(50))
    description: str | None = Field(default=None, sa_type=String(1000))
    trigger_events: list[str] = Field(default_factory=list, sa_type=JSONB)
    mode: str = Field(sa_type=String(20))  # create | register
    template: str | None = Field(default=None, sa_type=String(50))
    workflow_id: str = Field(sa_type=String(100), unique=True)
    # The production webhook path (`{n8n}/webhook/{path}`); null for flows without a Webhook trigger.
    webhook_path: str | None = Field(default=None, sa_type=String(1000))
    webhook_node: str | None = Field(default=None, sa_type=String(200))
    active: bool = Field(default=False, sa_type=Boolean)
    activated_at: datetime | None = Field(default=None, sa_type=TZ)
    deactivated_at: datetime | None = Field(default=None, sa_type=TZ)
    endpoint_id: uuid.UUID | None = Field(default=None, sa_column=Column(
        Uuid, ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), nullable=True, unique=True))
    created_by: uuid.UUID | None = Field(default=None, sa_type=Uuid)


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
