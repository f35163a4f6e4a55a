from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class Window(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", description="First day (UTC), inclusive")
    to: date = Field(description="Last day (UTC), inclusive")
    days: int


class Totals(BaseModel):
    leads: int = Field(description="Leads created in the window")
    open: int = Field(description="Of those, in a non-final stage")
    converted: int = Field(description="Of those, converted (convertedAt set; in the won stage)")
    lost: int = Field(description="Of those, in a lost stage")


class CurrencyValue(BaseModel):
    currency: str
    total: Decimal = Field(description="Sum of `value` of the window's leads in this currency")
    converted: Decimal = Field(description="Sum of `value` of the converted ones")


class SourceMetrics(BaseModel):
    source: str
    count: int
    converted: int
    conversionRate: float = Field(description="converted / count")


class StageMetrics(BaseModel):
    stage: str
    name: str
    count: int = Field(description="Window's leads currently in this stage")
    value: Decimal


class DayCount(BaseModel):
    date: date
    count: int


class Metrics(BaseModel):
    window: Window
    totals: Totals
    conversionRate: float = Field(description="converted / leads (0 when there are no leads), 4 decimals")
    winRate: float = Field(description="converted / (converted + lost) (0 when none is closed), 4 decimals")
    averageTimeToConvertSeconds: float | None = Field(
        description="Mean of convertedAt - createdAt over the converted leads (null if none)")
    valueByCurrency: list[CurrencyValue]
    bySource: list[SourceMetrics] = Field(description="Most leads first")
    byStage: list[StageMetrics] = Field(description="Every stage, in stage order")
    createdPerDay: list[DayCount] = Field(description="Every day of the window, zeros included")
