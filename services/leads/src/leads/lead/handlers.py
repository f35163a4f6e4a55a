"""Kafka entry point (thin, STYLE habit 9): `conversation.started` → an own-operations lead."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from common.events.catalogue import ConversationData, topic_for_source
from common.messaging import ConsumedEvent
from leads.lead import service

logger = logging.getLogger("leads.handlers")

CONVERSATIONS_TOPIC = topic_for_source("conversations")
CONSUMER_NAME = "conversation-leads"


async def on_conversation_events(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    """Batch handler for the EventConsumer: the inbox already dropped events seen before; the contact's
    unique key drops a second conversation of the same contact. Runs in the consumer's transaction."""
    for event in events:
        if event.envelope.event != "conversation.started":
            continue
        try:
            data = ConversationData.model_validate(event.envelope.data)
        except ValidationError as exc:
            logger.warning("conversation.started %s has an invalid payload; skipped: %s", event.id, exc)
            continue
        if not data.contact.strip():
            logger.warning("conversation.started %s has no contact; skipped", event.id)
            continue
        await service.create_from_conversation(session, data)
