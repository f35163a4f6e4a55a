"""The pipeline board: for each stage in order, its count, value and one page of its leads."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from common.pagination import Page, PageParams
from leads.lead import service as leads
from leads.lead.schemas import LeadFilters, LeadRead, LeadSort
from leads.pipeline.repository import PipelineRepository
from leads.pipeline.schemas import Pipeline, PipelineColumn
from leads.stage import service as stages
from leads.stage.repository import StageRepository

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
    items: dict[str, list[LeadRead]] = defaultdict(list)
    for lead in await repo.page_per_stage(filters, sort=sort, limit=page.limit, offset=page.offset):
        items[lead.stage].append(leads.to_read(lead))
    columns = [
        PipelineColumn(stage=stages.to_read(s), count=counts[s.code],
                       totalValue=sum(values[s.code].values(), ZERO),
                       valueByCurrency=dict(sorted(values[s.code].items())),
                       leads=Page(items=items[s.code], total=counts[s.code], limit=page.limit, offset=page.offset))
        for s in all_stages
    ]
    return Pipeline(stages=columns, count=sum(c.count for c in columns),
                    totalValue=sum((c.totalValue for c in columns), ZERO))
