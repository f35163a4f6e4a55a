from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import Field

from common.api import Schema


class Window(Schema):
    from_: date = Field(alias="from", description="First day (UTC), inclusive")
    to: date = Field(description="Last day (UTC), inclusive")
    days: int


class Totals(Schema):
    leads: int = Field(description="Leads created in the window")
    open: int = Field(description="Of those, in a non-final stage")
    converted: int = Field(description="Of those, converted (convertedAt set; in the won stage)")
    lost: int = Field(description="Of those, in a lost stage")


class CurrencyValue(Schema):
    currency: str
    total: Decimal = Field(description="Sum of `value` of the window's leads in this currency")
    converted: Decimal = Field(description="Sum of `value` of the converted ones")


class SourceMetrics(Schema):
    source: str
    count: int
    converted: int
    conversion_rate: float = Field(description="converted / count")


class StageMetrics(Schema):
    stage: str
    name: str
    count: int = Field(description="Window's leads currently in this stage")
    value: Decimal


class DayCount(Schema):
    date: date
    count: int


class Metrics(Schema):
    window: Window
    totals: Totals
    conversion_rate: float = Field(description="converted / leads (0 when there are no leads), 4 decimals")
    win_rate: float = Field(description="converted / (converted + lost) (0 when none is closed), 4 decimals")
    average_time_to_convert_seconds: float | None = Field(
        description="Mean of convertedAt - createdAt over the converted leads (null if none)")
    value_by_currency: list[CurrencyValue]
    by_source: list[SourceMetrics] = Field(description="Most leads first")
    by_stage: list[StageMetrics] = Field(description="Every stage, in stage order")
    created_per_day: list[DayCount] = Field(description="Every day of the window, zeros included")
