"""Recording finished attempts, in batches: whatever finished while the previous commit ran.

The usual batch (no endpoint's health changes) is ONE autocommit statement: the attempt rows and each
delivery's new state (`DeliveryRepository.record`). A batch that starts or stops an endpoint's failing
clock, or disables it, adds `webhook.health.update_health` in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.db import Database
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.outbound.transport import AttemptResult
from webhook_dispatcher.webhook.health import HealthChange, update_health
from webhook_dispatcher.worker.jobs import Job
from webhook_dispatcher.worker.registry import EndpointConfig
from webhook_dispatcher.worker.retries import Decision

logger = logging.getLogger("webhook_dispatcher.worker.recorder")


@dataclass
class Record:
    job: Job
    config: EndpointConfig
    result: AttemptResult
    decision: Decision
    keep_lease: bool
    future: asyncio.Future[None] = field(repr=False, default=None)  # type: ignore[assignment]

    def row(self) -> dict[str, Any]:
        """The attempt's columns, and the delivery's new state (see `DeliveryRepository.record`)."""
        res, job = self.result, self.job
        return {
            "id": uuid.uuid4(), "delivery_id": job.delivery_id, "endpoint_id": job.endpoint_id,
            "number": job.attempts + 1, "started_at": res.started_at, "duration_ms": res.duration_ms,
            "url": self.config.url[:2048], "target_ip": res.target_ip,
            "request_headers": orjson.dumps(res.request_headers).decode(), "status_code": res.status_code,
            "response_headers": None if res.response_headers is None else orjson.dumps(res.response_headers).decode(),
            "response_body": res.response_body, "success": res.success, "error_class": res.error_class,
            "error": (res.error or None) and res.error[:1000],
            "status": self.decision.status.value, "delay": self.decision.delay or 0.0, "keep_lease": self.keep_lease,
            "outcome_error": res.describe()[:1000] if not res.success else None,
        }


async def write_batch(database: Database, batch: list[Record], *, owner: uuid.UUID, lease: float,
                      disable_after_seconds: float, failing: Callable[[uuid.UUID], bool]) -> HealthChange | None:
    """Record a batch; returns the endpoints' health change, None when it changed nothing.

    `failing(endpoint)`: whether its failing clock may run (a success must then stop it)."""
    rows = [r.row() for r in batch]
    succeeded = {r.job.endpoint_id for r in batch if r.result.success}
    gone = {r.job.endpoint_id for r in batch if not r.result.success and r.decision.disable_endpoint}
    failed = {r.job.endpoint_id for r in batch if not r.result.success and not r.decision.disable_endpoint}
    recovering = {e for e in succeeded if failing(e)}
    still_failing = failed - succeeded - gone
    if not (gone or still_failing or recovering):
        # The usual batch: one statement, committing by itself (no BEGIN/COMMIT round trips).
        async with database.autocommit.connect() as conn:
            await DeliveryRepository(conn).record(rows, owner=owner, lease=lease)
        return None
    # Core connection, not an ORM session: this runs once per batch of attempts (ARCHITECTURE §8).
    async with database.engine.begin() as conn:
        await DeliveryRepository(conn).record(rows, owner=owner, lease=lease)
        return await update_health(conn, succeeded=recovering, failed=still_failing, gone=gone,
                                   disable_after_seconds=disable_after_seconds)


class Recorder:
    """Batches records for `commit`; each `record` returns once its batch is written (or raises)."""

    def __init__(self, commit: Callable[[list[Record]], Awaitable[None]]) -> None:
        self.commit = commit
        self.pending: list[Record] = []
        self.wakeup = asyncio.Event()

    async def record(self, record: Record) -> None:
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

    async def _commit(self, batch: list[Record]) -> None:
        try:
            await self.commit(batch)
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
