"""All SQL of the Stripe work tenant events cause (billing_sync_jobs)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from billing.models import SyncJob
from common.db.repository import Repository

# The oldest unfinished job of each tenant that is due, not held by another worker: a tenant's jobs run in
# event order, one at a time; other tenants' jobs do not wait behind it.
_CLAIM = text("""
UPDATE billing_sync_jobs SET next_attempt_at = now() + make_interval(secs => :lease), attempts = attempts + 1
WHERE id IN (
    SELECT j.id FROM billing_sync_jobs j
    WHERE j.done_at IS NULL AND j.next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM billing_sync_jobs e
                      WHERE e.tenant_id = j.tenant_id AND e.done_at IS NULL AND e.seq < j.seq)
    ORDER BY j.next_attempt_at, j.seq
    LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id
""")


class SyncJobRepository(Repository[SyncJob]):
    model = SyncJob

    async def add_once(self, values: dict[str, Any]) -> bool:
        stmt = (insert(SyncJob).values(id=uuid.uuid4(), next_attempt_at=func.now(), attempts=0, **values)
                .on_conflict_do_nothing(index_elements=[SyncJob.event_id]).returning(SyncJob.id))
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def claim(self, limit: int, lease_seconds: float) -> list[SyncJob]:
        ids = list((await self.session.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})).scalars())
        if not ids:
            return []
        return await self.all(select(SyncJob).where(SyncJob.id.in_(ids)).order_by(SyncJob.seq))  # type: ignore[attr-defined]

    async def finish(self, job_id: uuid.UUID, note: str | None = None) -> None:
        await self.session.execute(update(SyncJob).where(SyncJob.id == job_id)
                                   .values(done_at=func.now(), last_error=note))

    async def postpone(self, job_id: uuid.UUID, delay: timedelta, error: str) -> None:
        await self.session.execute(update(SyncJob).where(SyncJob.id == job_id)
                                   .values(next_attempt_at=func.now() + delay, last_error=error[:2000]))

    async def cancel_after(self, job: SyncJob) -> uuid.UUID | None:
        """The event id of a `cancel` of the job's tenant queued after it and not done yet, if any."""
        return (await self.session.execute(
            select(SyncJob.event_id).where(SyncJob.tenant_id == job.tenant_id, SyncJob.kind == "cancel",
                                           SyncJob.seq > job.seq, SyncJob.done_at.is_(None))  # type: ignore[operator,union-attr]
            .limit(1))).scalar_one_or_none()

    async def being_cancelled(self) -> set[uuid.UUID]:
        """Tenants with a cancellation not done yet (deleted tenants)."""
        return set((await self.session.execute(select(SyncJob.tenant_id).where(
            SyncJob.kind == "cancel", SyncJob.done_at.is_(None)))).scalars())  # type: ignore[union-attr]

    async def first_queued_at(self, tenant_id: uuid.UUID) -> datetime | None:
        """When the tenant's oldest job still kept was queued (no try for the tenant can be older)."""
        return (await self.session.execute(select(func.min(SyncJob.created_at))
                                           .where(SyncJob.tenant_id == tenant_id))).scalar_one_or_none()

    async def due_now(self) -> None:
        """Every waiting job is tried again at once (e.g. Stripe was just configured, plans just priced)."""
        await self.session.execute(update(SyncJob).where(SyncJob.done_at.is_(None))  # type: ignore[union-attr]
                                   .values(next_attempt_at=func.now()))

    async def purge_done(self, before: datetime, limit: int) -> int:
        result = await self.session.execute(text(
            "DELETE FROM billing_sync_jobs WHERE id IN (SELECT id FROM billing_sync_jobs WHERE done_at < :before "
            "ORDER BY done_at LIMIT :limit FOR UPDATE SKIP LOCKED)"), {"before": before, "limit": limit})
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def pending(self) -> int:
        return await self.count(select(SyncJob).where(SyncJob.done_at.is_(None)))  # type: ignore[union-attr]

    async def next_due(self) -> datetime | None:
        return (await self.session.execute(select(func.min(SyncJob.next_attempt_at))
                                           .where(SyncJob.done_at.is_(None)))).scalar_one_or_none()  # type: ignore[union-attr]
