"""Idempotent Kafka consumer: inbox row + effect in one transaction, offset committed after the commit.

Handlers receive a batch of new (never seen by this consumer) events and a session; they must not
commit. A handler may return an async callable that runs after the commit (e.g. start deliveries now).
A hot consumer may instead give a `writer`: it gets the whole batch and an autocommit connection, and
writes the inbox rows and the effect in ONE statement (one round trip instead of BEGIN, inbox,
effects, COMMIT; a statement is atomic by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka import errors as kafka_errors
from aiokafka.util import commit_structure_validate
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from common.config import ServiceSettings
from common.db import Database
from common.events import Envelope
from common.messaging.kafka import ensure_topics
from common.observability.metrics import CONSUMED, CONSUMER_ERRORS, CONSUMER_LAG, EVENTS_RECEIVED
from common.outage import is_outage

COMMIT_INTERVAL = 0.1  # seconds between Kafka offset commits while records keep coming
LAG_INTERVAL = 5.0  # seconds between consumer lag samples (a scrape every 15 s needs no more)

logger = logging.getLogger("common.consumer")
tracer = trace.get_tracer("common.consumer")

AfterCommit = Callable[[], Awaitable[None]]
Handler = Callable[[AsyncSession, list["ConsumedEvent"]], Awaitable[AfterCommit | None]]
# (connection, distinct events) -> (how many were new to the inbox, after-commit callable)
Writer = Callable[[AsyncConnection, list["ConsumedEvent"]], Awaitable[tuple[int, AfterCommit | None]]]


@dataclass(frozen=True)
class ConsumedEvent:
    envelope: Envelope
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]
    key: str | None = None  # the aggregate id the publisher keyed the record with

    @property
    def id(self) -> uuid.UUID:
        return self.envelope.id

    @property
    def traceparent(self) -> str | None:
        return self.headers.get("traceparent")


# Idle, a consumer's fetches are what costs: tansu holds each for the whole fetch wait (it does not answer
# early when a record arrives), so at the 10 ms that keeps busy latency low every consumer sent 100 fetches
# a second to the broker, and an idle `make run` spent ~28 % of a core on them (broker 16 %, dispatcher 7 %,
# leads 5 %). After IDLE_AFTER seconds without a record the wait becomes IDLE_FETCH_WAIT_MS, and the first
# batch that arrives brings it back: a lone event after a quiet spell waits at most that much longer.
IDLE_AFTER = 2.0
IDLE_FETCH_WAIT_MS = 100


# While the database or the broker is unreachable, held events are tried again after these waits (doubling):
# short, so that events flow again within a second or two of its return.
OUTAGE_FIRST_DELAY = 0.2
OUTAGE_MAX_DELAY = 2.0

def _set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """aiokafka reads the wait each time it builds a fetch request; it has no public setter."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms


