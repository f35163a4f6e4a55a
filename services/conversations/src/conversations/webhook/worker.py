"""Processes stored webhook items after the 200 (STYLE habit 7): messages become conversations, messages
and agent replies; statuses move delivery status; connection and QR updates change the channel.

One replica at a time (advisory lock per batch) and in arrival order, so a conversation's events keep the
order its messages came in. Woken right after a webhook commits; polls as a fallback. The first reply of a
conversation a batch started goes to this process's outbound worker as the batch commits (leased with it):
nothing can be queued before it in its conversation, so it need not wait for the outbound worker's claim."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from common.messaging.wakeup import wake_after_commit
from conversations import metrics
from conversations.agent import service as agents
from conversations.agent.repository import AgentRepository, PendingReplyRepository
from conversations.channel.schemas import ChannelStatus
from conversations.channel.service import EVOLUTION_STATES, set_status
from conversations.conversation import service as conversations
from conversations.conversation.repository import ConversationRepository, MessageRepository
from conversations.events import outbox
from conversations.models import Agent, Channel, Conversation, InboundEvent
from conversations.outbound.worker import OutboundWorker, SendJob
from conversations.webhook.repository import InboundEventRepository
from conversations.webhook.service import WAKE_CHANNEL
from conversations.worker_loop import WokenWorker

logger = logging.getLogger("conversations.webhook.worker")
BATCH = 200
YIELD_SECONDS = 0.002
MAX_ATTEMPTS = 6  # a status for a message we do not know yet is tried again a few times, then dropped


@dataclass
class BatchState:
    """Looked up once per batch: each channel's enabled agent, each contact's open conversation."""

    # Held here: the session's identity map keeps rows only weakly, so a channel nobody held was read again
    # from the database for every item (measured: one SELECT of the channel per message).
    channels: dict[uuid.UUID, Channel | None] = field(default_factory=dict)
    agent_ids: dict[uuid.UUID, uuid.UUID | None] = field(default_factory=dict)
    agents: dict[uuid.UUID, Agent | None] = field(default_factory=dict)
    # (channel, contact) → the open conversation, or None when there is none (looked up for the whole batch).
    conversations: dict[tuple[uuid.UUID, str], Conversation | None] = field(default_factory=dict)
    # Events of the batch, written in one INSERT at its end (None: each written at once, e.g. in savepoints).
    events: list[tuple[str, Any, Any]] | None = None
    # New messages (inbound and the agent's replies), inserted with one Core statement after the conversations.
    messages: list[dict[str, Any]] = field(default_factory=list)
    channel_types: dict[uuid.UUID, str] = field(default_factory=dict)  # for the metrics' provider label
    handed: set[uuid.UUID] = field(default_factory=set)  # replies leased here, for this process's outbound worker

    async def channel(self, session: AsyncSession, channel_id: uuid.UUID) -> Channel | None:
        if channel_id not in self.channels:
            # FOR KEY SHARE until the batch commits: a channel's delete (FOR UPDATE) waits for it, then fails the
            # replies it queued; or it went first, and the batch reads it deleted. Other writers do not wait.
            self.channels[channel_id] = await session.get(Channel, channel_id, with_for_update={"key_share": True})
        return self.channels[channel_id]


async def process(session: AsyncSession, row: InboundEvent, state: BatchState) -> agents.FlowRequest | None | bool:
    """One stored item. Returns a flow to ask (N8N agent), None when done, False to try again later."""
    agent_ids = state.agent_ids
    channel = await state.channel(session, row.channel_id)
    if channel is None:
        return None
    state.channel_types[channel.id] = channel.type
    data: dict[str, Any] = row.payload
    if row.kind == "message":
        if channel.id not in agent_ids:
            agent = await AgentRepository(session).enabled_for(channel.id)
            agent_ids[channel.id] = agent.id if agent else None
            if agent is not None:
                state.agents[agent.id] = agent
        result = await conversations.receive(session, channel, data, agent_ids[channel.id], state.conversations,
                                             state.messages, state.events)
        if result is None:
            return None
        conversation, message, started = result
        if channel.deleted_at is not None:
            return None  # stored before the channel was deleted: recorded, but nothing is sent on it any more
        return await agents.respond(session, conversation, message, started=started, channel_type=channel.type,
                                    known=state.agents, new_messages=state.messages)
    if row.kind.startswith("status:"):
        found = await conversations.apply_status(session, channel.id, data["externalId"], data["status"],
                                                 data.get("reason"))
        return None if found else False
    if row.kind == "connection":
        status = EVOLUTION_STATES.get(str(data.get("state")), ChannelStatus.DISCONNECTED)
        if channel.status != ChannelStatus.ERROR or status == ChannelStatus.CONNECTED:
            await set_status(session, channel, status, f"connection.update: {data.get('state')}")
        return None
    if row.kind == "qrcode" and channel.status != ChannelStatus.CONNECTED:
        channel.qr_data_url = data.get("dataUrl")
    return None


async def _write(session: AsyncSession, state: BatchState) -> None:
    """The conversations (ORM: new ones inserted, changed ones updated), then the new messages (one Core
    INSERT, in order, after the conversations they belong to)."""
    await session.flush()
    if any(row["direction"] == "OUTBOUND" and row["id"] not in state.handed for row in state.messages):
        wake_after_commit(session, conversations.OUTBOUND_WAKE)  # the outbound worker claims them
    await MessageRepository(session).insert_many(state.messages)
    state.messages.clear()


class InboundWorker(WokenWorker):
    channel = WAKE_CHANNEL

    def __init__(self, database: Database, poll_seconds: float, outbound: OutboundWorker | None = None) -> None:
        super().__init__(poll_seconds)
        self.database = database
        self.outbound = outbound  # this process's, to hand new conversations' first replies to
        self._flows: set[asyncio.Task[None]] = set()

    def stopped(self) -> None:
        for task in list(self._flows):
            task.cancel()  # their pending replies stay: asked again once the lease passes

    async def step(self) -> bool:
        """One batch in one transaction (True when it was full). Should an item fail, the batch is done again
        with each item in a savepoint, so one bad item does not stop the rest (savepoints cost two round trips
        per item: only then)."""
        try:
            return await self._batch(isolate=False) == BATCH
        except Exception:
            logger.warning("an inbound batch failed; doing it again item by item", exc_info=True)
            return await self._batch(isolate=True) == BATCH

    async def _batch(self, *, isolate: bool) -> int:
        flows: list[agents.FlowRequest] = []
        state = BatchState()
        handed: list[SendJob] = []
        queued = self.outbound.queued if self.outbound is not None else 0  # see `OutboundWorker.hand_over`
        async with self.database.sessionmaker() as session, session.begin():
            repo = InboundEventRepository(session)
            if not await repo.lock_worker():
                return 0
            rows = await repo.pending(BATCH)
            if not isolate:
                # One read and one write for the whole batch instead of one per message: every contact's open
                # conversation (locked), and every event (written in order, after the batch's rows).
                state.events = []
                keys = list(dict.fromkeys((r.channel_id, r.payload["contact"]) for r in rows if r.kind == "message"))
                state.conversations = dict.fromkeys(keys)
                for found in await ConversationRepository(session).open_for_many(keys):
                    state.conversations[(found.channel_id, found.contact)] = found
            known = {c.id for c in state.conversations.values() if c is not None}  # open before this batch
            done = []
            counted: list[tuple[str, str, dict[str, Any]]] = []
            now = utcnow()
            yielded = time.perf_counter()
            for row in rows:
                # Processing is CPU between awaits that do not reach the network (rows in the session): every
                # YIELD_SECONDS, let the webhooks waiting on this event loop be acknowledged. Not after each
                # item: under load each yield waits behind every ready request, which would starve the batch.
                if time.perf_counter() - yielded > YIELD_SECONDS:
                    await asyncio.sleep(0)
                    yielded = time.perf_counter()
                if not isolate:
                    # New messages and conversation updates are written in one flush at the end of the batch
                    # (statements of one kind go together), not before each following statement.
                    with session.no_autoflush:
                        outcome = await process(session, row, state)
                else:
                    try:
                        async with session.begin_nested():
                            outcome = await process(session, row, state)
                            await _write(session, state)
                    except Exception as exc:
                        # What the savepoint wrote is gone: forget it (a new conversation was rolled back too).
                        state.messages.clear()
                        state.conversations = {}
                        if isinstance(exc, IntegrityError):
                            outcome = None  # recorded before (the provider sent it again after the row's retention)
                        else:
                            logger.exception("inbound item %s (%s) failed", row.id, row.kind)
                            outcome = False
                            row.error = f"{type(exc).__name__}: {exc}"[:2000]
                if outcome is False:
                    row.attempts += 1
                    if row.attempts >= MAX_ATTEMPTS:
                        row.processed_at = now
                        row.error = row.error or "no message with this id"
                    else:
                        row.process_after = now + timedelta(seconds=2 * row.attempts)
                    continue
                if isinstance(outcome, agents.FlowRequest):
                    flows.append(outcome)
                done.append(row.id)
                if row.channel_id in state.channel_types:
                    counted.append((state.channel_types[row.channel_id], row.kind, row.payload))
            if not isolate:
                handed = await self._lease_first_replies(session, state, known)
            await _write(session, state)
            await PendingReplyRepository(session).add_many([flow.pending_row() for flow in flows])
            if state.events:
                await outbox.publish_many(session, state.events)
            await repo.mark(done, now)
        for channel_type, kind, payload in counted:  # once committed: a batch done again is not counted twice
            metrics.inbound(channel_type, kind, payload)
        if self.outbound is not None:
            self.outbound.hand_over(handed, seen=queued)
        self._ask_all(flows)
        return len(rows)

    async def _lease_first_replies(self, session: AsyncSession, state: BatchState,
                                   known: set[uuid.UUID]) -> list[SendJob]:
        """The first reply of each conversation this batch started (not `known` before it), leased in the rows
        the batch writes, as the outbound worker's claim would (its other messages are claimed as usual,
        after it); what sending them needs, for once the batch commits."""
        outbound = self.outbound
        if outbound is None:
            return []
        started = {c.id: c for c in state.conversations.values() if c is not None and c.id not in known}
        jobs: list[SendJob] = []
        tokens: dict[uuid.UUID, str] = {}
        lease_until = utcnow() + timedelta(seconds=outbound.lease_seconds)
        for row in state.messages:
            if row["direction"] != "OUTBOUND" or len(jobs) >= outbound.room:
                continue
            conversation = started.pop(row["conversation_id"], None)
            channel = await state.channel(session, conversation.channel_id) if conversation is not None else None
            if conversation is None or channel is None or channel.status == ChannelStatus.ERROR:
                continue
            row["next_attempt_at"], row["attempts"] = lease_until, 1
            state.handed.add(row["id"])
            jobs.append(outbound.job(channel, conversation, row, tokens))
        return jobs

    async def resume_replies(self) -> int:
        """n8n replies left pending by a worker that went away (a crash, a restart): asked again."""
        async with self.database.sessionmaker() as session, session.begin():
            flows = [agents.FlowRequest.of(row) for row in await PendingReplyRepository(session).claim_expired(BATCH)]
        self._ask_all(flows)
        return len(flows)

    def _ask_all(self, flows: list[agents.FlowRequest]) -> None:
        for flow in flows:
            task = asyncio.create_task(self._ask(flow))
            self._flows.add(task)
            task.add_done_callback(self._flows.discard)

    async def _ask(self, flow: agents.FlowRequest) -> None:
        reply = await agents.ask_flow(flow)
        try:
            async with self.database.sessionmaker() as session, session.begin():
                await agents.deliver_flow_reply(session, flow, reply)
        except Exception:
            logger.exception("agent %s: the flow's reply was not queued", flow.agent_id)
