"""The pipeline board: for each stage in order, its count, value and one page of its leads."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from leads.lead.schemas import LeadFilters, LeadRead, LeadSort
from leads.models import Lead
from leads.pipeline.repository import PipelineRepository
from leads.pipeline.schemas import Pipeline, PipelineColumn
from leads.stage import service as stages
from leads.stage.repository import StageRepository
from leads.stage.schemas import StageRead

ZERO = Decimal("0.00")


async def pipeline(session: AsyncSession, filters: LeadFilters, *, sort: LeadSort, page: PageParams) -> Pipeline:
    """`filters.stage` restricts the board to that one stage (to page through a single column)."""
    if filters.stage is not None:
        all_stages = [await stages.require(session, filters.stage)]
    else:
        all_stages = await StageRepository(session).list()
    repo = PipelineRepository(session)
    counts: dict[str, int] = defaultdict(int)
    values: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in await repo.totals(filters):
        counts[row.stage] += row.count
        values[row.stage][row.currency] = Decimal(row.value)
    rows: dict[str, list[Lead]] = defaultdict(list)
    for lead in await repo.page_per_stage(filters, sort=sort, limit=page.limit, offset=page.offset):
        rows[lead.stage].append(lead)
    columns = [
        PipelineColumn(stage=StageRead.model_validate(s), count=counts[s.code],
                       total_value=sum(values[s.code].values(), ZERO),
                       value_by_currency=dict(sorted(values[s.code].items())),
                       leads=Page[LeadRead].of(rows[s.code], counts[s.code], page))
        for s in all_stages
    ]
    return Pipeline(stages=columns, count=sum(c.count for c in columns),
                    total_value=sum((c.total_value for c in columns), ZERO))
