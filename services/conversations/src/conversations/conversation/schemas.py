from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, Field

from common.api import InputSchema, Schema

T = TypeVar("T")


class ConversationStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class MessageStatus(StrEnum):
    RECEIVED = "RECEIVED"
    QUEUED = "QUEUED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"


class ConversationRead(Schema):
    id: uuid.UUID
    channel_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    contact: str
    contact_name: str | None = None
    status: ConversationStatus
    handed_off: bool = Field(description="A person took over: the agent stays quiet")
    handoff_reason: str | None = None
    message_count: int
    last_message_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class MessageRead(Schema):
    id: uuid.UUID
    conversation_id: uuid.UUID
    direction: str = Field(description="INBOUND or OUTBOUND")
    sender: str = Field(description="CONTACT, AGENT or PERSON")
    author_id: uuid.UUID | None = None
    type: str
    text: str | None = None
    caption: str | None = None
    external_id: str | None = None
    status: MessageStatus
    failure_reason: str | None = None
    attempts: int
    provider_timestamp: datetime | None = None
    sent_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class CursorPage(BaseModel, Generic[T]):
    items: list[T]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")


class Reply(InputSchema):
    text: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\S")]


class Order(StrEnum):
    newest = "newest"
    oldest = "oldest"
