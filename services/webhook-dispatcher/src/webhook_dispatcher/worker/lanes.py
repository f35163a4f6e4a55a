"""Per-endpoint lanes: each endpoint's bounded in-memory queue, concurrency cap and rate limit.

Isolation: the HTTP connector has no global limit, so a slow or dead endpoint only ever fills its own
lane; what does not fit stays in the database for the poller. A lane ends when its endpoint goes idle.
The lanes know nothing of the rest of the worker: what they need from it comes as `LaneHooks`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from webhook_dispatcher import metrics
from webhook_dispatcher.worker.jobs import Job


@dataclass(frozen=True)
class LaneHooks:
    cap: Callable[[uuid.UUID], int]  # the endpoint's concurrency cap now
    rate: Callable[[uuid.UUID], float | None]  # its rate limit (attempts per second), if any
    holds: Callable[[uuid.UUID], bool]  # this replica surely owns the endpoint
    start: Callable[[Job, Callable[[], None]], None]  # begin an attempt; the callable frees its slot
    hand_back: Callable[[list[Job]], None]  # give leased jobs back to the database (other replicas' too)
    want_more: Callable[[], None]  # wake the poller: a lane has room for what waits in the database


class TokenBucket:
    """An endpoint's rate limit. Kept by `Lanes`, not the lane: a lane ends whenever its endpoint goes
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
    """One endpoint's in-memory queue and concurrency cap."""

    def __init__(self, endpoint_id: uuid.UUID, queue_size: int, hooks: LaneHooks, bucket: TokenBucket,
                 on_end: Callable[[Lane], None]) -> None:
        self.endpoint_id = endpoint_id
        self.queue_size = queue_size
        self.hooks = hooks
        self.bucket = bucket
        self.on_end = on_end
        self.queue: deque[Job] = deque()
        self.in_flight = 0
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.overflowed = False

    def free(self) -> int:
        return self.queue_size - len(self.queue)

    def offer(self, job: Job) -> bool:
        if len(self.queue) >= self.queue_size:
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

    async def run(self) -> None:
        hooks = self.hooks
        try:
            while True:
                self.wakeup.clear()
                while self.queue:
                    if self.in_flight >= hooks.cap(self.endpoint_id):
                        break
                    if not hooks.holds(self.endpoint_id):
                        # Not (or no longer surely) ours: another replica may be sending to it. Its
                        # owner's poller takes the rest.
                        hooks.hand_back(self.drain())
                        break
                    rate = hooks.rate(self.endpoint_id)
                    if rate:
                        await self.bucket.take(rate)
                        if not self.queue:
                            break
                    job = self.queue.popleft()
                    metrics.QUEUED.dec()
                    if self.overflowed and len(self.queue) <= self.queue_size // 2:
                        self.overflowed = False
                        hooks.want_more()
                    self.in_flight += 1
                    hooks.start(job, self.attempt_done)
                if not self.queue and self.in_flight == 0:
                    if self.overflowed:
                        hooks.want_more()
                    return
                await self.wakeup.wait()
        finally:
            self.on_end(self)

    def attempt_done(self) -> None:
        self.in_flight -= 1
        self.wakeup.set()


class Lanes:
    """The lanes of the endpoints with work in this replica."""

    def __init__(self, queue_size: int, hooks: LaneHooks, requeue: Callable[[list[Job]], None]) -> None:
        self.queue_size = queue_size
        self.hooks = hooks
        self.requeue = requeue  # what a lane still held when it ended (none expected) goes back in
        self._lanes: dict[uuid.UUID, Lane] = {}
        self._buckets: dict[uuid.UUID, TokenBucket] = {}  # rate limits outlive lanes (one per endpoint)

    def get(self, endpoint_id: uuid.UUID) -> Lane | None:
        return self._lanes.get(endpoint_id)

    def endpoints(self) -> set[uuid.UUID]:
        return set(self._lanes)

    def open(self, endpoint_id: uuid.UUID) -> Lane:
        """The endpoint's lane, made if it has none (its task starts with the first offer)."""
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            bucket = self._buckets.get(endpoint_id)
            if bucket is None:
                bucket = self._buckets[endpoint_id] = TokenBucket(asyncio.get_running_loop().time())
            lane = self._lanes[endpoint_id] = Lane(endpoint_id, self.queue_size, self.hooks, bucket, self._ended)
        return lane

    def offer(self, job: Job) -> bool:
        lane = self.open(job.endpoint_id)
        if not lane.offer(job):
            return False
        if lane.task is None:
            lane.task = asyncio.create_task(lane.run(), name=f"webhook-lane-{job.endpoint_id}")
        return True

    def _ended(self, lane: Lane) -> None:
        if self._lanes.get(lane.endpoint_id) is lane:
            del self._lanes[lane.endpoint_id]
        # Anything offered after the last check (none expected: no await in between) is not lost.
        if lane.queue:
            self.requeue(lane.drain())

    def room(self) -> dict[uuid.UUID, int]:
        """Free places in each lane (an endpoint without a lane has the whole queue)."""
        return {endpoint_id: max(0, lane.free()) for endpoint_id, lane in self._lanes.items()}

    def short_of(self, share: int) -> list[uuid.UUID]:
        """Endpoints whose lane has no room for `share` more (a claim for them would be handed back)."""
        return [endpoint_id for endpoint_id, lane in self._lanes.items() if lane.free() < share]

    def park(self, endpoint_ids: Iterable[uuid.UUID]) -> bool:
        """New deliveries of these endpoints wait in the database (their lane was full, or they are
        ordered): a lane still more than half full wakes the poller once it has drained to half. True
        when one of them is past that point (drained, no lane, ordered, no longer ours): look now."""
        look_now = False
        for endpoint_id in endpoint_ids:
            lane = self._lanes.get(endpoint_id)
            if (lane is None or not self.hooks.holds(endpoint_id)
                    or len(lane.queue) <= self.queue_size // 2):
                look_now = True
            else:
                lane.overflowed = True
        return look_now

    def drain(self, endpoint_ids: Iterable[uuid.UUID] | None = None) -> list[Job]:
        """Empty these lanes (all when None): the jobs they held, not started."""
        ids = list(self._lanes) if endpoint_ids is None else list(endpoint_ids)
        return [job for e in ids if (lane := self._lanes.get(e)) is not None for job in lane.drain()]
