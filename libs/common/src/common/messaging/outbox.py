"""Publishing through the transactional outbox: the event row rides in the caller's transaction."""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate
from sqlalchemy import Insert, Table, func, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from common.events import Envelope, build_event, topic_for_source
from common.messaging.wakeup import wake, wake_after_commit


class Outbox:
    """Bound to one service's outbox table. `add` never commits: the request owns the transaction."""

    def __init__(self, table: Table, source: str) -> None:
        self.table = table
        self.source = source
        self.topic = topic_for_source(source)
        self.channel = f"outbox_{source.replace('-', '_')}"

    def row(self, envelope: Envelope, *, key: str) -> dict[str, Any]:
        """The outbox row of `envelope` (column -> value), with the W3C traceparent of the current span."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        return {"event_id": envelope.id, "event_type": envelope.event, "topic": self.topic, "aggregate_id": key,
                "payload": envelope.to_kafka(), "headers": headers}

    def committed(self, engine: AsyncEngine) -> None:
        """A row of this outbox was committed through `engine` outside a session (`Database.run`): wake the relay."""
        wake(self.channel, engine)

    async def add(self, session: AsyncSession | AsyncConnection, envelope: Envelope, *, key: str,
                  along: Insert | None = None) -> Envelope:
        """`along`: the change itself (an INSERT), sent with the event row as ONE statement (a
        data-modifying CTE; a failure of either writes neither): one round trip instead of two."""
        statement = insert(self.table).values(self.row(envelope, key=key))
        if along is not None:
            statement = statement.add_cte(along.cte("change"))
        if isinstance(session, AsyncSession):  # the request path: the relay is woken after the commit
            await session.execute(statement)
            wake_after_commit(session, self.channel)
        else:
            # A bare connection (rare, operational events) has no after-commit hook: NOTIFY in the
            # transaction, delivered at its commit.
            await session.execute(statement.returning(func.pg_notify(self.channel, "")))
        return envelope

    async def add_many(self, session: AsyncSession, envelopes: list[tuple[Envelope, str]]) -> None:
        """Several events (envelope, key) as ONE multi-row INSERT, in list order (so their order per key
        is kept): for a worker writing a batch of changes in one transaction."""
        if not envelopes:
            return
        # The rows as parameters of one cached statement, not `values(rows)`: a multi-row VALUES was compiled
        # again at every call (its SQL depends on the row count; ~29 ms of CPU for 400 rows). With RETURNING,
        # SQLAlchemy sends them as ONE multi-row INSERT ("insertmanyvalues"), in list order; without it, asyncpg
        # would execute the statement once per row.
        await session.execute(insert(self.table).returning(self.table.c.seq),
                              [self.row(envelope, key=key) for envelope, key in envelopes])
        wake_after_commit(session, self.channel)

    async def publish_many(self, session: AsyncSession, events: list[tuple[str, Any, Any]], *,
                           tenant_id: Any = None) -> None:
        """`publish` for several (name, data, key) at once: each validated, all in one INSERT."""
        await self.add_many(session, [(build_event(name, data, tenant_id=tenant_id, source=self.source), str(key))
                                      for name, data, key in events])

    async def publish(self, session: AsyncSession | AsyncConnection, name: str, data: Any, *, key: Any,
                      tenant_id: Any = None) -> Envelope:
        """Validate `data` against the catalogue, then add it to the outbox."""
        envelope = build_event(name, data, tenant_id=tenant_id, source=self.source)
        return await self.add(session, envelope, key=str(key))
