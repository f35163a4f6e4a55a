from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from leads.lead.endpoints import SearchQuery, SourceQuery
from leads.lead.schemas import LeadFilters
from leads.metrics import service
from leads.metrics.schemas import Metrics

# Declared before `/leads/{lead_id}`.
router = APIRouter(prefix="/api/platform/leads/metrics", tags=["metrics"])


@router.get("", response_model=Metrics, responses=problem_responses(401, 403, 422))
async def get_metrics(
    session: SessionDep, _: PlatformOwner,
    days: Annotated[int | None, Query(ge=1, le=service.MAX_DAYS, description="Window ending `to` (default 30)")] = None,
    from_: Annotated[date | None, Query(alias="from", description="First day (UTC), instead of days")] = None,
    to: Annotated[date | None, Query(description="Last day (UTC), inclusive; default today")] = None,
    source: SourceQuery = None,
    q: SearchQuery = None,
    ownOperation: Annotated[bool | None, Query(description="Only own-operations leads (or only others)")] = None,
) -> Metrics:
    """Totals, conversion and win rate, value per currency, by source, by stage, average time to convert
    and leads created per day, over the leads created in the window (UTC days, inclusive)."""
    win = service.window(days=days, first=from_, last=to)
    filters = LeadFilters(source=source, q=q or None, own_operation=ownOperation)
    return await service.metrics(session, filters, win)
