"""Publishing through the transactional outbox: the event row rides in the caller's transaction."""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate
from sqlalchemy import Table, func, insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.events import Envelope, build_event, topic_for_source


class Outbox:
    """Bound to one service's outbox table. `add` never commits: the request owns the transaction."""

    def __init__(self, table: Table, source: str) -> None:
        self.table = table
        self.source = source
        self.topic = topic_for_source(source)
        self.channel = f"outbox_{source.replace('-', '_')}"

    async def add(self, session: AsyncSession, envelope: Envelope, *, key: str) -> Envelope:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # W3C traceparent of the request that made the change
        # NOTIFY is delivered at commit, so the relay wakes exactly when the row becomes visible; sent from
        # the INSERT's RETURNING, it costs no extra statement.
        await session.execute(
            insert(self.table).values(
                event_id=envelope.id,
                event_type=envelope.event,
                topic=self.topic,
                aggregate_id=key,
                payload=envelope.to_kafka(),
                headers=headers,
            ).returning(func.pg_notify(self.channel, ""))
        )
        return envelope

    async def publish(self, session: AsyncSession, name: str, data: Any, *, key: Any,
                      tenant_id: Any = None) -> Envelope:
        """Validate `data` against the catalogue, then add it to the outbox."""
        envelope = build_event(name, data, tenant_id=tenant_id, source=self.source)
        return await self.add(session, envelope, key=str(key))
