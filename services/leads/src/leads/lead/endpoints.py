from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, status

from common.api import KeysetPage, KeysetPageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.db.repository import SEARCH_RULE
from common.errors import Unprocessable, problem_responses
from leads.lead import schemas, service
from leads.stage.schemas import StageCode

# Query parameters shared by the lead list, own-operations list, pipeline and metrics.
SourceQuery = Annotated[schemas.Source | None, Query(description="Exact source, e.g. web")]
# No NUL (PostgreSQL refuses it) and no SEARCH_SEPARATOR (it joins the three columns searched as one text).
SearchQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00\x1f]*$",
                                          description=f"Search in name, email and company, {SEARCH_RULE}")]
StageQuery = Annotated[StageCode | None, Query(description="Stage code")]
CreatedFromQuery = Annotated[datetime | None, Query(description="Created at or after (ISO 8601; naive = UTC)")]
CreatedToQuery = Annotated[datetime | None, Query(description="Created before (ISO 8601; naive = UTC)")]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # naive times are UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Unprocessable("Date out of range") from None


def _filters(stage: StageCode | None, source: str | None, q: str | None, own_operation: bool | None,
             created_from: datetime | None, created_to: datetime | None) -> schemas.LeadFilters:
    created_from, created_to = _utc(created_from), _utc(created_to)
    if created_from is not None and created_to is not None and created_from > created_to:
        raise Unprocessable("createdFrom must not be after createdTo")
    return schemas.LeadFilters(stage=stage, source=source, q=q or None, own_operation=own_operation,
                       created_from=created_from, created_to=created_to)


def lead_filters(
    stage: StageQuery = None,
    source: SourceQuery = None,
    q: SearchQuery = None,
    ownOperation: Annotated[bool | None, Query(description="Only own-operations leads (or only others)")] = None,
    createdFrom: CreatedFromQuery = None,
    createdTo: CreatedToQuery = None,
) -> schemas.LeadFilters:
    return _filters(stage, source, q, ownOperation, createdFrom, createdTo)


def own_operation_filters(
    stage: StageQuery = None,
    source: SourceQuery = None,
    q: SearchQuery = None,
    createdFrom: CreatedFromQuery = None,
    createdTo: CreatedToQuery = None,
) -> schemas.LeadFilters:
    return _filters(stage, source, q, True, createdFrom, createdTo)


LeadFiltersDep = Annotated[schemas.LeadFilters, Depends(lead_filters)]
OwnOperationFiltersDep = Annotated[schemas.LeadFilters, Depends(own_operation_filters)]


# Included after the stage, pipeline and metrics routers: `/leads/{lead_id}` must not shadow them.
router = APIRouter(prefix="/api/platform/leads", tags=["leads"])
operations_router = APIRouter(prefix="/api/platform/operations/leads", tags=["own operations"])


@router.get("", response_model=KeysetPage[schemas.LeadRead], responses=problem_responses(401, 403, 422))
async def list_leads(session: SessionDep, _: PlatformOwner, page: KeysetPageParamsDep, filters: LeadFiltersDep,
                     sort: schemas.LeadSort = schemas.LeadSort.created_desc) -> KeysetPage[schemas.LeadRead]:
    """Leads, newest first; filter by stage, source, text, own operations, creation range.

    Page by `offset`, or by `cursor` (each page's `nextCursor`, null on the last page)."""
    return await service.list_leads(session, filters, sort=sort, page=page)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.LeadRead,
             responses=problem_responses(401, 403, 409, 422))
async def create_lead(session: SessionDep, caller: PlatformOwner, body: schemas.LeadCreate) -> schemas.LeadRead:
    """Create a lead (in the first open stage unless another open stage is given); emits `lead.created`."""
    return await service.create(session, body, caller)


@router.get("/{lead_id}", response_model=schemas.LeadDetail, responses=problem_responses(401, 403, 404, 422))
async def get_lead(session: SessionDep, _: PlatformOwner, lead_id: uuid.UUID) -> schemas.LeadDetail:
    """A lead with its stage history."""
    return await service.get(session, lead_id)


@router.put("/{lead_id}", response_model=schemas.LeadRead, responses=problem_responses(401, 403, 404, 422))
async def update_lead(session: SessionDep, _: PlatformOwner, lead_id: uuid.UUID,
                      body: schemas.LeadUpdate) -> schemas.LeadRead:
    """Change details (not the stage); emits `lead.updated` with the changed fields, or nothing if none."""
    return await service.update(session, lead_id, body)


@router.post("/{lead_id}/stage", response_model=schemas.LeadRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def move_lead(session: SessionDep, caller: PlatformOwner, lead_id: uuid.UUID,
                    body: schemas.StageMove) -> schemas.LeadRead:
    """Move the lead to another stage; emits `lead.stage.changed`. 409 out of a final stage, into the won
    stage (use convert) or to the current stage."""
    return await service.move(session, lead_id, body, caller)


@router.post("/{lead_id}/convert", response_model=schemas.LeadRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def convert_lead(session: SessionDep, caller: PlatformOwner, lead_id: uuid.UUID,
                       body: Annotated[schemas.ConvertRequest | None, Body()] = None) -> schemas.LeadRead:
    """Mark the lead won (converted): moves it to the won stage, records `convertedAt`; emits
    `lead.converted`. 409 if already converted or in a lost/final stage."""
    return await service.convert(session, lead_id, body or schemas.ConvertRequest(), caller)


@operations_router.get("", response_model=KeysetPage[schemas.LeadRead], responses=problem_responses(401, 403, 422))
async def list_own_operation_leads(session: SessionDep, _: PlatformOwner, page: KeysetPageParamsDep,
                                   filters: OwnOperationFiltersDep,
                                   sort: schemas.LeadSort = schemas.LeadSort.created_desc,
                                   ) -> KeysetPage[schemas.LeadRead]:
    """Leads of the owner's own operations (`ownOperation = true`), with the same filters."""
    return await service.list_leads(session, filters, sort=sort, page=page)
