from __future__ import annotations

from fastapi import APIRouter

from common.api import PageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from leads.lead.endpoints import LeadFiltersDep
from leads.lead.schemas import LeadSort
from leads.pipeline import service
from leads.pipeline.schemas import Pipeline

# Declared before `/leads/{lead_id}`.
router = APIRouter(prefix="/api/platform/leads/pipeline", tags=["pipeline"])


@router.get("", response_model=Pipeline, responses=problem_responses(401, 403, 422))
async def get_pipeline(session: SessionDep, _: PlatformOwner, page: PageParamsDep, filters: LeadFiltersDep,
                       sort: LeadSort = LeadSort.created_desc) -> Pipeline:
    """Every stage in order with its lead count, total value and one page of its leads (`limit`/`offset`
    apply to each stage). `stage=` shows one stage only; the other filters are the lead list's."""
    return await service.pipeline(session, filters, sort=sort, page=page)
