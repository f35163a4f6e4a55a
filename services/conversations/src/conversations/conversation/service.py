"""Conversations and messages: one open conversation per (channel, contact), messages in and out, the four
`conversation.*` events (keyed by conversation id, so a conversation's events keep their order)."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.auth import Principal
from common.db import utcnow
from common.errors import Conflict, NotFound, Unprocessable
from common.messaging.wakeup import wake_after_commit
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


def message_data(conversation: Conversation, channel_type: str, message: Message) -> dict[str, Any]:
    return conversation_data(conversation, channel_type) | {
        "messageId": message.id, "externalId": message.external_id, "text": message.text,
        "direction": message.direction, "type": message.type, "caption": message.caption,
        "sender": message.sender, "messageStatus": message.status}


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
                  open_conversations: dict[tuple[uuid.UUID, str], Conversation | None] | None = None,
                  events: list[tuple[str, Any, Any]] | None = None) -> tuple[Conversation, Message, bool] | None:
    """Record an inbound message: the contact's open conversation, or a new
    one (`conversation.started`), then the message (`conversation.message.received`).

    `open_conversations`: (channel, contact) → open conversation or None, looked up before (a batch's).
    `events`: given, the events are appended there for the caller to write in one INSERT (in this order)."""
    # Stored items are unique per provider id already; the messages' unique index backs that up (a clash
    # fails the batch, which is then done item by item).
    messages = MessageRepository(session)
    conversations = ConversationRepository(session)
    now = utcnow()
    key = (channel.id, item["contact"])
    known = open_conversations if open_conversations is not None else {}
    conversation = known[key] if key in known else await conversations.open_for(channel.id, item["contact"])
    started = conversation is None
    if conversation is None:
        conversation = Conversation(id=uuid.uuid4(), channel_id=channel.id, agent_id=agent_id,
                                    contact=item["contact"], contact_name=item.get("contactName"),
                                    last_message_at=now)
        # Written with the session's next flush, before its messages (Message.conversation orders them).
        await conversations.add(conversation, flush=False)
        await _publish(session, events, "conversation.started", conversation_data(conversation, channel.type),
                       conversation.id)
    elif item.get("contactName") and conversation.contact_name != item["contactName"]:
        conversation.contact_name = item["contactName"]
    message = Message(id=uuid.uuid4(), conversation_id=conversation.id, channel_id=channel.id,
                      direction="INBOUND", sender="CONTACT", type=item.get("type") or "text", text=item.get("text"),
                      caption=item.get("caption"), payload=item.get("raw"), external_id=item["externalId"],
                      status=MessageStatus.RECEIVED.value, provider_timestamp=_when(item.get("timestamp")))
    known[key] = conversation
    conversation.message_count += 1
    conversation.last_message_at = conversation.updated_at = now
    await messages.add(message, flush=False)  # written with the session's next flush (a batch's: all at once)
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
                         author_id: uuid.UUID | None = None) -> Message:
    """A message to send: QUEUED, handed to the provider by the outbound worker (in order per conversation)."""
    now = utcnow()
    message = Message(id=uuid.uuid4(), conversation_id=conversation.id, channel_id=conversation.channel_id,
                      direction="OUTBOUND", sender=sender, author_id=author_id, type="text", text=text,
                      status=MessageStatus.QUEUED.value, next_attempt_at=now)
    conversation.message_count += 1
    conversation.last_message_at = conversation.updated_at = now
    await MessageRepository(session).add(message, flush=False)
    wake_after_commit(session, OUTBOUND_WAKE)
    return message


async def reply(session: AsyncSession, conversation_id: uuid.UUID, text: str, caller: Principal) -> MessageRead:
    """A person answers: the message is queued for the provider and the agent goes quiet here."""
    conversation = await require(session, conversation_id, for_update=True)
    if conversation.status != ConversationStatus.OPEN:
        raise Conflict("The conversation is closed")
    conversation.handed_off = True
    conversation.handoff_reason = conversation.handoff_reason or "PERSON_REPLIED"
    message = await queue_outbound(session, conversation, text.strip(), sender="PERSON", author_id=caller.id)
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
