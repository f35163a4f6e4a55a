from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response, status
from pydantic import AwareDatetime

from common.api import Page, PageParamsDep
from common.auth import PlatformOwner
from common.db import SessionDep
from common.errors import problem_responses
from webhook_dispatcher.delivery.schemas import DeliveryStatusName
from webhook_dispatcher.dependencies import SecretBoxDep, SettingsDep
from webhook_dispatcher.n8n import instance, logs, service
from webhook_dispatcher.n8n.schemas import (
    ExecutionStatus,
    FlowCreate,
    FlowCreated,
    FlowLogs,
    FlowRead,
    FlowUpdate,
    N8nSettingsRead,
    N8nSettingsUpdate,
    N8nTestRequest,
    N8nTestResult,
    TemplateFlowCreate,
    TemplateRead,
)

settings_router = APIRouter(prefix="/api/platform/integrations/n8n", tags=["n8n"])
router = APIRouter(prefix="/api/platform/n8n", tags=["n8n"])

N8N_FAILURES = (502, 504)  # n8n refused or is unreachable (502, with its message), or timed out (504)


# --- settings --------------------------------------------------------------------------------------
@settings_router.get("", response_model=N8nSettingsRead, responses=problem_responses(401, 403))
async def get_settings(session: SessionDep, _: PlatformOwner) -> N8nSettingsRead:
    """The n8n instance the platform uses; the API key is masked (last 4 characters)."""
    return await instance.get_settings(session)


@settings_router.put("", response_model=N8nSettingsRead, responses=problem_responses(401, 403, 422))
async def put_settings(session: SessionDep, principal: PlatformOwner, box: SecretBoxDep,
                       body: N8nSettingsUpdate) -> N8nSettingsRead:
    """Set the n8n URL (http or https; loopback and private addresses are fine: this is the owner's own
    instance) and API key (encrypted at rest). Changing the URL moves every flow's webhook URL with it."""
    return await instance.put_settings(session, box, principal, body)


@settings_router.post("/test", response_model=N8nTestResult, responses=problem_responses(401, 403, 409, 422))
async def test_settings(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                        body: Annotated[N8nTestRequest | None, Body()] = None) -> N8nTestResult:
    """Call n8n's public API with the key and report: reachable or not, key accepted or not, n8n's version when
    it tells. Send `url` / `apiKey` to test values before saving them."""
    return await instance.test_connection(session, box, settings, body)


# --- templates -------------------------------------------------------------------------------------
@router.get("/templates", response_model=list[TemplateRead], responses=problem_responses(401, 403))
async def list_templates(_: PlatformOwner) -> list[TemplateRead]:
    """Ready-made flows: lead processing, critical-ticket alerts, daily report."""
    return service.list_templates()


@router.post("/templates/{template_id}/flows", status_code=status.HTTP_201_CREATED, response_model=FlowCreated,
             responses=problem_responses(401, 403, 404, 409, 422, *N8N_FAILURES))
async def create_from_template(session: SessionDep, principal: PlatformOwner, box: SecretBoxDep,
                               settings: SettingsDep,
                               template_id: Annotated[str, Path(max_length=50)],
                               body: Annotated[TemplateFlowCreate | None, Body()] = None) -> FlowCreated:
    """Create the template's workflow in n8n (inactive) and the flow; `params` fill the template's parameters.
    Same as POST /flows with `template`."""
    return await service.create_from_template(session, box, settings, principal, template_id,
                                              body or TemplateFlowCreate())


# --- flows -----------------------------------------------------------------------------------------
@router.post("/flows", status_code=status.HTTP_201_CREATED, response_model=FlowCreated,
             responses=problem_responses(401, 403, 404, 409, 422, *N8N_FAILURES))
async def create_flow(session: SessionDep, principal: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                      body: FlowCreate) -> FlowCreated:
    """`mode: create` (default): the platform creates the workflow in n8n, a Webhook trigger (POST, its own
    path) connected to a starter node; or from a `template`. `mode: register` with `workflowId`: an existing
    workflow, read from n8n, whose Webhook trigger receives the events (422 when it has none). The flow starts
    as n8n has it (created: inactive); it receives the platform events matching `triggerEvents` while active,
    signed with its own secret (shown only here)."""
    return await service.create_flow(session, box, settings, principal, body)


