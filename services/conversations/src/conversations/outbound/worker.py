"""Hands queued messages to the provider, oldest first per conversation.

Provider down, throttled (429, 5xx, Cloud 130429): the message stays QUEUED and is tried again with a
growing delay (never lost). Refused for good (e.g. Cloud 131047, outside the 24 h window): FAILED with the
reason, not retried. Credentials refused (Cloud 190, 401/403): the channel goes to ERROR (published) and
its messages wait until new credentials are saved."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy import select

from common.db import Database, utcnow
from common.messaging.wakeup import register_leader, unregister_leader
from conversations.channel.schemas import ChannelStatus, ChannelType
from conversations.channel.service import Credentials, set_status
from conversations.config import Settings
from conversations.conversation.repository import MessageRepository
from conversations.conversation.schemas import MessageStatus
from conversations.conversation.service import OUTBOUND_WAKE, message_data
from conversations.events import outbox
from conversations.models import Channel, Conversation, Message
from conversations.providers import cloud, evolution
from conversations.providers.errors import CredentialsRejected, ProviderError, ProviderUnavailable

logger = logging.getLogger("conversations.outbound")
BATCH = 50


def evolution_number(contact: str) -> str:
    return contact  # a number, or the whole `...@lid` id, which Evolution accepts as the destination


class OutboundWorker:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        register_leader(OUTBOUND_WAKE, self.wake)
        try:
            while True:
                self._wake.clear()
                while await self.step():
                    pass
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.conversations_worker_poll_seconds)
                except TimeoutError:
                    pass
        finally:
            unregister_leader(OUTBOUND_WAKE, self.wake)

    async def step(self) -> int:
        lease = self.settings.whatsapp_timeout_seconds * 3 + 10
        async with self.database.sessionmaker() as session, session.begin():
            blocked = select(Channel.id).where(Channel.status == ChannelStatus.ERROR.value)
            claimed = await MessageRepository(session).claim_due(lease_seconds=lease, limit=BATCH,
                                                                 blocked_channels=blocked)
            ids = [m.id for m in claimed]
        await asyncio.gather(*(self.send(message_id) for message_id in ids))
        return len(ids)

    async def send(self, message_id: uuid.UUID) -> None:
        async with self.database.sessionmaker() as session:
            message = await session.get(Message, message_id)
            assert message is not None and message.text is not None
            channel = await session.get(Channel, message.channel_id)
            conversation = await session.get(Conversation, message.conversation_id)
            assert channel is not None and conversation is not None
            creds = Credentials(self.settings, channel)
        timeout = self.settings.whatsapp_timeout_seconds
        outcome: str
        error: Exception | None = None
        external_id = None
        try:
            if channel.type == ChannelType.CLOUD_API:
                assert channel.phone_number_id
                external_id = await cloud.send_text(self.settings.whatsapp_graph_api_base, channel.phone_number_id,
                                                    creds.access_token, conversation.contact, message.text,
                                                    timeout=timeout)
            else:
                assert channel.api_url and channel.instance_name
                external_id = await evolution.send_text(channel.api_url, creds.api_key, channel.instance_name,
                                                        evolution_number(conversation.contact), message.text,
                                                        timeout=timeout)
            outcome = "sent"
        except CredentialsRejected as exc:
            outcome, error = "credentials", exc
        except ProviderError as exc:
            outcome, error = "failed", exc
        except ProviderUnavailable as exc:
            outcome, error = "later", exc
        await self._record(message_id, outcome, external_id, error)

    async def _record(self, message_id: uuid.UUID, outcome: str, external_id: str | None,
                      error: Exception | None) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            message = await MessageRepository(session).get(message_id, for_update=True)
            if message is None or message.status != MessageStatus.QUEUED:
                return
            channel = await session.get(Channel, message.channel_id, with_for_update=True)
            conversation = await session.get(Conversation, message.conversation_id)
            assert channel is not None and conversation is not None
            now = utcnow()
            message.updated_at = now
            if outcome == "sent":
                message.status, message.sent_at, message.external_id = MessageStatus.SENT.value, now, external_id or None
                message.failure_reason = None
                await outbox.publish(session, "conversation.message.sent",
                                     message_data(conversation, channel.type, message), key=conversation.id)
            elif outcome == "failed":
                message.status, message.failure_reason = MessageStatus.FAILED.value, str(error)[:500]
                logger.info("message %s failed: %s", message.id, error)
            elif outcome == "credentials":
                message.next_attempt_at = now  # waits for the channel to leave ERROR
                message.failure_reason = str(error)[:500]
                await set_status(session, channel, ChannelStatus.ERROR, f"credentials rejected: {error}"[:500])
            else:
                wait = min(2.0 ** min(message.attempts, 12), self.settings.outbound_retry_max_seconds)
                retry_after = getattr(error, "retry_after", None)
                if retry_after:
                    wait = max(wait, min(retry_after, self.settings.outbound_retry_max_seconds))
                message.next_attempt_at = now + timedelta(seconds=wait)
                message.failure_reason = f"provider unavailable, retrying: {error}"[:500]
                logger.info("message %s: provider unavailable (%s); next try in %.0f s", message.id, error, wait)
