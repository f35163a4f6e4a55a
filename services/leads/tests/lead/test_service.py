"""The consumer's plain function, called directly in a transaction that is rolled back."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.events import build_event
from common.messaging import ConsumedEvent
from leads.lead.handlers import on_conversation_events
from leads.models import Lead, StageChange, outbox


def consumed(event: str, data: dict) -> ConsumedEvent:
    envelope = build_event(event, data) if event.startswith("conversation.") else None
    assert envelope is not None
    return ConsumedEvent(envelope, "platform.conversations.events", 0, 0, {})


def conversation(contact: str, **extra) -> dict:
    return {"conversationId": uuid.uuid4(), "channelId": uuid.uuid4(), "channelType": "EVOLUTION",
            "contact": contact} | extra


async def test_one_lead_per_contact_and_other_events_are_ignored(db):
    contact = f"5491{uuid.uuid4().int % 10**9:09d}@s.whatsapp.net"
    batch = [
        consumed("conversation.started", conversation(contact)),
        consumed("conversation.started", conversation(contact.upper(), contactName="Again")),
        consumed("conversation.ended", conversation(f"other-{contact}")),
        consumed("conversation.started", conversation("   ")),
    ]
    async with AsyncSession(db) as session:
        await on_conversation_events(session, batch)
        leads = (await session.execute(select(Lead).where(Lead.contact_key.contains(contact.split("@")[0]))
                                       )).scalars().all()
        assert len(leads) == 1
        lead = leads[0]
        assert (lead.name, lead.phone, lead.source, lead.own_operation, lead.stage) == (
            contact, None, "whatsapp", True, "NEW")  # not a phone number: kept in the name only
        history = (await session.execute(select(StageChange).where(StageChange.lead_id == lead.id))).scalars().all()
        assert [(h.from_stage, h.to_stage) for h in history] == [(None, "NEW")]
        events = (await session.execute(select(outbox.c.event_type, func.count()).where(
            outbox.c.aggregate_id == str(lead.id)).group_by(outbox.c.event_type))).all()
        assert events == [("lead.created", 1)]
        await session.rollback()
