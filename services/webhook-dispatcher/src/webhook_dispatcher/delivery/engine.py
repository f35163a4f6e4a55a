"""The in-process delivery engine: lanes per endpoint, a DB poller, and a batching recorder.

Flow
    consumer batch (one transaction with the inbox) inserts deliveries already leased to this
    replica -> after the commit they are offered to their endpoint's `Lane` -> an attempt is made
    right away -> the `Recorder` commits the attempt and the delivery's new state -> a short retry
    waits in memory holding the lease, a long one is left to the poller.
    The poller (any replica) claims due rows `FOR UPDATE SKIP LOCKED` and leases them: retries,
    replays, rows left behind by a crashed replica (lease expired), and the overflow of full lanes.

Isolation: each endpoint has its own bounded queue and concurrency cap (and optional rate limit);
the HTTP connector has no global limit, so a slow or dead endpoint only ever fills its own lane.
What does not fit in a lane stays in the database for the poller. One replica at a time owns an
endpoint (see `ownership`), so its cap and rate limit hold however many replicas run.

Exactly-once per endpoint as far as the subscriber can tell: a delivery is attempted only by the
replica holding its lease; a lease is renewed before an attempt that could outlive it; the outcome
is recorded right after the answer. Only a crash between the answer and the record (or an attempt
cut by the shutdown grace) can repeat an attempt, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from common.crypto import SecretBox
from common.db import Database
from common.observability.tracing import spans_recorded
from webhook_dispatcher import metrics
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.messages import attempt_span, build_headers
from webhook_dispatcher.delivery.ownership import Ownership
from webhook_dispatcher.delivery.registry import EndpointConfig, EndpointRegistry
from webhook_dispatcher.delivery.repository import DUE_CHANNEL, ClaimedDelivery, DeliveryRepository
from webhook_dispatcher.delivery.retries import Decision, decide
from webhook_dispatcher.delivery.transport import AttemptResult, WebhookTransport
from webhook_dispatcher.endpoint.repository import EndpointRepository
from webhook_dispatcher.events import outbox
from webhook_dispatcher.models import DeliveryStatus, EndpointKind, EndpointStatus

logger = logging.getLogger("webhook_dispatcher.engine")

LEASE_MARGIN = 5.0  # seconds kept between the end of an attempt and the end of its lease


@dataclass
class Job:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: bytes
    occurred_at: datetime | None
    traceparent: str | None
    tracestate: str | None
    attempts: int  # made so far, in total
    cycle_attempts: int  # made so far in this retry cycle
    lease_deadline: float  # loop.time() at which our lease on the row ends (conservative)

    @classmethod
    def from_claim(cls, row: ClaimedDelivery, lease_deadline: float) -> Job:
        return cls(row.id, row.endpoint_id, row.event_id, row.event_type, row.body.encode(), row.occurred_at,
                   row.traceparent, row.tracestate, row.attempts, row.cycle_attempts, lease_deadline)


@dataclass
class _Record:
    job: Job
    config: EndpointConfig
    result: AttemptResult
    decision: Decision
    keep_lease: bool
    future: asyncio.Future[None] = field(repr=False, default=None)  # type: ignore[assignment]


class TokenBucket:
    """An endpoint's rate limit. Kept by the engine, not the lane: a lane ends whenever its endpoint goes
    idle, and a bucket that started full again with every new lane would not pace sparse bursts."""

    def __init__(self, now: float) -> None:
        self.tokens = 1.0
        self.last_refill = now

    async def take(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        burst = max(1.0, rate)
        while True:
            now = loop.time()
            self.tokens = min(burst, self.tokens + (now - self.last_refill) * rate)
            self.last_refill = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / rate)


class Lane:
    """One endpoint's in-memory queue and concurrency cap; its rate limit is the engine's bucket."""

    def __init__(self, engine: DeliveryEngine, endpoint_id: uuid.UUID) -> None:
        self.engine = engine
        self.endpoint_id = endpoint_id
        self.queue: deque[Job] = deque()
        self.in_flight = 0
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.overflowed = False

    def free(self) -> int:
        return self.engine.settings.webhook_queue_size - len(self.queue)

    def offer(self, job: Job) -> bool:
        if len(self.queue) >= self.engine.settings.webhook_queue_size:
            self.overflowed = True  # the rest waits in the database: ask the poller once there is room
            return False
        self.queue.append(job)
        metrics.QUEUED.inc()
        self.wakeup.set()
        return True

    def drain(self) -> list[Job]:
        jobs = list(self.queue)
        self.queue.clear()
        metrics.QUEUED.dec(len(jobs))
        self.wakeup.set()
        return jobs

    async def _throttle(self, rate: float) -> None:
        bucket = self.engine.buckets.get(self.endpoint_id)
        if bucket is None:
            bucket = self.engine.buckets[self.endpoint_id] = TokenBucket(asyncio.get_running_loop().time())
        await bucket.take(rate)

    async def run(self) -> None:
        try:
            while True:
                self.wakeup.clear()
                while self.queue:
                    config = self.engine.registry.cached(self.endpoint_id)
                    cap = config.max_concurrency if config else self.engine.settings.webhook_default_max_concurrency
                    if self.in_flight >= cap:
                        break
                    if not self.engine.ownership.holds(self.endpoint_id):
                        # Not (or no longer surely) ours: another replica may be sending to it. Its
                        # owner's poller takes the rest.
                        self.engine._in_background(self.engine._release(self.drain(), notify=True))
                        break
                    if config is not None and config.rate_limit_per_second:
                        await self._throttle(config.rate_limit_per_second)
                        if not self.queue:
                            break
                    job = self.queue.popleft()
                    metrics.QUEUED.dec()
                    if self.overflowed and len(self.queue) <= self.engine.settings.webhook_queue_size // 2:
                        self.overflowed = False
                        self.engine.wake()
                    self.in_flight += 1
                    self.engine._start_attempt(job, self)
                if not self.queue and self.in_flight == 0:
                    if self.overflowed:
                        self.engine.wake()
                    return
                await self.wakeup.wait()
        finally:
            if self.engine.lanes.get(self.endpoint_id) is self:
                del self.engine.lanes[self.endpoint_id]
            # Anything offered after the last check (none expected: no await in between) is not lost.
            if self.queue:
                self.engine._requeue(self.drain())

    def attempt_done(self) -> None:
        self.in_flight -= 1
        self.wakeup.set()


class Recorder:
    """Commits finished attempts in batches: whatever finished while the previous commit ran."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self.engine = engine
        self.pending: list[_Record] = []
        self.wakeup = asyncio.Event()

    async def record(self, record: _Record) -> None:
        record.future = asyncio.get_running_loop().create_future()
        self.pending.append(record)
        self.wakeup.set()
        await asyncio.shield(record.future)

    async def run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending:
                batch, self.pending = self.pending, []
                await self._commit(batch)

    async def _commit(self, batch: list[_Record]) -> None:
        try:
            await self.engine._flush(batch)
        except Exception as exc:
            if len(batch) > 1:
                # One bad record must not take the others down: record them one by one.
                for r in batch:
                    await self._commit([r])
                return
            logger.exception("recording the attempt of delivery %s failed", batch[0].job.delivery_id)
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
                batch[0].future.exception()
        else:
            for r in batch:
                if not r.future.done():
                    r.future.set_result(None)


