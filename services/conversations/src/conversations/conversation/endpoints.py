from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from conversations.conversation import service
from conversations.conversation.schemas import (
    ConversationRead,
    ConversationStatus,
    CursorPage,
    MessageRead,
    Order,
    Reply,
)

router = APIRouter(prefix="/api/platform/operations/conversations", tags=["own operations: conversations"])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("", response_model=CursorPage[ConversationRead], responses=problem_responses(401, 403, 422))
async def list_conversations(
    session: SessionDep, _: PlatformOwner, status: ConversationStatus | None = None,
    channelId: uuid.UUID | None = None, agentId: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in the contact's number and name")] = None,
    cursor: Cursor = None, limit: Limit = 20,
) -> CursorPage[ConversationRead]:
    """Conversations, most recent activity first (cursor pagination)."""
    return await service.list_conversations(session, status=status, channel_id=channelId, agent_id=agentId, q=q,
                                            cursor=cursor, limit=limit)


@router.get("/{conversation_id}", response_model=ConversationRead, responses=problem_responses(401, 403, 404, 422))
async def get_conversation(session: SessionDep, _: PlatformOwner, conversation_id: uuid.UUID) -> ConversationRead:
    return ConversationRead.model_validate(await service.require(session, conversation_id))


@router.get("/{conversation_id}/messages", response_model=CursorPage[MessageRead],
            responses=problem_responses(401, 403, 404, 422))
async def list_messages(session: SessionDep, _: PlatformOwner, conversation_id: uuid.UUID, cursor: Cursor = None,
                        limit: Limit = 50, order: Order = Order.newest) -> CursorPage[MessageRead]:
    """The conversation's messages, newest first (or `order=oldest`), with their delivery status."""
    return await service.list_messages(session, conversation_id, cursor=cursor,
                                       newest_first=order == Order.newest, limit=limit)


@router.post("/{conversation_id}/messages", status_code=status.HTTP_202_ACCEPTED, response_model=MessageRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def send_message(session: SessionDep, caller: PlatformOwner, conversation_id: uuid.UUID,
                       body: Reply) -> MessageRead:
    """A person answers (queued, then handed to the provider; follow its status). The agent stays quiet in
    this conversation from now on."""
    return await service.reply(session, conversation_id, body.text, caller)


@router.post("/{conversation_id}/close", response_model=ConversationRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def close_conversation(session: SessionDep, caller: PlatformOwner,
                             conversation_id: uuid.UUID) -> ConversationRead:
    """End the conversation (`conversation.ended`, reason CLOSED); the contact's next message starts a new one."""
    return await service.close(session, conversation_id, caller)
