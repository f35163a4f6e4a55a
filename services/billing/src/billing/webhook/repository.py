"""All SQL of stored Stripe webhook events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from billing.models import StripeEvent
from common.db.repository import Repository


class StripeEventRepository(Repository[StripeEvent]):
    model = StripeEvent

    async def store(self, *, stripe_event_id: str, type: str, created: int, payload: dict[str, Any],
                    received_at: datetime) -> bool:
        """Insert unless this Stripe event id was stored before; True when it is new."""
        stmt = (insert(StripeEvent).values(id=uuid.uuid4(), stripe_event_id=stripe_event_id, type=type,
                                            stripe_created=created, payload=payload, received_at=received_at,
                                            attempts=0)
                .on_conflict_do_nothing(index_elements=[StripeEvent.stripe_event_id])
                .returning(StripeEvent.id))
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def claim(self, limit: int) -> list[StripeEvent]:
        """Unprocessed events in Stripe's order, locked for this worker (others skip them)."""
        stmt = (select(StripeEvent).where(StripeEvent.processed_at.is_(None))  # type: ignore[union-attr]
                .order_by(StripeEvent.stripe_created, StripeEvent.received_at, StripeEvent.id)
                .limit(limit).with_for_update(skip_locked=True))
        return await self.all(stmt)

    async def mark(self, event_id: uuid.UUID, *, outcome: str | None, error: str | None = None,
                   done: bool = True) -> None:
        values: dict[str, Any] = {"attempts": StripeEvent.attempts + 1, "error": error, "outcome": outcome}
        if done:
            values["processed_at"] = func.now()
        await self.session.execute(update(StripeEvent).where(StripeEvent.id == event_id).values(**values))

    async def mark_many(self, outcomes: list[tuple[uuid.UUID, str]]) -> None:
        """A whole batch processed, in one statement."""
        await self.session.execute(text(
            "UPDATE stripe_events e SET processed_at = now(), outcome = u.outcome, attempts = e.attempts + 1, "
            "error = NULL FROM unnest(CAST(:ids AS uuid[]), CAST(:outcomes AS text[])) AS u(id, outcome) "
            "WHERE e.id = u.id"), {"ids": [i for i, _ in outcomes], "outcomes": [o for _, o in outcomes]})

    async def purge_processed(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` events processed before `before` (oldest first); returns how many."""
        result = await self.session.execute(text(
            "DELETE FROM stripe_events WHERE id IN (SELECT id FROM stripe_events WHERE processed_at < :before "
            "ORDER BY processed_at LIMIT :limit FOR UPDATE SKIP LOCKED)"), {"before": before, "limit": limit})
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def counts(self) -> dict[str, int]:
        rows = await self.session.execute(select(func.coalesce(StripeEvent.outcome, "pending"), func.count())
                                          .group_by(StripeEvent.outcome))
        return {k: v for k, v in rows.tuples()}
