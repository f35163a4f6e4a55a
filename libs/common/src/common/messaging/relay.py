"""Outbox relay: one active per service (advisory lock), publishes rows in `seq` order, then marks them.

Woken directly by commits in its own process, by LISTEN/NOTIFY for commits elsewhere (see `wakeup`),
with a polling fallback. A crash between produce and mark re-publishes the same rows on restart:
duplicates are possible and carry the same event id (consumers dedupe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from common.db import Database
from common.messaging.kafka import ensure_topics
from common.messaging.outbox import Outbox
from common.messaging.wakeup import register_leader, unregister_leader
from common.observability.metrics import EVENTS_PUBLISHED, OUTBOX_LAG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from common.observability.tracing import child_headers, spans_recorded

logger = logging.getLogger("common.relay")
tracer = trace.get_tracer("common.relay")


class OutboxRelay:
    def __init__(self, database: Database, producer: AIOKafkaProducer, outbox: Outbox, *,
                 bootstrap: str, partitions: int = 3, poll_interval: float = 1.0, batch_size: int = 500) -> None:
        self.database = database
        self.producer = producer
        self.outbox = outbox
        self.table = outbox.table
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.lock_key = zlib.crc32(f"outbox-relay:{outbox.source}".encode())
        table = self.table.name
        self._select = (f"SELECT seq, topic, aggregate_id, event_type, payload::text AS payload, "
                        f"headers::text AS headers, extract(epoch FROM now() - created_at) AS age "
                        f"FROM {table} WHERE published_at IS NULL ORDER BY seq LIMIT $1")
        self._mark = f"UPDATE {table} SET published_at = now() WHERE seq = ANY($1::bigint[])"
        self.is_leader = False
        self._wake = asyncio.Event()

    def lost_leadership(self, _: BaseException | None = None) -> None:
        self.is_leader = False

    async def run(self) -> None:
        """Lead (publish) while this process holds the relay lock; meant to run under `supervise`."""
        async with self.database.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            while not await raw.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                # Another process is the active relay; stand by and try again.
                await asyncio.sleep(2.0)
            self.is_leader = True
            try:
                register_leader(self.outbox.channel, self._wake.set)  # commits of this process
                await raw.add_listener(self.outbox.channel, self._on_notify)  # commits of other processes
                await ensure_topics(self.bootstrap, [self.outbox.topic], self.partitions)
                # The relay's statements run on this connection, each committing by itself (no BEGIN/COMMIT
                # round trips). A mark lost to a database crash only means those rows are published again
                # (same event ids, which consumers dedupe): marks need not wait for the WAL flush.
                await raw.execute("SET synchronous_commit TO OFF")
                while True:
                    published = await self.publish_batch(raw)
                    if published >= self.batch_size:
                        continue
                    # Commits arriving while a pass runs share the next one (one SELECT, one UPDATE).
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    except TimeoutError:
                        await raw.fetchval("SELECT 1")  # quiet: make sure the lock's connection is alive
                    self._wake.clear()
            finally:
                self.is_leader = False
                unregister_leader(self.outbox.channel, self._wake.set)
                with contextlib.suppress(Exception):
                    await raw.remove_listener(self.outbox.channel, self._on_notify)
                    await raw.execute("SELECT pg_advisory_unlock($1)", self.lock_key)
                # Never back to the pool: its session settings (synchronous_commit) must not reach a
                # transaction that needs a durable commit.
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def publish_batch(self, conn: Any) -> int:
        """One pass on the relay's own asyncpg connection: read unpublished rows in order, send them,
        mark the sent ones."""
        rows = await conn.fetch(self._select, self.batch_size)
        if not rows:
            OUTBOX_LAG.labels(self.outbox.source).set(0)
            OUTBOX_OLDEST_AGE.labels(self.outbox.source).set(0)
            return 0
        OUTBOX_LAG.labels(self.outbox.source).set(len(rows))
        OUTBOX_OLDEST_AGE.labels(self.outbox.source).set(float(rows[0]["age"]))
        futures = []
        for row in rows:
            futures.append(await self._send(row))
        results = await asyncio.gather(*futures, return_exceptions=True)
        done = [row["seq"] for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
        failed = len(rows) - len(done)
        if done:
            await conn.execute(self._mark, done)
            OUTBOX_PUBLISHED.labels(self.outbox.source).inc(len(done))
            sent = set(done)
            for event, count in Counter(row["event_type"] for row in rows if row["seq"] in sent).items():
                EVENTS_PUBLISHED.labels(self.outbox.source, event).inc(count)
        if failed:
            logger.warning("outbox relay: %d of %d sends failed; will retry", failed, len(rows))
            await asyncio.sleep(0.5)
        return len(done)

    async def _send(self, row: Any) -> asyncio.Future[Any]:
        topic = row["topic"]
        stored: dict[str, str] = orjson.loads(row["headers"]) if row["headers"] else {}
        carrier: dict[str, str] = {}
        if spans_recorded():
            with tracer.start_as_current_span(f"{topic} publish", context=propagate.extract(stored),
                                              kind=SpanKind.PRODUCER, attributes={
                                                  "messaging.system": "kafka", "messaging.destination.name": topic}):
                propagate.inject(carrier)
        else:  # nothing exports spans: only the trace ids travel on (no SDK span per row)
            carrier = child_headers(stored.get("traceparent"), stored.get("tracestate"))
        headers = [("event", row["event_type"].encode())] + [(k, v.encode()) for k, v in carrier.items()]
        # The payload as PostgreSQL prints the jsonb: the same JSON document the row holds.
        return await self.producer.send(topic, value=row["payload"].encode(), key=row["aggregate_id"].encode(),
                                        headers=headers)
