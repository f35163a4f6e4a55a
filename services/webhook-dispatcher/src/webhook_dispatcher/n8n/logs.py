"""A flow's logs: n8n's executions of its workflow next to the platform's deliveries to it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.crypto import SecretBox
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.delivery.schemas import AttemptRead, DeliveryRead
from webhook_dispatcher.delivery.service import page_of_deliveries
from webhook_dispatcher.n8n.client import N8nProblem, connect
from webhook_dispatcher.n8n.repository import N8nRepository
from webhook_dispatcher.n8n.schemas import (
    ExecutionRead,
    ExecutionStatus,
    FlowDelivery,
    FlowLogs,
)
from webhook_dispatcher.n8n.service import flow_or_404


# --- logs ------------------------------------------------------------------------------------------
def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _execution(item: dict[str, Any], include_data: bool) -> ExecutionRead:
    started, stopped = _when(item.get("startedAt")), _when(item.get("stoppedAt"))
    duration = int((stopped - started).total_seconds() * 1000) if started and stopped else None
    retry_of = item.get("retryOf")
    return ExecutionRead(
        id=str(item.get("id")), workflow_id=None if item.get("workflowId") is None else str(item["workflowId"]),
        status=item.get("status") if isinstance(item.get("status"), str) else None,
        mode=item.get("mode") if isinstance(item.get("mode"), str) else None,
        finished=item.get("finished") if isinstance(item.get("finished"), bool) else None,
        started_at=started, stopped_at=stopped, duration_ms=duration,
        retry_of=None if retry_of is None else str(retry_of),
        data=item.get("data") if include_data else None)


async def flow_logs(session: AsyncSession, box: SecretBox, settings: Settings, flow_id: uuid.UUID, *,
               status: ExecutionStatus | None, since: datetime | None, until: datetime | None, limit: int,
               cursor: str | None, include_data: bool, delivery_status: str | None,
               deliveries_cursor: str | None) -> FlowLogs:
    """n8n's executions of the flow's workflow (its cursor passed through) next to our deliveries to it."""
    flow = await flow_or_404(session, flow_id)
    executions: list[ExecutionRead] = []
    next_cursor = error = None
    row = await N8nRepository(session).settings()
    if row is None:
        error = "n8n is not configured"
    else:
        try:
            async with connect(row.url, box.decrypt(row.api_key_encrypted),
                               timeout=settings.n8n_timeout_seconds) as n8n:
                answer = await n8n.list_executions(workflow_id=flow.workflow_id,
                                                   status=status.value if status else None, limit=limit,
                                                   cursor=cursor, include_data=include_data)
        except N8nProblem as exc:
            error = exc.detail
        else:
            for item in answer.get("data") or []:
                if not isinstance(item, dict):
                    continue
                execution = _execution(item, include_data)
                if since and (execution.started_at is None or execution.started_at < since):
                    continue
                if until and (execution.started_at is None or execution.started_at >= until):
                    continue
                executions.append(execution)
            raw_cursor = answer.get("nextCursor")
            next_cursor = raw_cursor if isinstance(raw_cursor, str) and raw_cursor else None
    deliveries: list[FlowDelivery] = []
    deliveries_next = None
    if flow.endpoint_id is not None:
        repo = DeliveryRepository(session)
        rows, deliveries_next = await page_of_deliveries(repo, flow.endpoint_id, status=delivery_status,
                                                         event_type=None, since=since, until=until,
                                                         cursor=deliveries_cursor, limit=limit)
        attempts = await repo.attempts_of_many([d.id for d in rows])
        deliveries = [FlowDelivery(**dict(DeliveryRead.model_validate(d)),
                                   attempt_log=[AttemptRead.model_validate(a) for a in attempts[d.id]])
                      for d in rows]
    return FlowLogs(flow_id=flow.id, workflow_id=flow.workflow_id, executions=executions, next_cursor=next_cursor,
                    executions_error=error, deliveries=deliveries, deliveries_next_cursor=deliveries_next)