@router.get("/flows", response_model=Page[FlowRead], responses=problem_responses(401, 403, 422))
async def list_flows(session: SessionDep, _: PlatformOwner, page: PageParamsDep,
                     category: Annotated[str | None, Query(max_length=50)] = None,
                     active: bool | None = None) -> Page[FlowRead]:
    return await service.list_flows(session, category=category, active=active, page=page)


@router.get("/flows/{flow_id}", response_model=FlowRead, responses=problem_responses(401, 403, 404, 422))
async def get_flow(session: SessionDep, _: PlatformOwner, flow_id: uuid.UUID) -> FlowRead:
    return await service.get_flow(session, flow_id)


@router.patch("/flows/{flow_id}", response_model=FlowRead, responses=problem_responses(401, 403, 404, 422))
async def update_flow(session: SessionDep, _: PlatformOwner, flow_id: uuid.UUID, body: FlowUpdate) -> FlowRead:
    """Change name, category, description or trigger events (the platform's record; the workflow in n8n is
    not changed). New trigger events apply to the next events."""
    return await service.update_flow(session, flow_id, body)


@router.delete("/flows/{flow_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 403, 404, 409, 422, *N8N_FAILURES))
async def delete_flow(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                      flow_id: uuid.UUID,
                      deleteInN8n: bool = False) -> Response:
    """Stop feeding the flow and forget it. `deleteInN8n=true` deletes the workflow in n8n too (first: when
    that fails nothing is deleted)."""
    await service.delete_flow(session, box, settings, flow_id, delete_in_n8n=deleteInN8n)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/flows/{flow_id}/activate", response_model=FlowRead,
             responses=problem_responses(401, 403, 404, 409, 422, *N8N_FAILURES))
async def activate_flow(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                        flow_id: uuid.UUID) -> FlowRead:
    """Activate the workflow in n8n (POST /workflows/{id}/activate; /publish on n8n 2.x) and mirror n8n's
    answer: from now on the flow receives its events. When n8n fails nothing changes here."""
    return await service.set_active(session, box, settings, flow_id, True)


@router.post("/flows/{flow_id}/deactivate", response_model=FlowRead,
             responses=problem_responses(401, 403, 404, 409, 422, *N8N_FAILURES))
async def deactivate_flow(session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep,
                          flow_id: uuid.UUID) -> FlowRead:
    """Deactivate the workflow in n8n (/deactivate; /unpublish on n8n 2.x) and mirror n8n's answer: the flow
    receives nothing more (deliveries still being retried stop)."""
    return await service.set_active(session, box, settings, flow_id, False)


@router.get("/flows/{flow_id}/logs", response_model=FlowLogs, responses=problem_responses(401, 403, 404, 422))
async def flow_logs(
    session: SessionDep, _: PlatformOwner, box: SecretBoxDep, settings: SettingsDep, flow_id: uuid.UUID,
    status: Annotated[ExecutionStatus | None, Query(description="n8n execution status")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Executions started / deliveries created at or "
                                                 "after this time")] = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="n8n's `nextCursor`")] = None,
    includeData: Annotated[bool, Query(description="Include the data each execution processed")] = False,
    deliveryStatus: DeliveryStatusName | None = None,
    deliveriesCursor: Annotated[str | None, Query(max_length=100)] = None,
) -> FlowLogs:
    """The flow's executions read from n8n (status, startedAt, stoppedAt, duration, mode; the data with
    `includeData=true`; n8n's cursor passed through as `nextCursor`), next to the platform's deliveries to the
    flow with every attempt. When n8n cannot be read, `executionsError` says why and deliveries are listed."""
    return await logs.flow_logs(session, box, settings, flow_id, status=status, since=since, until=until, limit=limit,
                              cursor=cursor, include_data=includeData,
                              delivery_status=deliveryStatus.value if deliveryStatus else None,
                              deliveries_cursor=deliveriesCursor)
