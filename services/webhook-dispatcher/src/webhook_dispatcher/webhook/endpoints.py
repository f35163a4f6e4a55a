from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import AfterValidator

from common.api import KeysetPage, KeysetPageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.db.repository import SEARCH_RULE
from common.errors import problem_responses
from common.validation import NO_NUL
from webhook_dispatcher.dependencies import SecretBoxDep, SettingsDep, TransportDep
from webhook_dispatcher.webhook import service
from webhook_dispatcher.webhook.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointStatusName,
    EndpointUpdate,
    Resumed,
    RotateSecret,
    SecretRotated,
    StatusChange,
    TestSent,
    subscribable_event,
)

router = APIRouter(prefix="/api/platform/webhooks", tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EndpointCreated,
             responses=problem_responses(401, 403, 422))
async def create_endpoint(session: SessionDep, principal: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                          transport: TransportDep, body: EndpointCreate) -> EndpointCreated:
    """Register a subscriber URL. The dispatcher sends it a signed `webhook.verification` challenge at once:
    answering 2xx with `{"challenge": "<same>"}` (or the challenge as plain text) makes it `ACTIVE`;
    otherwise it stays `PENDING_VERIFICATION` with `verificationError`. The full secret is shown only here."""
    return await service.create(session, box, settings, transport, principal, body)


@router.get("", response_model=KeysetPage[EndpointRead], responses=problem_responses(401, 403, 422))
async def list_endpoints(
    session: SessionDep, _: PlatformOwner, page: KeysetPageParamsDep,
    status: Annotated[list[EndpointStatusName], Query(
        max_length=4, description="One or more statuses: repeat the parameter (`status=ACTIVE&status=PAUSED`)",
    )] = [],  # noqa: B006
    eventType: Annotated[str | None, Query(
        max_length=100, description="Endpoints that receive this event: subscribed to it by its exact name, "
                                    "by a prefix wildcard such as `lead.*`, or by `*`. One exact name from "
                                    "`/event-types`; patterns are not accepted here",
        examples=["lead.stage.changed"]),
        AfterValidator(subscribable_event)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                   description=f"Search in url and description, {SEARCH_RULE}")] = None,
) -> KeysetPage[EndpointRead]:
    """Subscriber endpoints, newest first; the filters combine (all must hold). Page by `offset`, or by
    `cursor` (each page's `nextCursor`, null on the last page). The endpoints that feed
    n8n flows are not listed here (nor reachable by id): they are managed through /api/platform/n8n/flows."""
    return await service.list_endpoints(session, statuses=status, event_type=eventType,
                                        q=(q or "").strip() or None, page=page)


@router.get("/{endpoint_id}", response_model=EndpointRead, responses=problem_responses(401, 403, 404, 422))
async def get_endpoint(session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID) -> EndpointRead:
    return await service.get(session, endpoint_id)


@router.patch("/{endpoint_id}", response_model=EndpointRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_endpoint(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                          transport: TransportDep, endpoint_id: uuid.UUID, body: EndpointUpdate) -> EndpointRead:
    """Change URL, filters, description or delivery settings. A new URL is challenged again and receives
    nothing until verified."""
    return await service.update(session, box, settings, transport, endpoint_id, body)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 403, 404, 422))
async def delete_endpoint(session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID) -> Response:
    await service.delete(session, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/verify", response_model=EndpointRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def verify_endpoint(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                          transport: TransportDep, endpoint_id: uuid.UUID) -> EndpointRead:
    """Send the verification challenge again (see create)."""
    return await service.verify(session, box, settings, transport, endpoint_id)


@router.post("/{endpoint_id}/pause", response_model=EndpointRead,
             responses=problem_responses(401, 403, 404, 409, 422))
async def pause_endpoint(session: SessionDep, _: PlatformOwner, endpoint_id: uuid.UUID,
                         body: Annotated[StatusChange | None, Body()] = None) -> EndpointRead:
    """Stop sending to this endpoint; pending deliveries wait, new events are not routed to it."""
    return await service.pause(session, endpoint_id, body or StatusChange())


@router.post("/{endpoint_id}/resume", response_model=Resumed,
             responses=problem_responses(401, 403, 404, 409, 422))
async def resume_endpoint(session: SessionDep, _: PlatformOwner, settings: SettingsDep, endpoint_id: uuid.UUID,
                          body: Annotated[StatusChange | None, Body()] = None) -> Resumed:
    """Re-enable a PAUSED or DISABLED endpoint. `recoveryOffer` counts what it failed or missed while it
    was off; POST its `recover` body to `/{id}/recover` to have it sent (same `webhook-id`s)."""
    return await service.resume(session, settings, endpoint_id, body or StatusChange())


@router.post("/{endpoint_id}/test", response_model=TestSent, responses=problem_responses(401, 403, 404, 409, 422))
async def test_endpoint(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                        transport: TransportDep, endpoint_id: uuid.UUID) -> TestSent:
    """Send one signed `webhook.test` event to this endpoint only, now, and report the answer."""
    return await service.send_test(session, box, settings, transport, endpoint_id)


@router.post("/{endpoint_id}/rotate-secret", response_model=SecretRotated,
             responses=problem_responses(401, 403, 404, 422))
async def rotate_secret(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                        endpoint_id: uuid.UUID,
                        body: Annotated[RotateSecret | None, Body()] = None) -> SecretRotated:
    """New signing secret (shown once). For `graceHours` (default 24, max 168) every message carries
    two signatures, with the new and the old secret."""
    return await service.rotate_secret(session, box, settings, endpoint_id, body or RotateSecret())
