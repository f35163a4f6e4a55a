"""Lead rules. Every change adds exactly one `lead.*` event to the outbox (key = lead id).

- create → `lead.created`; PUT → `lead.updated` with `changes` + `previous` (nothing changed: no event);
- `POST /{id}/stage` → `lead.stage.changed` (from, to): never out of a final stage, never into the won
  stage (that is what convert does), never to the stage the lead is already in;
- convert → `lead.converted`: moves the lead to the won stage and records `convertedAt` (and the
  tenant it became); a converted lead or one in a lost/final stage cannot be converted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from decimal import Decimal
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession

from common.api import KeysetPage, PageParams
from common.auth import Principal
from common.db import utcnow
from common.errors import Conflict, NotFound, found
from common.events.catalogue import ConversationData
from leads.events import outbox
from leads.lead.repository import LeadRepository, StageMissing
from leads.lead.schemas import (
    ConvertRequest,
    LeadCreate,
    LeadDetail,
    LeadFilters,
    LeadRead,
    LeadSort,
    LeadUpdate,
    StageMove,
)
from leads.models import Lead, StageChange
from leads.stage import service as stages

logger = logging.getLogger("leads.lead")

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{2,49}$")


def _event_data(lead: Lead) -> dict[str, Any]:
    """`LeadData` plus phone, currency and assigneeId (payloads allow extra fields)."""
    return {"leadId": lead.id, "name": lead.name, "email": lead.email, "company": lead.company,
            "source": lead.source, "stage": lead.stage, "value": lead.value, "ownOperation": lead.own_operation,
            "phone": lead.phone, "currency": lead.currency, "assigneeId": lead.assignee_id}


async def _get(session: AsyncSession, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead:
    lead = await LeadRepository(session).get(lead_id, for_update=for_update)
    return found(lead, f"Lead {lead_id} not found")


async def _record_stage(session: AsyncSession, lead: Lead, from_stage: str | None, by: uuid.UUID | None,
                        note: str | None) -> None:
    try:
        await LeadRepository(session).add_stage_change(
            StageChange(id=uuid.uuid4(), lead_id=lead.id, from_stage=from_stage, to_stage=lead.stage,
                        changed_by=by, note=note))
    except StageMissing:
        raise Conflict(f"Stage {lead.stage} was removed meanwhile") from None


async def create(session: AsyncSession, body: LeadCreate, caller: Principal) -> LeadRead:
    if body.stage is not None:
        stage = await stages.require(session, body.stage)
        if stage.is_final:
            raise Conflict(f"Stage {stage.code} is final; leads are created in an open stage")
    else:
        stage = await stages.initial(session)
    lead = Lead(id=uuid.uuid4(), name=body.name, email=body.email, phone=body.phone, company=body.company,
                source=body.source, value=body.value, currency=body.currency, stage=stage.code,
                assignee_id=body.assignee_id, notes=body.notes, own_operation=body.own_operation,
                created_by=caller.id)
    try:
        await LeadRepository(session).add(lead)
    except StageMissing:
        raise Conflict(f"Stage {stage.code} was removed meanwhile") from None
    await _record_stage(session, lead, None, caller.id, None)
    await outbox.publish(session, "lead.created", _event_data(lead), key=lead.id)
    return LeadRead.model_validate(lead)


async def get(session: AsyncSession, lead_id: uuid.UUID) -> LeadDetail:
    lead = await LeadRepository(session).get_with_history(lead_id)
    if lead is None:
        raise NotFound(f"Lead {lead_id} not found")
    return LeadDetail.model_validate(lead)


async def list_leads(session: AsyncSession, filters: LeadFilters, *, sort: LeadSort,
                     page: PageParams) -> KeysetPage[LeadRead]:
    if filters.stage is not None:
        await stages.require(session, filters.stage)
    items, total = await LeadRepository(session).list(filters, sort=sort, limit=page.limit, offset=page.offset,
                                                      cursor=page.cursor)
    return KeysetPage[LeadRead].of(items, total, page)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


async def update(session: AsyncSession, lead_id: uuid.UUID, body: LeadUpdate) -> LeadRead:
    lead = await _get(session, lead_id, for_update=True)
    previous: dict[str, Any] = {}  # by API name, as the event carries it
    for field, value in body.model_dump(exclude_unset=True).items():
        current = getattr(lead, field)
        if value != current:
            previous[to_camel(field)] = _jsonable(current)
            setattr(lead, field, value)
    if not previous:
        return LeadRead.model_validate(lead)  # nothing changed: no event
    lead.updated_at = utcnow()
    await LeadRepository(session).flush()
    data = _event_data(lead) | {"changes": sorted(previous), "previous": previous}
    await outbox.publish(session, "lead.updated", data, key=lead.id)
    return LeadRead.model_validate(lead)


async def move(session: AsyncSession, lead_id: uuid.UUID, body: StageMove, caller: Principal) -> LeadRead:
    lead = await _get(session, lead_id, for_update=True)
    target = await stages.require(session, body.stage)
    current = await stages.require(session, lead.stage)
    if target.code == current.code:
        raise Conflict(f"The lead is already in stage {current.code}")
    if current.is_final:
        raise Conflict(f"The lead is in the final stage {current.code}; it cannot move")
    if target.is_won:
        raise Conflict(f"Stage {target.code} is the won stage: use POST /api/platform/leads/{lead_id}/convert")
    from_stage = lead.stage
    lead.stage = target.code
    lead.updated_at = utcnow()
    await _record_stage(session, lead, from_stage, caller.id, body.note)
    data = _event_data(lead) | {"from": from_stage, "to": target.code, "note": body.note}
    await outbox.publish(session, "lead.stage.changed", data, key=lead.id)
    return LeadRead.model_validate(lead)


async def convert(session: AsyncSession, lead_id: uuid.UUID, body: ConvertRequest, caller: Principal) -> LeadRead:
    lead = await _get(session, lead_id, for_update=True)
    if lead.converted_at is not None:
        raise Conflict("The lead was already converted")
    current = await stages.require(session, lead.stage)
    if current.is_lost or current.is_final:
        raise Conflict(f"The lead is in the {'lost' if current.is_lost else 'final'} stage {current.code}; "
                       "it cannot be converted")
    won = await stages.won(session)
    from_stage = lead.stage
    lead.stage = won.code
    lead.converted_at = lead.updated_at = utcnow()
    if body.tenant_id is not None:
        lead.tenant_id = body.tenant_id
    await _record_stage(session, lead, from_stage, caller.id, body.note)
    data = _event_data(lead) | {"convertedAt": lead.converted_at, "tenantId": lead.tenant_id,
                                "from": from_stage}
    await outbox.publish(session, "lead.converted", data, key=lead.id)
    return LeadRead.model_validate(lead)


def contact_key(contact: str) -> str:
    normalized = contact.strip().lower()
    key = f"whatsapp:{normalized}"
    return key if len(key) <= 200 else f"whatsapp:sha256:{hashlib.sha256(normalized.encode()).hexdigest()}"


async def create_from_conversation(session: AsyncSession, data: ConversationData) -> Lead | None:
    """An own-operations lead for a contact that starts a conversation; None if the contact has one."""
    contact = data.contact.strip()
    name = (data.contactName or "").strip()[:200] or contact[:200] or "WhatsApp contact"
    stage = await stages.initial(session)
    now = utcnow()
    lead = await LeadRepository(session).add_if_new_contact({
        "id": uuid.uuid4(), "name": name, "phone": contact if _PHONE.match(contact) else None,
        "source": "whatsapp", "value": Decimal("0"), "currency": "USD", "stage": stage.code,
        "own_operation": True, "conversation_id": data.conversationId, "contact_key": contact_key(contact),
        "created_at": now, "updated_at": now,
    })
    if lead is None:
        logger.info("conversation %s: contact already has a lead", data.conversationId)
        return None
    await _record_stage(session, lead, None, None, f"conversation {data.conversationId}")
    await outbox.publish(session, "lead.created", _event_data(lead) | {"conversationId": data.conversationId},
                         key=lead.id)
    return lead
