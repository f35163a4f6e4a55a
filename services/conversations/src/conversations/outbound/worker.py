"""Hands queued messages to the provider, oldest first per conversation.

Provider down, throttled (429, 5xx, Meta's throttling codes 4, 80007, 130429, 131048, 131056): the message
stays QUEUED and is tried again with a growing delay, until WHATSAPP_RETRY_GIVE_UP_HOURS after it was queued:
then FAILED, so it does not hold its conversation's later messages forever. Refused for good (e.g. Cloud
131047, outside the 24 h window): FAILED with the reason, not retried. Credentials refused (Cloud 190,
401/403): the channel goes to ERROR (published) and its messages wait until new credentials are saved. A
message of a deleted channel is not sent: FAILED ("channel deleted")."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from conversations import metrics
from conversations.channel.repository import ChannelRepository
from conversations.channel.schemas import ChannelStatus, ChannelType
from conversations.channel.service import Credentials, set_status
from conversations.config import Settings
from conversations.conversation.repository import CHANNEL_DELETED, ConversationRepository, MessageRepository
from conversations.conversation.schemas import MessageStatus
from conversations.conversation.service import OUTBOUND_WAKE, message_data
from conversations.events import outbox
from conversations.models import Channel, Conversation, Message
from conversations.providers import cloud, evolution
from conversations.providers.errors import CredentialsRejected, ProviderError, ProviderUnavailable
from conversations.worker_loop import WokenWorker

logger = logging.getLogger("conversations.outbound")
BATCH = 50
# Their messages wait (for new credentials); not a deleted channel's: claimed, they end FAILED ("channel deleted").
BLOCKED = select(Channel.id).where(Channel.status == ChannelStatus.ERROR.value, Channel.deleted_at.is_(None))  # type: ignore[union-attr]
OUTCOMES = {"sent": "sent", "failed": "failed", "credentials": "credentials_rejected", "later": "retry"}


def evolution_number(contact: str) -> str:
    return contact  # a number, or the whole `...@lid` id, which Evolution accepts as the destination


@dataclass(frozen=True)
class SendJob:
    """What one provider call needs, read in the claiming transaction (the call itself holds no connection)."""

    message_id: uuid.UUID
    channel_type: str
    text: str
    contact: str
    phone_number_id: str | None
    api_url: str | None
    instance_name: str | None
    token: str  # Cloud API access token or Evolution API key
    event: dict[str, Any] = field(default_factory=dict, hash=False)  # conversation.message.sent, once sent


@dataclass
class Outcome:
    job: SendJob
    kind: str  # sent | failed | credentials | later
    external_id: str | None = None
    error: Exception | None = None


class OutboundWorker(WokenWorker):
    channel = OUTBOUND_WAKE

    # Provider calls at a time: a claim's batch in one wave (16 made replies queue behind slow calls at 200/s).
    def __init__(self, database: Database, settings: Settings, *, concurrency: int = BATCH) -> None:
        super().__init__(settings.conversations_worker_poll_seconds)
        self.database = database
        self.settings = settings
        # Messages claimed (or handed over by the inbound worker) and not yet recorded: one wave of calls. An inbound
        # batch may hand over up to as many again while a claim runs, so the lease (no other worker sends a message
        # meanwhile) covers two waves even if every call takes its timeout three times.
        self.max_in_flight = concurrency
        self.lease_seconds = 2 * settings.whatsapp_timeout_seconds * 3 + 10
        self._calls = asyncio.Semaphore(concurrency)
        self._in_flight = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        # How many times messages may have become due behind deliveries in flight (see `hand_over`): wake-ups
        # from commits that queued messages, and claims left for lack of room.
        self.queued = 0

    def wake(self) -> None:
        """Woken by a commit that queued messages (here or in another process). A claim does not take a message
        queued behind one in flight, so the deliveries in flight now claim again when they end."""
        self.queued += 1
        super().wake()

    def stopped(self) -> None:
        for task in list(self._deliveries):
            task.cancel()  # their messages stay QUEUED: sent once the lease passes

    @property
    def room(self) -> int:
        """How many more messages may be handed to this worker now."""
        return self.max_in_flight - self._in_flight

    async def step(self) -> bool:
        """Claim due messages (one transaction) and hand them to the provider in the background (calls and
        the recording of their outcomes): the next claim does not wait for them. True when more may be due."""
        limit = min(BATCH, self.room)
        if limit <= 0:
            self.queued += 1  # the end of a delivery wakes this loop
            return False
        jobs: list[SendJob] = []
        async with self.database.sessionmaker() as session, session.begin():
            # A claim lost with a crash of the database only leaves the message due again: sent again, as after
            # a crash of this process between the call and its record. Not worth waiting for the WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            claimed = await MessageRepository(session).claim_due(lease_seconds=self.lease_seconds, limit=limit,
                                                                 blocked_channels=BLOCKED)
            # Their conversations and channels in one read each, held here (the session's identity map holds rows
            # only weakly: a `session.get` of a row nobody holds reads it again, one SELECT per message).
            conversations = {c.id: c for c in await ConversationRepository(session).all(select(Conversation).where(
                Conversation.id.in_({m.conversation_id for m in claimed})))} if claimed else {}  # type: ignore[attr-defined]
            channels = {c.id: c for c in await ChannelRepository(session).all(select(Channel).where(
                Channel.id.in_({m.channel_id for m in claimed})))} if claimed else {}  # type: ignore[attr-defined]
            tokens: dict[uuid.UUID, str] = {}
            now = utcnow()
            for message in claimed:
                if channels[message.channel_id].deleted_at is not None:  # queued (by an agent) as it was deleted
                    message.updated_at = now
                    _fail(message, CHANNEL_DELETED)
                    continue
                jobs.append(self.job(channels[message.channel_id], conversations[message.conversation_id], message,
                                     tokens))
        self.hand_over(jobs)
        return len(claimed) == limit

    def job(self, channel: Channel, conversation: Conversation, message: Message | dict[str, Any],
            tokens: dict[uuid.UUID, str]) -> SendJob:
        """What calling the provider for `message` (the ORM row, or a row a batch writes) needs; `tokens`: the
        channels' decrypted tokens, decrypted once per channel and batch, not per message."""
        if channel.id not in tokens:
            creds = Credentials(self.settings, channel)
            tokens[channel.id] = creds.access_token if channel.type == ChannelType.CLOUD_API else creds.api_key
        data = message_data(conversation, channel.type, message)
        assert data["text"] is not None
        return SendJob(data["messageId"], channel.type, data["text"], conversation.contact, channel.phone_number_id,
                       channel.api_url, channel.instance_name, tokens[channel.id], data)

    def hand_over(self, jobs: list[SendJob], *, seen: int | None = None) -> None:
        """Messages leased and committed (claimed here, or by the inbound worker with the batch that queued
        them): called and recorded in the background. Once recorded, the next messages of their conversations
        may be due: this loop claims again, unless `seen` (`queued` when the batch that queued and leased them
        began: the first replies of conversations it started) says nothing was queued since (at 200 new
        contacts/s, a claim after every batch's wave of first replies found nothing, ~5 % of the worker's CPU)."""
        if not jobs:
            return
        self._in_flight += len(jobs)
        task = asyncio.create_task(self._deliver(jobs, seen))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, jobs: list[SendJob], seen: int | None) -> None:
        """Call the provider for each (no connection held), then record every outcome (one transaction)."""
        claim = True
        try:
            outcomes = await asyncio.gather(*(self.send(job) for job in jobs))
            async with self.database.sessionmaker() as session, session.begin():
                await self._record_sent([o for o in outcomes if o.kind == "sent"], session)
                for outcome in outcomes:
                    if outcome.kind != "sent":
                        await self._record(session, outcome)
            for outcome in outcomes:
                metrics.OUTBOUND.labels(metrics.provider(outcome.job.channel_type), OUTCOMES[outcome.kind]).inc()
            claim = seen is None or any(o.kind != "sent" for o in outcomes)
        except Exception:  # the messages stay leased: tried again once the lease passes
            logger.exception("outbound: %d messages not recorded", len(jobs))
        finally:
            self._in_flight -= len(jobs)
            if claim or seen != self.queued:  # the next message of their conversations may be due now
                super().wake()

    async def send(self, job: SendJob) -> Outcome:
        timeout = self.settings.whatsapp_timeout_seconds
        async with self._calls:
            try:
                if job.channel_type == ChannelType.CLOUD_API:
                    assert job.phone_number_id
                    external_id = await cloud.send_text(self.settings.whatsapp_graph_api_base, job.phone_number_id,
                                                        job.token, job.contact, job.text, timeout=timeout)
                else:
                    assert job.api_url and job.instance_name
                    external_id = await evolution.send_text(job.api_url, job.token, job.instance_name,
                                                            evolution_number(job.contact), job.text,
                                                            timeout=timeout)
                return Outcome(job, "sent", external_id)
            except CredentialsRejected as exc:
                return Outcome(job, "credentials", error=exc)
            except ProviderError as exc:
                return Outcome(job, "failed", error=exc)
            except ProviderUnavailable as exc:
                return Outcome(job, "later", error=exc)

    async def _record_sent(self, sent: list[Outcome], session: AsyncSession) -> None:
        """The usual case, for the whole batch: one UPDATE and one INSERT of the events, no reads."""
        changed = await MessageRepository(session).mark_many_sent(
            [(o.job.message_id, o.external_id or None) for o in sent], utcnow())
        events = []
        for outcome in sent:
            if outcome.job.message_id in changed:  # not if it left QUEUED meanwhile
                data = outcome.job.event | {"externalId": outcome.external_id or None,
                                            "messageStatus": MessageStatus.SENT.value}
                events.append(("conversation.message.sent", data, data["conversationId"]))
        await outbox.publish_many(session, events)

    async def _record(self, session: AsyncSession, outcome: Outcome) -> None:
        # The lease keeps other workers off this message; a status update racing in only moves it forward.
        message = await MessageRepository(session).get(outcome.job.message_id)
        if message is None or message.status != MessageStatus.QUEUED:
            return
        channel = await session.get(Channel, message.channel_id)
        conversation = await session.get(Conversation, message.conversation_id)
        assert channel is not None and conversation is not None
        now, error = utcnow(), outcome.error
        message.updated_at = now
        if outcome.kind == "failed":
            _fail(message, str(error))
        elif outcome.kind == "credentials":
            message.next_attempt_at = now  # waits for the channel to leave ERROR
            message.failure_reason = str(error)[:500]
            await session.refresh(channel, with_for_update=True)
            await set_status(session, channel, ChannelStatus.ERROR, f"credentials rejected: {error}"[:500])
        elif self._given_up(message):
            _fail(message, f"gave up after {message.attempts} tries: {error}")
        else:
            wait = min(2.0 ** min(message.attempts, 12), self.settings.outbound_retry_max_seconds)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                wait = max(wait, min(retry_after, self.settings.outbound_retry_max_seconds))
            message.next_attempt_at = now + timedelta(seconds=wait)
            message.failure_reason = f"provider unavailable, retrying: {error}"[:500]
            logger.info("message %s: provider unavailable (%s); next try in %.0f s", message.id, error, wait)

    def _given_up(self, message: Message) -> bool:
        """Queued too long ago to try again. Throttling (429, 130429, 131056 ...) counts too: its Retry-After is
        still waited while the message is young, but a reply throttled for hours is as stale as one the provider
        keeps failing, and a provider that throttles forever must not hold the conversation forever either."""
        return utcnow() - message.created_at >= timedelta(hours=self.settings.whatsapp_retry_give_up_hours)


def _fail(message: Message, reason: str) -> None:
    """FAILED for good, not tried again: the next message of its conversation goes."""
    message.status, message.failure_reason = MessageStatus.FAILED.value, reason[:500]
    logger.info("message %s failed: %s", message.id, reason)
