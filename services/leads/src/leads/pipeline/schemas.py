from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from common.api import Page, Schema
from leads.lead.schemas import LeadRead
from leads.stage.schemas import StageRead


class PipelineColumn(Schema):
    stage: StageRead
    count: int = Field(description="Leads in this stage (matching the filters)")
    total_value: Decimal = Field(description="Sum of `value` of those leads, whatever their currency")
    value_by_currency: dict[str, Decimal] = Field(description="Sum of `value` per currency")
    leads: Page[LeadRead] = Field(description="One page of this stage's leads (limit/offset apply per stage)")


class Pipeline(Schema):
    stages: list[PipelineColumn] = Field(description="In stage order")
    count: int
    total_value: Decimal
