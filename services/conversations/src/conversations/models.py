"""ORM models of the conversations service (Alembic's target metadata).

A channel is one WhatsApp number (Evolution instance or Cloud API phone number); an agent answers on one
channel; a conversation is one contact on one channel while open; messages go in and out. Provider
webhooks are first stored as `inbound_events` (one row per message or status, deduplicated on the
provider's id) and processed after the answer by a worker.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Relationship

from common.db.base import TableModel, new_registry
from common.messaging import inbox_table, outbox_table


class Base(TableModel, registry=new_registry()):
    pass


class Channel(Base, table=True):
    __tablename__ = "channels"
    __table_args__ = (
        # Cloud API posts are routed by phone_number_id: one live channel per number.
        Index("uq_channels_phone_number_id", "phone_number_id", unique=True,
              postgresql_where=text("deleted_at IS NULL AND phone_number_id IS NOT NULL")),
        Index("uq_channels_instance", "api_url", "instance_name", unique=True,
              postgresql_where=text("deleted_at IS NULL AND instance_name IS NOT NULL")),
    )

    name: str = Field(sa_type=String(200))
    type: str = Field(sa_type=String(20))  # EVOLUTION | CLOUD_API
    status: str = Field(sa_type=String(20))  # CONNECTING | CONNECTED | DISCONNECTED | ERROR
    status_reason: str | None = Field(default=None, sa_type=String(500))
    # Evolution
    api_url: str | None = Field(default=None, sa_type=String(500))
    api_key_encrypted: str | None = Field(default=None, sa_type=Text)
    api_key_last4: str | None = Field(default=None, sa_type=String(4))
    instance_name: str | None = Field(default=None, sa_type=String(100))
    webhook_secret_sha256: str | None = Field(default=None, sa_type=String(64))
    qr_data_url: str | None = Field(default=None, sa_type=Text)
    # Cloud API
    phone_number_id: str | None = Field(default=None, sa_type=String(64))
    access_token_encrypted: str | None = Field(default=None, sa_type=Text)
    access_token_last4: str | None = Field(default=None, sa_type=String(4))
    verify_token_encrypted: str | None = Field(default=None, sa_type=Text)
    verify_token_last4: str | None = Field(default=None, sa_type=String(4))
    app_secret_encrypted: str | None = Field(default=None, sa_type=Text)
    app_secret_last4: str | None = Field(default=None, sa_type=String(4))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class EvolutionInstance(Base, table=True):
    """An Evolution instance this service made, recorded in its own transaction as soon as the server made it, and
    forgotten with the commit of the channel that holds it (or once deleted again). A channel create that failed
    after making the instance, and could not delete it, leaves this row: the next create of that name adopts the
    instance instead of meeting "name in use" for ever. A name in use without a row is someone else's: 409."""

    __tablename__ = "evolution_instances"
    __table_args__ = (Index("uq_evolution_instances_instance", "api_url", "instance_name", unique=True),)

    api_url: str = Field(sa_type=String(500))
    instance_name: str = Field(sa_type=String(100))


class Agent(Base, table=True):
    __tablename__ = "agents"
    __table_args__ = (
        # One enabled agent answers on a channel.
        Index("uq_agents_enabled_channel", "channel_id", unique=True, postgresql_where=text("enabled")),
    )

    name: str = Field(sa_type=String(200))
    channel_id: uuid.UUID = Field(foreign_key="channels.id", ondelete="CASCADE")
    enabled: bool = Field(default=True, sa_type=Boolean)
    mode: str = Field(default="RULES", sa_type=String(10))  # RULES | N8N
    greeting: str | None = Field(default=None, sa_type=Text)
    # [{"keywords": [...], "reply": "..."}], first match wins.
    rules: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    # {"timezone": "America/Bogota", "days": [0..6 Monday=0], "start": "09:00", "end": "18:00"} or null.
    business_hours: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    out_of_hours_message: str | None = Field(default=None, sa_type=Text)
    handoff_keywords: list[str] = Field(default_factory=list, sa_type=JSONB)
    handoff_message: str | None = Field(default=None, sa_type=Text)
    n8n_webhook_url: str | None = Field(default=None, sa_type=String(1000))
    n8n_timeout_seconds: float = Field(default=10.0, sa_type=Float)
    fallback_text: str | None = Field(default=None, sa_type=Text)


