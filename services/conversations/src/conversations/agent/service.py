"""Agents: CRUD, and the agent's turn after an inbound message (rules, or an n8n flow's answer)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from common.db import utcnow
from common.errors import NotFound, Unprocessable
from conversations.agent.replies import decide
from conversations.agent.repository import LEASE_MARGIN_SECONDS, AgentRepository, PendingReplyRepository
from conversations.agent.schemas import AgentCreate, AgentMode, AgentRead, AgentUpdate
from conversations.channel.repository import ChannelRepository
from conversations.conversation import service as conversations
from conversations.models import Agent, Conversation, Message, PendingReply
from conversations.providers.http import CallFailed, Reply, fetch

logger = logging.getLogger("conversations.agent")


async def require(session: AsyncSession, agent_id: uuid.UUID, *, for_update: bool = False) -> Agent:
    agent = await AgentRepository(session).get(agent_id, for_update=for_update)
    if agent is None:
        raise NotFound(f"Agent {agent_id} not found")
    return agent


def _check(agent: Agent) -> None:
    if agent.mode == AgentMode.N8N and not agent.n8n_webhook_url:
        raise Unprocessable("An N8N agent needs n8nWebhookUrl")


def _values(body: AgentCreate | AgentUpdate) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, exclude={"channel_id"})
    if "rules" in values and values["rules"] is not None:
        values["rules"] = [dict(r) for r in values["rules"]]
    return {k: v for k, v in values.items() if v is not None or k in (
        "greeting", "business_hours", "out_of_hours_message", "handoff_message", "n8n_webhook_url", "fallback_text")}


async def create(session: AsyncSession, body: AgentCreate) -> AgentRead:
    if await ChannelRepository(session).get(body.channel_id) is None:
        raise NotFound(f"Channel {body.channel_id} not found")
    agent = Agent(id=uuid.uuid4(), channel_id=body.channel_id, **_values(body))
    _check(agent)
    await AgentRepository(session).add(agent)
    return AgentRead.model_validate(agent)


async def update(session: AsyncSession, agent_id: uuid.UUID, body: AgentUpdate) -> AgentRead:
    agent = await require(session, agent_id, for_update=True)
    for name, value in _values(body).items():
        setattr(agent, name, value)
    _check(agent)
    agent.updated_at = utcnow()
    await AgentRepository(session).flush()
    return AgentRead.model_validate(agent)


async def set_enabled(session: AsyncSession, agent_id: uuid.UUID, enabled: bool) -> AgentRead:
    return await update(session, agent_id, AgentUpdate(enabled=enabled))


async def delete(session: AsyncSession, agent_id: uuid.UUID) -> None:
    agent = await require(session, agent_id)
    await session.delete(agent)
    await session.flush()


async def list_agents(session: AsyncSession, *, channel_id: uuid.UUID | None, page: PageParams) -> Page[AgentRead]:
    rows, total = await AgentRepository(session).page(channel_id=channel_id, limit=page.limit, offset=page.offset)
    return Page[AgentRead].of(rows, total, page)


@dataclass(frozen=True)
class FlowRequest:
    """An n8n flow to ask, after the inbound message is committed (the call must not hold the worker).
    Recorded as a pending reply in that same transaction (`pending_row`), so a crash before the reply is
    queued loses nothing: the reply is asked again once the lease passes."""

    id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID
    url: str
    timeout: float
    fallback: str | None
    body: dict[str, Any]

    def pending_row(self) -> dict[str, Any]:
        now = utcnow()
        return {"id": self.id, "agent_id": self.agent_id, "conversation_id": self.conversation_id, "url": self.url,
                "timeout_seconds": self.timeout, "fallback_text": self.fallback, "body": self.body, "attempts": 1,
                "lease_until": now + timedelta(seconds=self.timeout + LEASE_MARGIN_SECONDS)}

    @classmethod
    def of(cls, row: PendingReply) -> FlowRequest:
        return cls(row.id, row.agent_id, row.conversation_id, row.url, row.timeout_seconds, row.fallback_text,
                   row.body)


async def respond(session: AsyncSession, conversation: Conversation, message: dict[str, Any], *, started: bool,
                  channel_type: str, known: dict[uuid.UUID, Agent | None],
                  new_messages: list[dict[str, Any]]) -> FlowRequest | None:
    """The agent's turn after an inbound message (`message`: its row, see `conversations.receive`): queue
    its replies (rows appended to `new_messages`); an N8N agent's answer is asked for after the commit
    (returned). `known`: agents read before in this transaction (a batch's), by id."""
    if conversation.agent_id is None:
        return None
    if conversation.agent_id not in known:
        known[conversation.agent_id] = await AgentRepository(session).get(conversation.agent_id)
    agent = known[conversation.agent_id]
    if agent is None or not agent.enabled:
        return None
    decision = decide(agent, conversation, message["text"], started=started, now=utcnow())
    if decision.hand_off:
        conversation.handed_off, conversation.handoff_reason = True, "CONTACT_ASKED"
    if decision.out_of_hours:
        conversation.out_of_hours_sent = True
    for text in decision.replies:
        await conversations.queue_outbound(session, conversation, text, sender="AGENT", new_messages=new_messages)
    if decision.ask_flow and agent.n8n_webhook_url:
        return FlowRequest(uuid.uuid4(), agent.id, conversation.id, agent.n8n_webhook_url, agent.n8n_timeout_seconds,
                           agent.fallback_text, {
                               "conversationId": str(conversation.id), "channelId": str(conversation.channel_id),
                               "channelType": channel_type, "agentId": str(agent.id), "contact": conversation.contact,
                               "contactName": conversation.contact_name, "messageId": str(message["id"]),
                               "type": message["type"], "text": message["text"], "started": started})
    return None


def _flow_reply(response: Reply) -> str | None:
    """The flow's answer: JSON `reply`/`text`/`message`/`output` (or the first item of a list), or plain text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body: Any = response.json()
        except ValueError:
            return None
        if isinstance(body, list) and body:
            body = body[0].get("json", body[0]) if isinstance(body[0], dict) else body[0]
        if isinstance(body, dict):
            for key in ("reply", "text", "message", "output"):
                if isinstance(body.get(key), str) and body[key].strip():
                    return body[key].strip()[:4096]
        return body.strip()[:4096] if isinstance(body, str) and body.strip() else None
    text = response.text.strip()
    return text[:4096] or None


async def ask_flow(request: FlowRequest) -> str | None:
    """The flow's reply, or the agent's fallback when it fails, answers nothing usable or is too slow."""
    try:
        response = await fetch("POST", request.url, json=request.body, timeout=request.timeout)
        if response.status_code < 300:
            reply = _flow_reply(response)
            reply = reply.replace("\x00", "").strip() if reply else None  # PostgreSQL text cannot hold NUL
            if reply:
                return reply
        logger.warning("agent %s: n8n flow answered %s without a reply; fallback", request.agent_id,
                       response.status_code)
    except CallFailed as exc:
        logger.warning("agent %s: n8n flow failed (%s); fallback", request.agent_id, type(exc).__name__)
    return request.fallback


async def deliver_flow_reply(session: AsyncSession, request: FlowRequest, reply: str | None) -> Message | None:
    """Queue the flow's reply and drop the pending reply, unless another worker did so first (it asked again
    after this one's lease passed), the conversation ended or a person took over meanwhile."""
    if not await PendingReplyRepository(session).take(request.id) or not reply:
        return None
    conversation = await conversations.require(session, request.conversation_id, for_update=True)
    if conversation.status != "OPEN" or conversation.handed_off \
            or await ChannelRepository(session).get(conversation.channel_id) is None:  # deleted meanwhile
        return None
    return await conversations.queue_outbound(session, conversation, reply, sender="AGENT")