class DeliveryEngine:
    def __init__(self, settings: Settings, database: Database, *, transport: WebhookTransport | None = None,
                 registry: EndpointRegistry | None = None) -> None:
        self.settings = settings
        self.database = database
        self.owner = uuid.uuid4()  # this replica's lease identity
        self.box = SecretBox(settings.secrets_encryption_keys)
        self.transport = transport or WebhookTransport(settings)
        self.registry = registry or EndpointRegistry(
            database, self.box, refresh_seconds=settings.webhook_endpoint_refresh_seconds,
            channels={DUE_CHANNEL: lambda _: self.wake()}, on_change=self.wake)
        self.recorder = Recorder(self)
        self.ownership = Ownership(database, self.owner, settings.webhook_owner_lease_seconds)
        self.lanes: dict[uuid.UUID, Lane] = {}
        self.buckets: dict[uuid.UUID, TokenBucket] = {}  # rate limits outlive lanes (one per endpoint)
        self.accepting = False
        self._poll_wake = asyncio.Event()
        self._attempts: set[asyncio.Task[None]] = set()
        self._attempting: Counter[uuid.UUID] = Counter()  # endpoint -> attempts not yet recorded
        self._timers: dict[uuid.UUID, tuple[asyncio.TimerHandle, Job]] = {}
        # Deliveries this replica holds (queued, in flight, waiting for a local retry): a claim that
        # returns one of them again (its lease ran out while queued) must not make a second copy.
        self._held: set[uuid.UUID] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.accepting = True
        for coro, name in ((self.registry.run(), "webhook-registry"), (self.recorder.run(), "webhook-recorder"),
                           (self._poll_loop(), "webhook-poller"), (self._maintenance_loop(), "webhook-maintenance"),
                           (self._ownership_loop(), "webhook-ownership")):
            self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give back what is queued, let in-flight attempts finish (bounded), record them."""
        grace = self.settings.webhook_shutdown_grace_seconds if grace is None else grace
        self.accepting = False
        poller = [t for t in self._tasks if t.get_name() in ("webhook-poller", "webhook-maintenance")]
        for task in poller:
            task.cancel()
        await asyncio.gather(*poller, return_exceptions=True)
        queued = [job for lane in list(self.lanes.values()) for job in lane.drain()]
        for handle, job in self._timers.values():
            handle.cancel()
            queued.append(job)
        self._timers.clear()
        with contextlib.suppress(Exception):
            await self._release(queued, notify=True)  # another replica may take them now
        if self._attempts:
            done, pending = await asyncio.wait(set(self._attempts), timeout=grace)
            for task in pending:
                task.cancel()  # not recorded: its lease runs out and another replica retries it
            if pending:
                logger.warning("shutdown: %d attempts cut after %.0f s", len(pending), grace)
                await asyncio.gather(*pending, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.ownership.release_all()  # the other replicas need not wait for the leases to end
        await self.transport.close()

    def wake(self) -> None:
        self._poll_wake.set()

    async def check_ready(self) -> None:
        """Readiness: taking work, and listening for endpoint changes (its cache is current)."""
        if not self.accepting:
            raise RuntimeError("the delivery engine is not running")
        if not self.registry.listening.is_set():
            raise RuntimeError("not listening for endpoint changes yet")

    # --- intake --------------------------------------------------------------------------------
    def offer(self, job: Job) -> bool:
        if not self.accepting:
            return False
        if job.delivery_id in self._held:
            return True  # already ours (queued or in flight); the fresh lease only extends it
        if not self.ownership.holds(job.endpoint_id):
            return False
        lane = self.lanes.get(job.endpoint_id)
        if lane is None:
            lane = self.lanes[job.endpoint_id] = Lane(self, job.endpoint_id)
        if not lane.offer(job):
            return False
        self._held.add(job.delivery_id)
        if lane.task is None:
            lane.task = asyncio.create_task(lane.run(), name=f"webhook-lane-{job.endpoint_id}")
        return True

    def room(self) -> dict[uuid.UUID, int]:
        """Free places in each lane (an endpoint without a lane has the whole queue)."""
        return {endpoint_id: max(0, lane.free()) for endpoint_id, lane in self.lanes.items()}

    def park(self, endpoint_ids: set[uuid.UUID]) -> bool:
        """New deliveries of these endpoints wait in the database (their lane was full, or they are
        ordered): a lane still more than half full wakes the poller once it has drained to half. True
        when one of them is past that point (drained, no lane, ordered, no longer ours): look now."""
        look_now = False
        for endpoint_id in endpoint_ids:
            lane = self.lanes.get(endpoint_id)
            if (lane is None or not self.ownership.holds(endpoint_id)
                    or len(lane.queue) <= self.settings.webhook_queue_size // 2):
                look_now = True
            else:
                lane.overflowed = True
        return look_now

    async def accept(self, jobs: list[Job], *, wake: bool = False) -> None:
        """After a consumer commit: attempt now what fits, give the rest back to the poller (ours, or the
        replica that owns their endpoint)."""
        foreign = await self._take_ownership(jobs)
        overflow = [job for job in jobs if job.endpoint_id not in foreign and not self.offer(job)]
        await self._release(overflow)
        await self._release([job for job in jobs if job.endpoint_id in foreign], notify=True)
        if wake:
            self.wake()

    async def _take_ownership(self, jobs: list[Job]) -> set[uuid.UUID]:
        """The endpoints of these jobs that another replica owns (the others are now ours)."""
        wanted = {job.endpoint_id for job in jobs}
        if not self.accepting or not wanted:
            return set()
        try:
            return wanted - await self.ownership.acquire(wanted)
        except Exception:
            # Unknown who owns them: hand them to whichever poller gets there first (the claim settles it).
            logger.exception("taking ownership of %d endpoint(s) failed", len(wanted))
            return {e for e in wanted if not self.ownership.holds(e)}

    def _requeue(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._held.discard(job.delivery_id)
        overflow = [job for job in jobs if not self.offer(job)]
        if overflow:
            self._in_background(self._release(overflow, notify=True))

    def _in_background(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, jobs: list[Job], *, notify: bool = False) -> None:
        """Give leased rows back; `notify` wakes every replica's poller (for work another one owns)."""
        if not jobs:
            return
        for job in jobs:
            self._held.discard(job.delivery_id)
        async with self.database.engine.begin() as conn:
            repo = DeliveryRepository(conn)
            await repo.release([j.delivery_id for j in jobs], self.owner)
            if notify:
                await repo.notify_due()
        self.wake()

    # --- poller --------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        await self.registry.listening.wait()
        while True:
            self._poll_wake.clear()
            try:
                claimed = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("polling for due deliveries failed")
                claimed = 0
            if claimed:
                continue  # there may be more due right now (each claim is capped per endpoint)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_wake.wait(), self.settings.webhook_poll_interval_seconds)

    async def poll_once(self) -> int:
        if not self.accepting:
            return 0
        # A lane without room for a full share is skipped (its overflow would be given straight back);
        # it wakes the poller when it has drained to half.
        per_endpoint = max(1, min(self.settings.webhook_queue_size // 2, 200))
        busy = [endpoint_id for endpoint_id, lane in self.lanes.items() if lane.free() < per_endpoint]
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self.database.engine.begin() as conn:
            rows = await DeliveryRepository(conn).claim_due(
                owner=self.owner, lease=self.settings.webhook_lease_seconds, per_endpoint=per_endpoint,
                limit=self.settings.webhook_poll_batch, busy=busy)
        deadline = started + self.settings.webhook_lease_seconds
        jobs = [Job.from_claim(r, deadline) for r in rows]
        foreign = await self._take_ownership(jobs)  # the claim skipped owned endpoints; this settles races
        overflow = [job for job in jobs if job.endpoint_id not in foreign and not self.offer(job)]
        await self._release(overflow)
        await self._release([job for job in jobs if job.endpoint_id in foreign], notify=True)
        return len(rows)

    # --- attempts ------------------------------------------------------------------------------
    def _start_attempt(self, job: Job, lane: Lane) -> None:
        released = False

        def release_slot() -> None:
            # The lane's slot is for the request to the subscriber: it is freed as soon as the answer is
            # in, while the attempt is still being recorded.
            nonlocal released
            if not released:
                released = True
                metrics.IN_FLIGHT.dec()
                lane.attempt_done()

        task = asyncio.create_task(self._attempt(job, release_slot), name=f"webhook-attempt-{job.delivery_id}")
        self._attempts.add(task)
        self._attempting[job.endpoint_id] += 1
        metrics.IN_FLIGHT.inc()

        def done(t: asyncio.Task[None]) -> None:
            self._attempts.discard(t)
            self._attempting[job.endpoint_id] -= 1
            if self._attempting[job.endpoint_id] <= 0:
                del self._attempting[job.endpoint_id]
            release_slot()

        task.add_done_callback(done)

    async def _attempt(self, job: Job, on_answer: Callable[[], None]) -> None:
        try:
            await self.deliver(job, on_answer=on_answer)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left leased: when the lease runs out the poller (of any replica) tries again.
            logger.exception("delivery %s to endpoint %s failed unexpectedly", job.delivery_id, job.endpoint_id)
        finally:
            if job.delivery_id not in self._timers:
                self._held.discard(job.delivery_id)

    async def deliver(self, job: Job, *, on_answer: Callable[[], None] | None = None) -> None:
        config = await self.registry.get(job.endpoint_id)
        if config is None or not config.active:
            await self._release([job])  # paused/disabled/deleted meanwhile: the row waits (or is final)
            return
        loop = asyncio.get_running_loop()
        timeout = self.settings.webhook_timeout_seconds
        if loop.time() > job.lease_deadline - timeout - LEASE_MARGIN:
            renewed_at = loop.time()
            async with self.database.engine.begin() as conn:
                ok = await DeliveryRepository(conn).renew_lease(job.delivery_id, self.owner,
                                                                self.settings.webhook_lease_seconds)
            if not ok:
                return  # another replica took it (or it was finished meanwhile)
            job.lease_deadline = renewed_at + self.settings.webhook_lease_seconds
        msg_id = str(job.event_id)
        recording = spans_recorded()  # else no SDK span per attempt: only the trace ids travel on
        with (attempt_span(job.event_type, str(job.endpoint_id), job.traceparent, job.tracestate) if recording
              else contextlib.nullcontext()) as span:
            headers = build_headers(msg_id, job.body, config.signing_keys(), user_agent=self.settings.webhook_user_agent,
                                    parent=None if recording else (job.traceparent, job.tracestate))
            result = await self.transport.post(config.url, job.body, headers, trusted=config.trusted)
            if on_answer is not None:
                on_answer()
            if span is not None:
                span.set_attribute("http.response.status_code", result.status_code or 0)
                if result.error_class:
                    span.set_attribute("error.type", result.error_class)
        cycle = job.cycle_attempts + 1
        decision = decide(result, cycle, self.settings.retry_schedule, jitter=self.settings.webhook_retry_jitter,
                          retry_after_max=self.settings.webhook_retry_after_max_seconds,
                          gone_is_final=config.kind != EndpointKind.N8N_FLOW)
        keep_lease = (decision.status == DeliveryStatus.PENDING and self.accepting
                      and (decision.delay or 0.0) <= self.settings.webhook_local_retry_max_seconds)
        recorded_at = loop.time()
        await self.recorder.record(_Record(job, config, result, decision, keep_lease))
        self._observe(job, result, decision)
        if config.ordered and decision.status != DeliveryStatus.PENDING:
            self.wake()  # the next event of this aggregate is due now
        if keep_lease and decision.delay is not None:
            job.attempts += 1
            job.cycle_attempts = cycle
            job.lease_deadline = recorded_at + decision.delay + self.settings.webhook_lease_seconds
            handle = loop.call_later(decision.delay, self._retry_due, job.delivery_id)
            self._timers[job.delivery_id] = (handle, job)

    def _retry_due(self, delivery_id: uuid.UUID) -> None:
        entry = self._timers.pop(delivery_id, None)
        if entry is not None:
            self._requeue([entry[1]])

    def _observe(self, job: Job, result: AttemptResult, decision: Decision) -> None:
        metrics.ATTEMPTS.labels("success" if result.success else (result.error_class or "http")).inc()
        metrics.ATTEMPT_DURATION.observe(result.duration_ms / 1000.0)
        if decision.status == DeliveryStatus.SUCCEEDED:
            metrics.DELIVERIES.labels("succeeded").inc()
            if job.occurred_at is not None:
                metrics.DELIVERY_LATENCY.observe(max(0.0, (datetime.now(UTC) - job.occurred_at).total_seconds()))
        elif decision.status == DeliveryStatus.FAILED:
            metrics.DELIVERIES.labels("failed").inc()
        else:
            metrics.DELIVERIES.labels("retry_scheduled").inc()

    # --- recording -----------------------------------------------------------------------------
    async def _flush(self, batch: list[_Record]) -> None:
        attempts = []
        succeeded: set[uuid.UUID] = set()
        failed: set[uuid.UUID] = set()
        gone: set[uuid.UUID] = set()
        for r in batch:
            res = r.result
            attempts.append({
                "id": uuid.uuid4(), "delivery_id": r.job.delivery_id, "endpoint_id": r.job.endpoint_id,
                "number": r.job.attempts + 1, "started_at": res.started_at, "duration_ms": res.duration_ms,
                "url": r.config.url[:2048], "target_ip": res.target_ip,
                "request_headers": orjson.dumps(res.request_headers).decode(), "status_code": res.status_code,
                "response_headers": None if res.response_headers is None else orjson.dumps(res.response_headers).decode(),
                "response_body": res.response_body, "success": res.success, "error_class": res.error_class,
                "error": (res.error or None) and res.error[:1000],
                # the delivery's new state
                "status": r.decision.status.value, "delay": r.decision.delay or 0.0, "keep_lease": r.keep_lease,
                "outcome_error": res.describe()[:1000] if not res.success else None,
            })
            if res.success:
                succeeded.add(r.job.endpoint_id)
            elif r.decision.disable_endpoint:
                gone.add(r.job.endpoint_id)
            else:
                failed.add(r.job.endpoint_id)
        disabled: list[uuid.UUID] = []
        marked: list[uuid.UUID] = []
        recovering = [e for e in succeeded if self.registry.failing(e)]
        still_failing = failed - succeeded - gone
        if not (gone or still_failing or recovering):
            # The usual batch changes no endpoint: one statement, committing by itself (no BEGIN/COMMIT).
            async with self.database.autocommit.connect() as conn:
                await DeliveryRepository(conn).record(attempts, owner=self.owner,
                                                      lease=self.settings.webhook_lease_seconds)
            return
        # Core connection, not an ORM session: this runs once per batch of attempts (ARCHITECTURE §8).
        async with self.database.engine.begin() as conn:
            await DeliveryRepository(conn).record(attempts, owner=self.owner,
                                                  lease=self.settings.webhook_lease_seconds)
            endpoints = EndpointRepository(conn)
            to_disable: dict[uuid.UUID, tuple[str, str, datetime | None]] = {}
            for endpoint_id in gone:
                to_disable[endpoint_id] = ("gone", "the endpoint answered 410 Gone", None)
            if still_failing:
                threshold = datetime.now(UTC) - timedelta(seconds=self.settings.webhook_disable_after_seconds)
                for row in await endpoints.mark_failing(sorted(still_failing)):
                    marked.append(row.id)
                    if row.failing_since is not None and row.failing_since <= threshold:
                        to_disable[row.id] = ("failing", "every delivery failed since "
                                              f"{row.failing_since.isoformat()}", row.failing_since)
            if recovering:
                await endpoints.clear_failing(sorted(recovering))
            for endpoint_id, (kind, reason, failing_since) in to_disable.items():
                endpoint = await endpoints.disable(endpoint_id, reason)
                if endpoint is None:
                    continue
                disabled.append(endpoint_id)
                metrics.ENDPOINTS_DISABLED.labels(kind).inc()
                await outbox.publish(conn, "webhook.endpoint.disabled", {  # type: ignore[arg-type]
                    "endpointId": endpoint_id, "url": endpoint.url, "status": EndpointStatus.DISABLED.value,
                    "reason": reason, "failingSince": failing_since or endpoint.failing_since,
                }, key=endpoint_id)
        self.registry.set_failing(marked, True)
        self.registry.set_failing(recovering, False)
        for endpoint_id in disabled:
            logger.warning("endpoint %s disabled: %s", endpoint_id, to_disable[endpoint_id][1])
            self.registry.set_status(endpoint_id, EndpointStatus.DISABLED)
            lane = self.lanes.get(endpoint_id)
            if lane is not None:
                for job in lane.drain():  # their rows were just marked FAILED
                    self._held.discard(job.delivery_id)
            for delivery_id, (handle, job) in list(self._timers.items()):
                if job.endpoint_id == endpoint_id:
                    handle.cancel()
                    del self._timers[delivery_id]
                    self._held.discard(delivery_id)

    # --- ownership -----------------------------------------------------------------------------
    async def _ownership_loop(self) -> None:
        """Renew the endpoints with work here, give up the idle ones; hand back what was taken over."""
        while True:
            await asyncio.sleep(self.settings.webhook_owner_lease_seconds / 3)
            try:
                lost = await self.ownership.renew(self._busy_endpoints)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("renewing endpoint ownership failed")
                continue
            finally:
                metrics.OWNED.set(len(self.ownership.owned))
            if lost:
                await self._give_back(lost)

    def _busy_endpoints(self) -> set[uuid.UUID]:
        """Endpoints with work here: queued, in flight or being recorded, or waiting for a local retry."""
        return set(self.lanes) | set(self._attempting) | {job.endpoint_id for _, job in self._timers.values()}

    async def _give_back(self, endpoint_ids: set[uuid.UUID]) -> None:
        jobs = [job for e in endpoint_ids if (lane := self.lanes.get(e)) is not None for job in lane.drain()]
        for delivery_id, (handle, job) in list(self._timers.items()):
            if job.endpoint_id in endpoint_ids:
                handle.cancel()
                del self._timers[delivery_id]
                jobs.append(job)
        if jobs:
            logger.warning("not the owner of %d endpoint(s) any more (this replica stalled?): %d deliveries "
                           "handed back", len(endpoint_ids), len(jobs))
            await self._release(jobs, notify=True)

    # --- housekeeping --------------------------------------------------------------------------
    async def _maintenance_loop(self) -> None:
        from webhook_dispatcher.delivery.maintenance import run_maintenance

        await run_maintenance(self)