class Conversation(Base, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        # One OPEN conversation per (channel, contact).
        Index("uq_conversations_open_contact", "channel_id", "contact", unique=True,
              postgresql_where=text("status = 'OPEN'")),
        Index("ix_conversations_activity", "last_message_at", "id"),
        Index("ix_conversations_open_idle", "last_message_at", postgresql_where=text("status = 'OPEN'")),
    )

    channel_id: uuid.UUID = Field(foreign_key="channels.id", ondelete="RESTRICT")
    agent_id: uuid.UUID | None = Field(default=None, foreign_key="agents.id", ondelete="SET NULL")
    contact: str = Field(sa_type=String(100))  # phone number, or the full jid of an @lid sender
    contact_name: str | None = Field(default=None, sa_type=String(200))
    status: str = Field(default="OPEN", sa_type=String(10))  # OPEN | CLOSED
    handed_off: bool = Field(default=False, sa_type=Boolean)  # a person took over: the agent is quiet
    handoff_reason: str | None = Field(default=None, sa_type=String(50))
    out_of_hours_sent: bool = Field(default=False, sa_type=Boolean)
    message_count: int = Field(default=0, sa_type=Integer)
    last_message_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    close_reason: str | None = Field(default=None, sa_type=String(20))  # CLOSED | IDLE


class Message(Base, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("uq_messages_channel_external", "channel_id", "external_id", unique=True,
              postgresql_where=text("external_id IS NOT NULL")),
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
        Index("ix_messages_queued", "next_attempt_at", postgresql_where=text("status = 'QUEUED'")),
    )

    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=False), nullable=False))
    conversation_id: uuid.UUID = Field(foreign_key="conversations.id", ondelete="CASCADE")
    channel_id: uuid.UUID = Field(foreign_key="channels.id", ondelete="RESTRICT")
    direction: str = Field(sa_type=String(10))  # INBOUND | OUTBOUND
    sender: str = Field(sa_type=String(10))  # CONTACT | AGENT | PERSON
    author_id: uuid.UUID | None = Field(default=None)
    type: str = Field(default="text", sa_type=String(30))
    text: str | None = Field(default=None, sa_type=Text)
    caption: str | None = Field(default=None, sa_type=Text)
    payload: dict[str, Any] | None = Field(default=None, sa_type=JSONB)  # the provider's message, as received
    external_id: str | None = Field(default=None, sa_type=String(200))
    # RECEIVED (inbound) | QUEUED | SENT | DELIVERED | READ | FAILED
    status: str = Field(sa_type=String(10))
    failure_reason: str | None = Field(default=None, sa_type=String(500))
    attempts: int = Field(default=0, sa_type=Integer)
    next_attempt_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    provider_timestamp: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    sent_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    # Never loaded (ids are set directly); declared so that one flush writes new conversations before their
    # messages (the unit of work orders tables by relationships, not by foreign keys alone).
    conversation: Conversation = Relationship(sa_relationship_kwargs={"lazy": "raise", "viewonly": False})


class PendingReply(Base, table=True):
    """An n8n agent's answer still to fetch: written in the transaction that records the inbound message it
    answers, deleted in the one that queues the flow's reply (or the fallback). A worker that dies in between
    leaves it; once `lease_until` passes, a worker asks the flow again."""

    __tablename__ = "pending_replies"
    __table_args__ = (Index("ix_pending_replies_lease_until", "lease_until"),)

    agent_id: uuid.UUID = Field(foreign_key="agents.id", ondelete="CASCADE")
    conversation_id: uuid.UUID = Field(foreign_key="conversations.id", ondelete="CASCADE")
    url: str = Field(sa_type=String(1000))
    timeout_seconds: float = Field(sa_type=Float)
    fallback_text: str | None = Field(default=None, sa_type=Text)
    body: dict[str, Any] = Field(sa_type=JSONB)  # what the flow is POSTed
    attempts: int = Field(default=1, sa_type=Integer)
    lease_until: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class InboundEvent(Base, table=True):
    """One message or status from a provider webhook, stored before the 200 and processed after."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        Index("uq_inbound_events_dedupe", "channel_id", "kind", "external_id", unique=True),
        Index("ix_inbound_events_pending", "seq", postgresql_where=text("processed_at IS NULL")),
    )

    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=False), nullable=False))
    channel_id: uuid.UUID = Field(foreign_key="channels.id", ondelete="CASCADE")
    kind: str = Field(sa_type=String(40))  # message | status:<status> | connection | qrcode
    external_id: str = Field(sa_type=String(300))
    payload: dict[str, Any] = Field(sa_type=JSONB)
    attempts: int = Field(default=0, sa_type=Integer)
    process_after: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    processed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    error: str | None = Field(default=None, sa_type=Text)


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
