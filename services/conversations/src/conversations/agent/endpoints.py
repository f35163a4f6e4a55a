from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from common.api import Page, PageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from conversations.agent import service
from conversations.agent.schemas import AgentCreate, AgentRead, AgentUpdate

router = APIRouter(prefix="/api/platform/operations/agents", tags=["own operations: agents"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def create_agent(session: SessionDep, _: PlatformOwner, body: AgentCreate) -> AgentRead:
    """An agent that answers on one channel by itself: greeting, ordered keyword rules, business hours,
    hand-off to a person; or (mode N8N) the answers of an n8n flow with a fallback text. One enabled agent
    per channel (409)."""
    return await service.create(session, body)


@router.get("", response_model=Page[AgentRead], responses=problem_responses(401, 403, 422))
async def list_agents(session: SessionDep, _: PlatformOwner, page: PageParamsDep,
                      channelId: uuid.UUID | None = None) -> Page[AgentRead]:
    return await service.list_agents(session, channel_id=channelId, page=page)


@router.get("/{agent_id}", response_model=AgentRead, responses=problem_responses(401, 403, 404, 422))
async def get_agent(session: SessionDep, _: PlatformOwner, agent_id: uuid.UUID) -> AgentRead:
    return AgentRead.model_validate(await service.require(session, agent_id))


@router.patch("/{agent_id}", response_model=AgentRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_agent(session: SessionDep, _: PlatformOwner, agent_id: uuid.UUID, body: AgentUpdate) -> AgentRead:
    return await service.update(session, agent_id, body)


@router.post("/{agent_id}/enable", response_model=AgentRead, responses=problem_responses(401, 403, 404, 409, 422))
async def enable_agent(session: SessionDep, _: PlatformOwner, agent_id: uuid.UUID) -> AgentRead:
    return await service.set_enabled(session, agent_id, True)


@router.post("/{agent_id}/disable", response_model=AgentRead, responses=problem_responses(401, 403, 404, 422))
async def disable_agent(session: SessionDep, _: PlatformOwner, agent_id: uuid.UUID) -> AgentRead:
    return await service.set_enabled(session, agent_id, False)


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404, 422))
async def delete_agent(session: SessionDep, _: PlatformOwner, agent_id: uuid.UUID) -> Response:
    await service.delete(session, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
