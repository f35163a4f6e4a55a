from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from common.pagination import Page
from leads.lead.schemas import LeadRead
from leads.stage.schemas import StageRead


class PipelineColumn(BaseModel):
    stage: StageRead
    count: int = Field(description="Leads in this stage (matching the filters)")
    totalValue: Decimal = Field(description="Sum of `value` of those leads, whatever their currency")
    valueByCurrency: dict[str, Decimal] = Field(description="Sum of `value` per currency")
    leads: Page[LeadRead] = Field(description="One page of this stage's leads (limit/offset apply per stage)")


class Pipeline(BaseModel):
    stages: list[PipelineColumn] = Field(description="In stage order")
    count: int
    totalValue: Decimal