def membership(consumer: AIOKafkaConsumer) -> tuple[int, str] | None:
    """(generation, member id) of the consumer's current group membership; (-1, "") between a lost membership
    and the next join. aiokafka keeps it on its coordinator, with no public accessor."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "generation"):
        return None
    return coordinator.generation, coordinator.member_id


_MEMBERSHIP_GONE = (kafka_errors.UnknownMemberIdError, kafka_errors.IllegalGenerationError,
                    kafka_errors.RebalanceInProgressError)


async def commit_as(consumer: AIOKafkaConsumer, offsets: dict[Any, int], member: tuple[int, str] | None,
                    name: str = "") -> bool:
    """Commit `offsets` as the group membership `member` they were read under, or not at all (False).

    aiokafka's own `commit` retries a failed send (coordinator gone, timeout) with whatever membership its
    coordinator holds at each retry. Across a tansu restart that is the new group's (or generation -1, which
    a broker takes for a standalone commit): positions in the lost log became the new log's committed
    offsets, and the next assignment skipped the new log's first records -- the relay's re-published rows.
    Each attempt here is built only while the membership is still `member`; a dropped commit costs a
    re-read, which the inbox absorbs. This is the one place that decides (the consumer loop hands every
    commit here, whatever happened to the group meanwhile)."""

    def dropped() -> bool:
        logger.info("consumer %s: offsets read under an earlier group membership dropped (read again)", name)
        return False

    coordinator = consumer._coordinator
    # Read between a lost membership and the next join (generation -1, no member id): such a commit is the
    # standalone kind a broker accepts from anyone, the very one to avoid. (Member ids are what tell two
    # memberships apart: a restarted tansu numbers generations from 0 again.)
    if coordinator is None or member is None or member[0] < 0 or not member[1]:
        return dropped()
    structured = commit_structure_validate(offsets)
    while membership(consumer) == member:
        try:
            await coordinator.ensure_coordinator_known()
            async with coordinator._commit_lock:
                if membership(consumer) != member:
                    return dropped()
                # Not shielded: the request is built from the membership checked just above, before the
                # coroutine's first await (a shielded task would only start on a later loop turn).
                await coordinator._do_commit_offsets(None, structured)
            return True
        except _MEMBERSHIP_GONE:
            return dropped()
        except kafka_errors.KafkaError as err:
            if not err.retriable:
                raise
            await asyncio.sleep(coordinator._retry_backoff_ms / 1000)
    return dropped()


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, event: asyncio.Event, name: str) -> None:
        self.event = event
        self.name = name
        self.first = asyncio.Event()  # this consumer's own first assignment
        self.started = time.monotonic()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # How long a group join takes is most of a restarted service's way back: worth a line in its log.
        logger.info("consumer %s: %d partition(s) assigned %.2f s after start", self.name, len(assigned),
                    time.monotonic() - self.started)
        self.event.set()
        self.first.set()


class EventConsumer:
    def __init__(self, settings: ServiceSettings, database: Database, inbox: Table, *, name: str,
                 topics: list[str], handler: Handler | None = None, writer: Writer | None = None,
                 group_id: str | None = None, max_records: int = 500, max_attempts: int = 5) -> None:
        if (handler is None) == (writer is None):
            raise ValueError("give a handler or a writer")
        self.settings = settings
        self.database = database
        self.inbox = inbox
        self.name = name
        self.topics = topics
        self.handler = handler
        self.writer = writer
        self.group_id = settings.kafka_consumer_group_prefix + (group_id or f"{settings.service_name}.{name}")
        self.max_records = max_records
        self.max_attempts = max_attempts
        self.assigned = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        """Consume until cancelled; meant to run under `supervise`, which restarts it after a failure."""
        assignment = _Assignment(self.assigned, self.name)
        await ensure_topics(self.settings.kafka_bootstrap_servers, self.topics,
                            self.settings.kafka_topic_partitions)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.settings.service_name}-{self.name}",
            enable_auto_commit=False,
            # A broker restart loses offsets (tansu memory storage); the inbox makes replays harmless.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            max_poll_records=self.max_records,
            metadata_max_age_ms=30_000,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_session_timeout_ms // 3,
        )
        consumer.subscribe(self.topics, listener=assignment)
        self._consumer = consumer
        await consumer.start()
        committing: asyncio.Future[None] | None = None
        offsets: dict[Any, int] = {}  # processed, not yet committed
        offsets_of = None  # the group membership those offsets were fetched under
        loop = asyncio.get_running_loop()
        committed_at = lag_at = busy_at = loop.time()
        idle = False
        try:
            await assignment.first.wait()  # joined by aiokafka's own coordination task
            offsets_of = membership(consumer)
            while True:
                fetched_by = membership(consumer)
                batches = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                if membership(consumer) != fetched_by:
                    fetched_by = None  # joined anew while fetching: these records' positions may be the old ones
                now = loop.time()
                if batches:
                    busy_at = now
                if idle != (now - busy_at >= IDLE_AFTER):
                    idle = not idle
                    _set_fetch_wait(consumer, IDLE_FETCH_WAIT_MS if idle else self.settings.kafka_fetch_max_wait_ms)
                if loop.time() - lag_at >= LAG_INTERVAL:
                    lag_at = loop.time()
                    await self._sample_lag(consumer)
                if batches:
                    # Every partition's records in one transaction: per-partition order is kept (records
                    # of one key share a partition), round trips are not multiplied.
                    await self._process([r for records in batches.values() for r in records])
                    if offsets_of != fetched_by:
                        offsets, offsets_of = {}, fetched_by
                    offsets.update({tp: records[-1].offset + 1 for tp, records in batches.items()})
                # Offsets go after the database commit, as always, but at most every COMMIT_INTERVAL and
                # without making the next batch wait for the broker: what a crash or a rebalance
                # replays is already in the inbox, which absorbs it.
                if offsets and (not batches or loop.time() - committed_at >= COMMIT_INTERVAL):
                    if committing is not None:
                        await committing
                    committing = asyncio.ensure_future(commit_as(consumer, offsets, offsets_of, self.name))
                    offsets, committed_at = {}, loop.time()
        finally:
            self._consumer = None
            # Cancelled with us, or failed: either way the consumer must still leave its group.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                if committing is not None:
                    await committing
                if offsets:
                    await commit_as(consumer, offsets, offsets_of, self.name)
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _sample_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records behind the partition end (as of the last fetch), per topic, over this member's
        partitions: summed over the group's members it is the group's lag."""
        lag: dict[str, int] = dict.fromkeys(self.topics, 0)
        try:
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                if end is not None:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - await consumer.position(tp))
        except Exception:  # a rebalance in between: a metric sample never stops the consumer
            logger.debug("consumer %s: lag sample skipped", self.name, exc_info=True)
            return
        for topic, behind in lag.items():
            CONSUMER_LAG.labels(self.group_id, topic).set(behind)

    def _decode(self, record: ConsumerRecord) -> ConsumedEvent | None:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        try:
            envelope = Envelope.model_validate(orjson.loads(record.value))
        except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
            CONSUMER_ERRORS.labels(self.name, "decode").inc()
            logger.error("consumer %s: undecodable record %s/%s@%s skipped: %s", self.name, record.topic,
                         record.partition, record.offset, exc)
            return None
        key = record.key.decode(errors="replace") if record.key else None
        EVENTS_RECEIVED.labels(self.name, envelope.event).inc()
        return ConsumedEvent(envelope, record.topic, record.partition, record.offset, headers, key)

    async def _process(self, records: list[ConsumerRecord]) -> None:
        events = [e for e in (self._decode(r) for r in records) if e is not None]
        if not events:
            return
        try:
            await self._apply_through_outages(events)
        except Exception:
            # Isolate the bad one: go one by one, so one poison event does not block the others.
            logger.exception("consumer %s: batch of %d failed; retrying one by one", self.name, len(events))
            for event in events:
                await self._apply_one_with_retries(event)

    async def _apply_through_outages(self, events: list[ConsumedEvent], error: str | None = None) -> None:
        """`_apply`, tried again for as long as the database (or the broker) is unreachable: an outage is
        no event's fault, so it never counts towards dead-lettering. Meanwhile nothing new is fetched and
        no offset is committed past these events."""
        delay, since = OUTAGE_FIRST_DELAY, None
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._apply(events, error)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                CONSUMER_ERRORS.labels(self.name, "outage").inc()
                if since is None:
                    since = loop.time()
                    logger.warning("consumer %s: database or broker unreachable (%s: %s); %d event(s) held, "
                                   "trying again until it answers", self.name, type(exc).__name__, exc, len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_DELAY)
                continue
            if since is not None:
                logger.warning("consumer %s: reachable again after %.1f s; %d held event(s) applied", self.name,
                               loop.time() - since, len(events))
            return

    async def _apply(self, events: list[ConsumedEvent], error: str | None = None) -> None:
        parent = propagate.extract(events[0].headers)
        with tracer.start_as_current_span(f"{events[0].topic} process", context=parent, kind=SpanKind.CONSUMER,
                                          attributes={"messaging.system": "kafka",
                                                      "messaging.batch.message_count": len(events)}):
            after: AfterCommit | None = None
            # Deduplicate within the batch (a relay re-publish can put one id twice in a batch).
            unique: dict[uuid.UUID, ConsumedEvent] = {}
            for e in events:
                unique.setdefault(e.id, e)
            if self.writer is not None and error is None:
                async with self.database.autocommit.connect() as conn:
                    new, after = await self.writer(conn, list(unique.values()))
            else:
                async with self.database.sessionmaker() as session:
                    # One statement whatever the batch size (unnest), instead of a multi-row VALUES that
                    # SQLAlchemy would compile anew for every batch length.
                    stmt = text(
                        f"INSERT INTO {self.inbox.name} (consumer, event_id, event_type, error) "
                        "SELECT :consumer, u.id, u.type, :error "
                        "FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS u(id, type) "
                        "ON CONFLICT DO NOTHING RETURNING event_id"
                    )
                    fresh = set((await session.execute(stmt, {
                        "consumer": self.name, "error": error, "ids": [e.id for e in unique.values()],
                        "types": [e.envelope.event[:100] for e in unique.values()],
                    })).scalars().all())
                    new_events = [e for e in unique.values() if e.id in fresh]
                    if new_events and error is None and self.handler is not None:
                        after = await self.handler(session, new_events)
                    await session.commit()
                new = len(new_events)
            CONSUMED.labels(self.name).inc(new)
            if after is not None:
                try:
                    await after()
                except Exception:
                    logger.exception("consumer %s: after-commit hook failed", self.name)

    async def _apply_one_with_retries(self, event: ConsumedEvent) -> None:
        """A poison event (its handler fails for it alone) is dead-lettered after `max_attempts`; outages
        in between are waited out and not counted."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._apply_through_outages([event])
                return
            except Exception as exc:
                CONSUMER_ERRORS.labels(self.name, "handler").inc()
                if attempt == self.max_attempts:
                    logger.error("consumer %s: event %s (%s) failed %d times; recorded as dead letter: %s",
                                 self.name, event.id, event.envelope.event, attempt, exc)
                    # Recorded with its error in the inbox: visible, and not re-applied on replay.
                    await self._apply_through_outages([event], error=repr(exc)[:2000])
                    return
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))
