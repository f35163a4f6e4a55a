from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from webhook_dispatcher.delivery import schemas, service
from webhook_dispatcher.dependencies import SettingsDep

router = APIRouter(prefix="/api/platform/webhooks", tags=["webhook deliveries"])


@router.get("/deliveries/{delivery_id}", response_model=schemas.DeliveryDetail,
            responses=problem_responses(401, 403, 404, 422))
async def get_delivery(session: SessionDep, _: PlatformOwner, delivery_id: uuid.UUID) -> schemas.DeliveryDetail:
    """One delivery with its payload and every attempt."""
    return await service.get_delivery(session, delivery_id)


@router.get("/deliveries/{delivery_id}/attempts", response_model=list[schemas.AttemptRead],
            responses=problem_responses(401, 403, 404, 422))
async def list_attempts(session: SessionDep, _: PlatformOwner,
                        delivery_id: uuid.UUID) -> list[schemas.AttemptRead]:
    return await service.list_attempts(session, delivery_id)


@router.post("/deliveries/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             response_model=schemas.DeliveryRead, responses=problem_responses(401, 403, 404, 409, 422))
async def retry_delivery(session: SessionDep, _: PlatformOwner, delivery_id: uuid.UUID) -> schemas.DeliveryRead:
    """Send a finished (FAILED or SUCCEEDED) delivery again, with the same `webhook-id`."""
    return await service.retry(session, delivery_id)


@router.get("/{endpoint_id}/deliveries", response_model=schemas.DeliveryPage,
            responses=problem_responses(401, 403, 404, 422))
async def list_deliveries(
    session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID,
    status: schemas.DeliveryStatusName | None = None,
    eventType: Annotated[str | None,
                         Query(max_length=100, description="Exact name or prefix like `lead.*`")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> schemas.DeliveryPage:
    """Deliveries to this endpoint, newest first (cursor pagination)."""
    return await service.list_deliveries(session, endpoint_id, status=status, event_type=eventType, since=since,
                                         until=until, cursor=cursor, limit=limit)


@router.post("/{endpoint_id}/recover", response_model=schemas.RecoverResult,
             responses=problem_responses(401, 403, 404, 422))
async def recover(session: SessionDep, principal: PlatformOwner, settings: SettingsDep, endpoint_id: uuid.UUID,
                  body: schemas.RecoverRequest, response: Response) -> schemas.RecoverResult:
    """Send again, with their original `webhook-id`, the events since `since` (until `until`) that this
    endpoint failed (`FAILED`), missed (`MISSED`: while paused or disabled) or, on request, already got
    (`SUCCEEDED`). `dryRun` only counts. The re-sends go out oldest first at `ratePerSecond`; follow them
    at the `Location` answered (`GET /{id}/recoveries/{recoveryId}`)."""
    result = await service.recover(session, endpoint_id, body, max_count=settings.webhook_recover_max,
                                   default_rate=settings.webhook_recover_rate_per_second, caller=principal.id)
    if result.id is not None:  # 200 rather than 202 keeps the answer callers of the first cut relied on
        response.headers["Location"] = f"{router.prefix}/{endpoint_id}/recoveries/{result.id}"
    return result


@router.get("/{endpoint_id}/recoveries", response_model=list[schemas.RecoveryRead],
            responses=problem_responses(401, 403, 404, 422))
async def list_recoveries(session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[schemas.RecoveryRead]:
    """This endpoint's latest recoveries, newest first, each with its progress."""
    return await service.list_recoveries(session, endpoint_id, limit=limit)


@router.get("/{endpoint_id}/recoveries/{recovery_id}", response_model=schemas.RecoveryRead,
            responses=problem_responses(401, 403, 404, 422))
async def get_recovery(session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID,
                       recovery_id: uuid.UUID) -> schemas.RecoveryRead:
    """One recovery: what was asked, how many deliveries it scheduled, and how far they got."""
    return await service.get_recovery(session, endpoint_id, recovery_id)
