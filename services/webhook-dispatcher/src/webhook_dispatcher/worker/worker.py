"""The delivery worker: joins the lanes, the poller, the recorder, endpoint ownership and housekeeping.

Flow
    consumer batch (one statement with the inbox) inserts deliveries already leased to this replica
    -> after the commit they are offered to their endpoint's lane (`lanes`) -> an attempt is made right
    away -> the `recorder` commits the attempt and the delivery's new state (and the endpoint's health)
    -> a short retry waits in memory holding the lease, a long one is left to the `poller`.
    One replica at a time owns an endpoint (`ownership`), so its cap and rate limit hold however many
    replicas run. The parts know each other only through the callbacks given here.

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
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from common.crypto import SecretBox
from common.db import Database
from common.observability.tracing import spans_recorded
from common.supervise import every, supervise
from webhook_dispatcher import metrics
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DUE_CHANNEL, DeliveryRepository
from webhook_dispatcher.models import DeliveryStatus, EndpointKind, EndpointStatus
from webhook_dispatcher.outbound.messages import attempt_span, build_headers
from webhook_dispatcher.outbound.transport import AttemptResult, WebhookTransport
from webhook_dispatcher.worker import maintenance, replica
from webhook_dispatcher.worker.jobs import LEASE_MARGIN, Job
from webhook_dispatcher.worker.lanes import LaneHooks, Lanes
from webhook_dispatcher.worker.ownership import Ownership
from webhook_dispatcher.worker.poller import Poller
from webhook_dispatcher.worker.recorder import Record, Recorder, write_batch
from webhook_dispatcher.worker.registry import EndpointRegistry
from webhook_dispatcher.worker.retries import Decision, decide

logger = logging.getLogger("webhook_dispatcher.worker")


class DeliveryWorker:
    def __init__(self, settings: Settings, database: Database, *, box: SecretBox | None = None,
                 transport: WebhookTransport | None = None) -> None:
        self.settings = settings
        self.database = database
        self.owner = replica.identity(settings.webhook_replica_id)  # this replica's lease identity
        self._own_transport = transport is None  # a shared transport is closed by whoever made it
        self.transport = transport or WebhookTransport(settings)
        self.registry = EndpointRegistry(
            database, box or SecretBox(settings.secrets_encryption_keys),
            refresh_seconds=settings.webhook_endpoint_refresh_seconds,
            channels={DUE_CHANNEL: lambda _: self.poller.wake()}, on_change=self.wake)
        self.ownership = Ownership(database, self.owner, settings.webhook_owner_lease_seconds)
        self.lanes = Lanes(settings.webhook_queue_size, LaneHooks(
            cap=self._cap, rate=self._rate, holds=self.ownership.holds, start=self._start_attempt,
            hand_back=lambda jobs: self._in_background(self._release(jobs, notify=True)), want_more=self.wake,
        ), requeue=self._requeue)
        self.poller = Poller(database, settings, self.owner, short_of=self.lanes.short_of,
                             hand_over=self.accept, accepting=lambda: self.accepting)
        self.recorder = Recorder(self._commit)
        self.accepting = False
        self._attempts: set[asyncio.Task[None]] = set()
        self._attempting: Counter[uuid.UUID] = Counter()  # endpoint -> attempts not yet recorded
        self._timers: dict[uuid.UUID, tuple[asyncio.TimerHandle, Job]] = {}
        # Deliveries this replica holds (queued, in flight, waiting for a local retry): a claim that
        # returns one of them again (its lease ran out while queued) must not make a second copy.
        self._held: set[uuid.UUID] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        if s.webhook_replica_id:
            # Before taking any work: every lease under our identity now is a dead predecessor's.
            try:
                await replica.take_back(self.database, self.owner)
            except Exception:
                logger.exception("taking back the leases of replica %r failed: they are retaken when they end",
                                 s.webhook_replica_id)
        self.accepting = True
        jobs: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
            "webhook-registry": self.registry.listen,
            "webhook-recorder": self.recorder.run,
            "webhook-poller": lambda: self.poller.run(self.registry.listening),
            "webhook-gauges": lambda: every(s.webhook_maintenance_interval_seconds,
                                            lambda: maintenance.refresh_gauges(self.database), first=0),
            "webhook-purge": lambda: every(s.webhook_purge_interval_seconds,
                                           lambda: maintenance.purge(self.database, s),
                                           first=min(maintenance.FIRST_PURGE_AFTER, s.webhook_purge_interval_seconds)),
            "webhook-ownership": lambda: self.ownership.keep(self._busy_endpoints, self._give_back),
        }
        for name, job in jobs.items():
            # A failing poll or listener is retried within seconds, not after a long backoff.
            self._tasks[name] = asyncio.create_task(supervise(name, job, max_delay=5.0), name=name)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give back what is queued, let in-flight attempts finish (bounded), record them."""
        grace = self.settings.webhook_shutdown_grace_seconds if grace is None else grace
        self.accepting = False
        intake = [self._tasks.pop(n) for n in ("webhook-poller", "webhook-gauges", "webhook-purge") if n in self._tasks]
        for task in intake:
            task.cancel()
        await asyncio.gather(*intake, return_exceptions=True)
        queued = self.lanes.drain()
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
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.ownership.release_all()  # the other replicas need not wait for the leases to end
        if self._own_transport:
            await self.transport.close()

    def wake(self) -> None:
        self.poller.wake()

    async def check_ready(self) -> None:
        """Readiness: taking work, and listening for endpoint changes (its cache is current)."""
        if not self.accepting:
            raise RuntimeError("the delivery worker is not running")
        if not self.registry.listening.is_set():
            raise RuntimeError("not listening for endpoint changes yet")

    # --- intake --------------------------------------------------------------------------------
    def offer(self, job: Job) -> bool:
        if not self.accepting:
            return False
        if job.delivery_id in self._held:
            return True  # already ours (queued or in flight); the fresh lease only extends it
        if not self.ownership.holds(job.endpoint_id) or not self.lanes.offer(job):
            return False
        self._held.add(job.delivery_id)
        return True

    async def accept(self, jobs: list[Job], *, wake: bool = False) -> None:
        """Leased jobs (a consumer commit, a claim): attempt now what fits, give the rest back to the
        poller (ours, or the replica that owns their endpoint)."""
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

    def _cap(self, endpoint_id: uuid.UUID) -> int:
        config = self.registry.cached(endpoint_id)
        return config.max_concurrency if config else self.settings.webhook_default_max_concurrency

    def _rate(self, endpoint_id: uuid.UUID) -> float | None:
        config = self.registry.cached(endpoint_id)
        return config.rate_limit_per_second if config else None

    def _requeue(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._held.discard(job.delivery_id)
        overflow = [job for job in jobs if not self.offer(job)]
        if overflow:
            self._in_background(self._release(overflow, notify=True))

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
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

    # --- attempts ------------------------------------------------------------------------------
    def _start_attempt(self, job: Job, free_slot: Callable[[], None]) -> None:
        released = False

        def release_slot() -> None:
            # The lane's slot is for the request to the subscriber: it is freed as soon as the answer is
            # in, while the attempt is still being recorded.
            nonlocal released
            if not released:
                released = True
                metrics.IN_FLIGHT.dec()
                free_slot()

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
        settings = self.settings
        if loop.time() > job.lease_deadline - settings.webhook_timeout_seconds - LEASE_MARGIN:
            renewed_at = loop.time()
            async with self.database.engine.begin() as conn:
                ok = await DeliveryRepository(conn).renew_lease(job.delivery_id, self.owner,
                                                                settings.webhook_lease_seconds)
            if not ok:
                return  # another replica took it (or it was finished meanwhile)
            job.lease_deadline = renewed_at + settings.webhook_lease_seconds
        recording = spans_recorded()  # else no SDK span per attempt: only the trace ids travel on
        with (attempt_span(job.event_type, str(job.endpoint_id), job.traceparent, job.tracestate) if recording
              else contextlib.nullcontext()) as span:
            headers = build_headers(str(job.event_id), job.body, config.signing_keys(),
                                    user_agent=settings.webhook_user_agent,
                                    parent=None if recording else (job.traceparent, job.tracestate))
            result = await self.transport.post(config.url, job.body, headers, trusted=config.trusted)
            if on_answer is not None:
                on_answer()
            if span is not None:
                span.set_attribute("http.response.status_code", result.status_code or 0)
                if result.error_class:
                    span.set_attribute("error.type", result.error_class)
        cycle = job.cycle_attempts + 1
        decision = decide(result, cycle, settings.retry_schedule, jitter=settings.webhook_retry_jitter,
                          retry_after_max=settings.webhook_retry_after_max_seconds,
                          gone_is_final=config.kind != EndpointKind.N8N_FLOW)
        keep_lease = (decision.status == DeliveryStatus.PENDING and self.accepting
                      and (decision.delay or 0.0) <= settings.webhook_local_retry_max_seconds)
        recorded_at = loop.time()
        await self.recorder.record(Record(job, config, result, decision, keep_lease))
        _observe(job, result, decision)
        if config.ordered and decision.status != DeliveryStatus.PENDING:
            self.wake()  # the next event of this aggregate is due now
        if keep_lease and decision.delay is not None:
            job.attempts += 1
            job.cycle_attempts = cycle
            job.lease_deadline = recorded_at + decision.delay + settings.webhook_lease_seconds
            handle = loop.call_later(decision.delay, self._retry_due, job.delivery_id)
            self._timers[job.delivery_id] = (handle, job)

    def _retry_due(self, delivery_id: uuid.UUID) -> None:
        entry = self._timers.pop(delivery_id, None)
        if entry is not None:
            self._requeue([entry[1]])

    # --- recording -----------------------------------------------------------------------------
    async def _commit(self, batch: list[Record]) -> None:
        change = await write_batch(self.database, batch, owner=self.owner, lease=self.settings.webhook_lease_seconds,
                                   disable_after_seconds=self.settings.webhook_disable_after_seconds,
                                   failing=self.registry.failing)
        if change is None:
            return
        self.registry.set_failing(change.failing, True)
        self.registry.set_failing(change.recovered, False)
        for endpoint_id in change.disabled:
            self.registry.set_status(endpoint_id, EndpointStatus.DISABLED)
            for job in self._take_work(endpoint_id):  # their rows were just marked FAILED
                self._held.discard(job.delivery_id)

    # --- ownership -----------------------------------------------------------------------------
    def _busy_endpoints(self) -> set[uuid.UUID]:
        """Endpoints with work here: queued, in flight or being recorded, or waiting for a local retry."""
        return self.lanes.endpoints() | set(self._attempting) | {job.endpoint_id for _, job in self._timers.values()}

    def _take_work(self, *endpoint_ids: uuid.UUID) -> list[Job]:
        """The jobs of these endpoints not started yet (queued, or waiting for a local retry), taken out."""
        wanted = set(endpoint_ids)
        jobs = self.lanes.drain(wanted)
        for delivery_id, (handle, job) in list(self._timers.items()):
            if job.endpoint_id in wanted:
                handle.cancel()
                del self._timers[delivery_id]
                jobs.append(job)
        return jobs

    async def _give_back(self, endpoint_ids: set[uuid.UUID]) -> None:
        jobs = self._take_work(*endpoint_ids)
        if jobs:
            logger.warning("not the owner of %d endpoint(s) any more (this replica stalled?): %d deliveries "
                           "handed back", len(endpoint_ids), len(jobs))
            await self._release(jobs, notify=True)


def _observe(job: Job, result: AttemptResult, decision: Decision) -> None:
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
