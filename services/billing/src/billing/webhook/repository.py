"""All SQL of stored Stripe webhook events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.models import StripeEvent
from common.db.repository import Repository

# The acknowledgement's only statement. The verified body is stored as it came (PostgreSQL parses it into
# jsonb): no second JSON encoding in Python. Each statement commits by itself (autocommit connection).
_STORE = text(
    "INSERT INTO stripe_events (id, stripe_event_id, type, stripe_created, payload, received_at, attempts, "
    "created_at, updated_at) VALUES (:id, :event_id, :type, :created, CAST(:payload AS jsonb), "
    "now(), 0, now(), now()) ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id")


async def store_event(conn: AsyncConnection, *, stripe_event_id: str, type: str, created: int, body: str) -> bool:
    """Insert unless this Stripe event id was stored before; True when it is new. On a bare autocommit
    connection, not a session: the webhook's hot path has no unit of work to run."""
    result = await conn.execute(_STORE, {"id": uuid.uuid4(), "event_id": stripe_event_id, "type": type, "created": created,
                                         "payload": body})
    return result.scalar_one_or_none() is not None


@dataclass(slots=True)
class PendingEvent:
    id: uuid.UUID
    type: str
    stripe_created: int
    payload: dict[str, Any]


_CLAIM = text(
    "SELECT id, type, stripe_created, payload::text FROM stripe_events WHERE processed_at IS NULL "
    "ORDER BY stripe_created, received_at, id LIMIT :limit FOR UPDATE SKIP LOCKED")


class StripeEventRepository(Repository[StripeEvent]):
    model = StripeEvent

    async def claim_pending(self, limit: int) -> list[PendingEvent]:
        """Unprocessed events in Stripe's order, locked for this worker (others skip them). Without the ORM:
        only the columns the worker reads, the payload parsed by orjson."""
        rows = await self.session.execute(_CLAIM, {"limit": limit})
        return [PendingEvent(id, type, created, orjson.loads(payload)) for id, type, created, payload in rows]

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

    async def ignore_pending(self, *, livemode: bool, why: str) -> int:
        """Every event of that mode not yet applied is marked done, not applied (outcome "ignored"). An event the
        worker holds is waited for: once this returns, what it applied is in the tables."""
        result = await self.session.execute(text(
            "UPDATE stripe_events SET processed_at = now(), outcome = 'ignored', error = :why "
            "WHERE processed_at IS NULL AND payload->>'livemode' = :livemode"),
            {"why": why, "livemode": "true" if livemode else "false"})
        return result.rowcount or 0  # type: ignore[attr-defined]

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
