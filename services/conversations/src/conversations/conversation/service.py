"""Conversations and messages: one open conversation per (channel, contact), messages in and out, the four
`conversation.*` events (keyed by conversation id, so a conversation's events keep their order)."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.auth import Principal
from common.db import utcnow
from common.errors import Conflict, NotFound, Unprocessable
from common.messaging.wakeup import wake_after_commit
from conversations.channel.repository import ChannelRepository
from conversations.conversation.repository import ConversationRepository, MessageRepository
from conversations.conversation.schemas import (
    ConversationRead,
    ConversationStatus,
    CursorPage,
    MessageRead,
    MessageStatus,
)
from conversations.events import outbox
from conversations.models import Channel, Conversation, Message

logger = logging.getLogger("conversations.conversation")
OUTBOUND_WAKE = "conversations_outbound"
STATUS_RANK = {"QUEUED": 0, "SENT": 1, "DELIVERED": 2, "READ": 3}


def conversation_data(conversation: Conversation, channel_type: str) -> dict[str, Any]:
    return {"conversationId": conversation.id, "channelId": conversation.channel_id, "channelType": channel_type,
            "contact": conversation.contact, "contactName": conversation.contact_name,
            "agentId": conversation.agent_id, "status": conversation.status}


def message_data(conversation: Conversation, channel_type: str, message: Message | dict[str, Any]) -> dict[str, Any]:
    """`message`: the ORM row, or a row a batch writes with Core (`message_row`)."""
    get = message.get if isinstance(message, dict) else partial(getattr, message)
    return conversation_data(conversation, channel_type) | {
        "messageId": get("id"), "externalId": get("external_id"), "text": get("text"),
        "direction": get("direction"), "type": get("type"), "caption": get("caption"),
        "sender": get("sender"), "messageStatus": get("status")}


def message_row(conversation: Conversation, *, direction: str, sender: str, status: str, type: str = "text",
                text: str | None = None, caption: str | None = None, payload: dict[str, Any] | None = None,
                external_id: str | None = None, author_id: uuid.UUID | None = None,
                provider_timestamp: datetime | None = None, next_attempt_at: datetime | None = None
                ) -> dict[str, Any]:
    """Every column of a new message but `seq` (given by PostgreSQL in insertion order): a batch inserts
    many with one Core statement (`MessageRepository.insert_many`); elsewhere it becomes `Message(**row)`."""
    now = utcnow()
    return {"id": uuid.uuid4(), "created_at": now, "updated_at": now, "conversation_id": conversation.id,
            "channel_id": conversation.channel_id, "direction": direction, "sender": sender, "author_id": author_id,
            "type": type, "text": text, "caption": caption, "payload": payload, "external_id": external_id,
            "status": status, "failure_reason": None, "attempts": 0, "next_attempt_at": next_attempt_at,
            "provider_timestamp": provider_timestamp, "sent_at": None}


async def require(session: AsyncSession, conversation_id: uuid.UUID, *, for_update: bool = False) -> Conversation:
    conversation = await ConversationRepository(session).get(conversation_id, for_update=for_update)
    if conversation is None:
        raise NotFound(f"Conversation {conversation_id} not found")
    return conversation


def _when(timestamp: int | None) -> datetime | None:
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


async def receive(session: AsyncSession, channel: Channel, item: dict[str, Any], agent_id: uuid.UUID | None,
                  open_conversations: dict[tuple[uuid.UUID, str], Conversation | None],
                  new_messages: list[dict[str, Any]], events: list[tuple[str, Any, Any]] | None = None,
                  ) -> tuple[Conversation, dict[str, Any], bool] | None:
    """Record an inbound message (the worker's): the contact's open conversation, or a new
    one (`conversation.started`), then the message (`conversation.message.received`).

    `open_conversations`: (channel, contact) → open conversation or None, looked up before (a batch's).
    `new_messages`: the message's row is appended there; the caller inserts them after flushing the
    conversations. `events`: given, the events are appended there for the caller to write in one INSERT."""
    # Stored items are unique per provider id already; the messages' unique index backs that up (a clash
    # fails the batch, which is then done item by item).
    now = utcnow()
    key = (channel.id, item["contact"])
    conversation = open_conversations[key] if key in open_conversations \
        else await ConversationRepository(session).open_for(channel.id, item["contact"])
    started = conversation is None
    if conversation is None:
        # Every field with a default factory given: SQLModel's constructor otherwise inspects each factory's
        # signature (pydantic's get_default), a quarter of building one (the worker builds one per new contact).
        conversation = Conversation(id=uuid.uuid4(), channel_id=channel.id, agent_id=agent_id,
                                    contact=item["contact"], contact_name=item.get("contactName"),
                                    last_message_at=now, created_at=now, updated_at=now)
        await ConversationRepository(session).add(conversation, flush=False)  # with the session's next flush
        await _publish(session, events, "conversation.started", conversation_data(conversation, channel.type),
                       conversation.id)
    elif item.get("contactName") and conversation.contact_name != item["contactName"]:
        conversation.contact_name = item["contactName"]
    message = message_row(conversation, direction="INBOUND", sender="CONTACT", type=item.get("type") or "text",
                          text=item.get("text"), caption=item.get("caption"), payload=item.get("raw"),
                          external_id=item["externalId"], status=MessageStatus.RECEIVED.value,
                          provider_timestamp=_when(item.get("timestamp")))
    open_conversations[key] = conversation
    conversation.message_count += 1
    conversation.last_message_at = conversation.updated_at = now
    new_messages.append(message)
    await _publish(session, events, "conversation.message.received",
                   message_data(conversation, channel.type, message), conversation.id)
    return conversation, message, started


async def _publish(session: AsyncSession, events: list[tuple[str, Any, Any]] | None, name: str,
                   data: dict[str, Any], key: Any) -> None:
    if events is None:
        await outbox.publish(session, name, data, key=key)
    else:
        events.append((name, data, key))


async def queue_outbound(session: AsyncSession, conversation: Conversation, text: str, *, sender: str,
                         author_id: uuid.UUID | None = None, new_messages: list[dict[str, Any]] | None = None
                         ) -> Message | None:
    """A message to send: QUEUED, handed to the provider by the outbound worker (in order per conversation).
    `new_messages` given (a batch's): its row is appended there for the caller to insert (and to wake the
    outbound worker for, unless it hands it over itself); else it is added to the session (and returned)."""
    now = utcnow()
    row = message_row(conversation, direction="OUTBOUND", sender=sender, author_id=author_id, text=text,
                      status=MessageStatus.QUEUED.value, next_attempt_at=now)
    conversation.message_count += 1
    conversation.last_message_at = conversation.updated_at = now
    if new_messages is not None:
        new_messages.append(row)
        return None
    wake_after_commit(session, OUTBOUND_WAKE)
    return await MessageRepository(session).add(Message(**row), flush=False)


async def reply(session: AsyncSession, conversation_id: uuid.UUID, text: str, caller: Principal) -> MessageRead:
    """A person answers: the message is queued for the provider and the agent goes quiet here."""
    conversation = await require(session, conversation_id, for_update=True)
    if conversation.status != ConversationStatus.OPEN:
        raise Conflict("The conversation is closed")
    if await ChannelRepository(session).get(conversation.channel_id) is None:
        raise Conflict("The conversation's channel was deleted: nothing more can be sent on it")
    conversation.handed_off = True
    conversation.handoff_reason = conversation.handoff_reason or "PERSON_REPLIED"
    message = await queue_outbound(session, conversation, text.strip(), sender="PERSON", author_id=caller.id)
    assert message is not None
    await session.flush()
    return MessageRead.model_validate(message)


async def _end(session: AsyncSession, conversation: Conversation, channel_type: str, reason: str,
               by: uuid.UUID | None) -> None:
    conversation.status = ConversationStatus.CLOSED.value
    conversation.closed_at = conversation.updated_at = utcnow()
    conversation.close_reason = reason
    await ConversationRepository(session).flush()
    await outbox.publish(session, "conversation.ended", conversation_data(conversation, channel_type)
                         | {"reason": reason, "closedBy": by}, key=conversation.id)


async def close(session: AsyncSession, conversation_id: uuid.UUID, caller: Principal) -> ConversationRead:
    conversation = await require(session, conversation_id, for_update=True)
    if conversation.status != ConversationStatus.OPEN:
        raise Conflict("The conversation is closed already")
    channel = await session.get(Channel, conversation.channel_id)
    assert channel is not None
    await _end(session, conversation, channel.type, "CLOSED", caller.id)
    return ConversationRead.model_validate(conversation)


async def end_idle(session: AsyncSession, idle_minutes: float, *, limit: int = 200) -> int:
    """Close the open conversations without a message for `idle_minutes` (`conversation.ended`, IDLE)."""
    before = utcnow() - timedelta(minutes=idle_minutes)
    idle = await ConversationRepository(session).idle(before, limit)
    types: dict[uuid.UUID, str] = {}
    for conversation in idle:
        if conversation.channel_id not in types:
            channel = await session.get(Channel, conversation.channel_id)
            types[conversation.channel_id] = channel.type if channel else "UNKNOWN"
        await _end(session, conversation, types[conversation.channel_id], "IDLE", None)
    return len(idle)


async def apply_status(session: AsyncSession, channel_id: uuid.UUID, external_id: str, status: str,
                       reason: str | None) -> bool:
    """A provider's delivery status; statuses only move forward (READ is not undone by a late DELIVERED).
    False when no message has that id (yet)."""
    message = await MessageRepository(session).by_external_id(channel_id, external_id, for_update=True)
    if message is None:
        return False
    if message.direction != "OUTBOUND" or message.status == MessageStatus.FAILED:
        return True
    if status == MessageStatus.FAILED:
        message.status, message.failure_reason = status, (reason or "failed (provider status)")[:500]
    elif STATUS_RANK.get(status, -1) > STATUS_RANK.get(message.status, -1):
        message.status = status
    message.updated_at = utcnow()
    return True


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def _uncursor(cursor: str, count: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        parts = []
    if len(parts) != count:
        raise Unprocessable("cursor: not a cursor returned by this API")
    return parts


async def list_conversations(session: AsyncSession, *, status: ConversationStatus | None,
                             channel_id: uuid.UUID | None, agent_id: uuid.UUID | None, q: str | None,
                             cursor: str | None, limit: int) -> CursorPage[ConversationRead]:
    after = None
    if cursor:
        at, last_id = _uncursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(at), uuid.UUID(last_id))
        except ValueError:
            raise Unprocessable("cursor: not a cursor returned by this API") from None
    rows = await ConversationRepository(session).page(status=status, channel_id=channel_id, agent_id=agent_id,
                                                      q=q or None, after=after, limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = _cursor(rows[-1].last_message_at.isoformat(), str(rows[-1].id)) if more else None
    return CursorPage[ConversationRead](items=[ConversationRead.model_validate(r) for r in rows],
                                        nextCursor=next_cursor)


async def list_messages(session: AsyncSession, conversation_id: uuid.UUID, *, cursor: str | None,
                        newest_first: bool, limit: int) -> CursorPage[MessageRead]:
    await require(session, conversation_id)
    after = None
    if cursor:
        [seq] = _uncursor(cursor, 1)
        if not seq.isdigit() or len(seq) > 18:
            raise Unprocessable("cursor: not a cursor returned by this API")
        after = int(seq)
    rows = await MessageRepository(session).page(conversation_id, after_seq=after, newest_first=newest_first,
                                                 limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    return CursorPage[MessageRead](items=[MessageRead.model_validate(r) for r in rows],
                                   nextCursor=_cursor(str(rows[-1].seq)) if more else None)
