"""Lead metrics over a window of creation dates (UTC days, both ends inclusive).

The population is the leads created in the window that match the filters; every figure describes it:
- totals: leads, open (non-final stage), converted (convertedAt set), lost (lost stage);
- conversionRate = converted / leads; winRate = converted / (converted + lost); 0 when the divisor is 0;
- averageTimeToConvertSeconds = avg(convertedAt - createdAt) over the converted ones;
- bySource / byStage: the same counts grouped by source / by current stage; createdPerDay: per UTC day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Unprocessable
from leads.lead.schemas import LeadFilters
from leads.metrics.repository import MetricsRepository
from leads.metrics.schemas import (
    CurrencyValue,
    DayCount,
    Metrics,
    SourceMetrics,
    StageMetrics,
    Totals,
    Window,
)

DEFAULT_DAYS = 30
MAX_DAYS = 366
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)


def window(*, days: int | None, first: date | None, last: date | None, today: date | None = None) -> Window:
    """`days` (ending `to`, default today) or an explicit `from`/`to`."""
    if days is not None and first is not None:
        raise Unprocessable("Give either days or from (with an optional to), not both")
    for value in (first, last):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise Unprocessable(f"Dates must be between {EARLIEST} and {LATEST}")
    last = last or today or datetime.now(UTC).date()
    first = first or last - timedelta(days=(days or DEFAULT_DAYS) - 1)
    if first > last:
        raise Unprocessable("from must not be after to")
    length = (last - first).days + 1
    if length > MAX_DAYS:
        raise Unprocessable(f"The window may span at most {MAX_DAYS} days")
    return Window(from_=first, to=last, days=length)


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def metrics(session: AsyncSession, filters: LeadFilters, win: Window) -> Metrics:
    f = LeadFilters(source=filters.source, q=filters.q, own_operation=filters.own_operation,
                    created_from=_start_of(win.from_), created_to=_start_of(win.to + timedelta(days=1)))
    repo = MetricsRepository(session)
    t = await repo.totals(f)
    return Metrics(
        window=win,
        totals=Totals.model_validate(t),
        conversion_rate=rate(t.converted, t.leads),
        win_rate=rate(t.converted, t.converted + t.lost),
        average_time_to_convert_seconds=None if t.avg_seconds is None else round(float(t.avg_seconds), 3),
        value_by_currency=[CurrencyValue.model_validate(r) for r in await repo.value_by_currency(f)],
        by_source=[SourceMetrics(source=r.source, count=r.count, converted=r.converted,
                                 conversion_rate=rate(r.converted, r.count)) for r in await repo.by_source(f)],
        by_stage=[StageMetrics(stage=r.code, name=r.name, count=r.count, value=Decimal(r.value))
                  for r in await repo.by_stage(f)],
        created_per_day=[DayCount(date=r.day, count=r.count)
                         for r in await repo.created_per_day(f, win.from_, win.days)],
    )
