from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from common.api import Page, PageParamsDep
from common.db import SessionDep
from common.errors import problem_responses
from support.auth import SupportCaller
from support.message import service
from support.message.schemas import MessageCreate, MessageRead

router = APIRouter(prefix="/api/platform/support/tickets/{ticket_id}/messages", tags=["ticket messages"])


@router.get("", response_model=Page[MessageRead], responses=problem_responses(401, 403, 404, 422))
async def list_messages(session: SessionDep, caller: SupportCaller, ticket_id: uuid.UUID,
                        page: PageParamsDep) -> Page[MessageRead]:
    """The ticket's conversation, oldest first. Internal notes are listed for the platform owner only."""
    return await service.list_messages(session, caller, ticket_id, page)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MessageRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def add_message(session: SessionDep, caller: SupportCaller, ticket_id: uuid.UUID,
                      body: MessageCreate) -> MessageRead:
    """Add a message (or, for the platform owner, an internal note); emits `ticket.message.added`.
    A CLOSED ticket answers 409."""
    return await service.add(session, caller, ticket_id, body)
