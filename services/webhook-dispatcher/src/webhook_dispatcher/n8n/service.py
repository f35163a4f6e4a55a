"""The N8N bridge: n8n settings, flows (create / register / activate / deactivate / delete), logs, templates.

Each flow with a Webhook trigger is backed by an endpoint of kind N8N_FLOW (url `{n8n}/webhook/{path}`,
its own `whsec_` secret, `trusted`: not subject to the subscriber SSRF policy, never challenged), ACTIVE
while the flow is active and PAUSED otherwise. Events reach it through the delivery machinery of webhooks:
the same routing, body, signature headers, retries (a 404 "not registered" right after activation is
retried like any failure) and attempt log.

Calls to n8n come first and the local change after, so when n8n fails or cannot be reached nothing changes
here and the caller learns why (502 with n8n's message, 504 on timeout). Services never commit.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from common.auth import Principal
from common.crypto import SecretBox, mask
from common.db import utcnow
from common.errors import Conflict, NotFound, ProblemError, Unprocessable
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.delivery.schemas import AttemptRead, DeliveryRead
from webhook_dispatcher.delivery.service import page_of_deliveries
from webhook_dispatcher.endpoint.repository import EndpointRepository
from webhook_dispatcher.endpoint.schemas import EndpointStatusName
from webhook_dispatcher.models import Endpoint, EndpointKind, EndpointStatus, N8nFlow, N8nSettings
from webhook_dispatcher.n8n.client import N8nClient, N8nError, N8nProblem, N8nTimeout, connect, webhook_url
from webhook_dispatcher.n8n.repository import N8nRepository
from webhook_dispatcher.n8n.schemas import (
    ExecutionRead,
    ExecutionStatus,
    FlowCreate,
    FlowCreated,
    FlowDelivery,
    FlowLogs,
    FlowMode,
    FlowRead,
    FlowUpdate,
    N8nSettingsRead,
    N8nSettingsUpdate,
    N8nTestRequest,
    N8nTestResult,
    TemplateFlowCreate,
    TemplateParamRead,
    TemplateRead,
    check_http_url,
)
from webhook_dispatcher.n8n.templates import API_KEY_PREFIX, TEMPLATES, BuildContext, Template
from webhook_dispatcher.n8n.workflows import NoWebhookTrigger, find_webhook_trigger, starter_workflow
from webhook_dispatcher.outbound.signing import generate_secret

logger = logging.getLogger("webhook_dispatcher.n8n")

INACTIVE_REASON = "the n8n flow is inactive"


# --- n8n access ------------------------------------------------------------------------------------
def _problem(exc: N8nProblem) -> ProblemError:
    if isinstance(exc, N8nTimeout):
        return ProblemError(exc.detail, status=504, title="n8n did not answer in time")
    if isinstance(exc, N8nError):
        return ProblemError(exc.detail, status=502, title="n8n refused the request",
                            extra={"n8nStatus": exc.status, "n8nMessage": exc.message})
    return ProblemError(exc.detail, status=502, title="n8n is unreachable")


@contextlib.asynccontextmanager
async def _n8n(settings: Settings, url: str, api_key: str) -> AsyncIterator[N8nClient]:
    """A client whose failures become problem responses (502/504), the local state left unchanged."""
    try:
        async with connect(url, api_key, timeout=settings.n8n_timeout_seconds) as client:
            yield client
    except N8nProblem as exc:
        raise _problem(exc) from None


async def _configured(session: AsyncSession, box: SecretBox) -> tuple[str, str]:
    row = await N8nRepository(session).settings()
    if row is None:
        raise Conflict("n8n is not configured yet: PUT /api/platform/integrations/n8n {url, apiKey} first",
                       title="n8n not configured")
    return row.url, box.decrypt(row.api_key_encrypted)


# --- settings --------------------------------------------------------------------------------------
def _settings_read(row: N8nSettings | None) -> N8nSettingsRead:
    if row is None:
        return N8nSettingsRead(configured=False, url=None, apiKey=None, updatedAt=None)
    return N8nSettingsRead(configured=True, url=row.url, apiKey=row.api_key_hint, updatedAt=row.updated_at)


async def get_settings(session: AsyncSession) -> N8nSettingsRead:
    return _settings_read(await N8nRepository(session).settings())


async def put_settings(session: AsyncSession, box: SecretBox, principal: Principal,
                       body: N8nSettingsUpdate) -> N8nSettingsRead:
    """Save URL and key (the key encrypted at rest). A new URL moves every flow's webhook URL with it."""
    repo = N8nRepository(session)
    row = await repo.settings(for_update=True)
    if row is None and not body.apiKey:
        raise Unprocessable("apiKey: required the first time n8n is configured",
                            extra={"errors": [{"loc": ["body", "apiKey"], "msg": "required", "type": "missing"}]})
    if row is None:
        row = N8nSettings(singleton=True, url=body.url, api_key_encrypted="", api_key_hint="")
        old_url = None
    else:
        old_url = row.url
    if body.apiKey:
        row.api_key_encrypted = box.encrypt(body.apiKey)
        row.api_key_hint = mask(body.apiKey) or "****"
    row.url = body.url
    row.updated_by = principal.id
    row.updated_at = utcnow()
    if old_url is None:
        await repo.add(row)
    else:
        await repo.flush()
    if old_url is not None and old_url != body.url:
        endpoints = EndpointRepository(session)
        for flow, endpoint in await repo.flows_with_endpoints():
            if flow.webhook_path:
                endpoint.url = webhook_url(body.url, flow.webhook_path)[:2048]
                endpoint.updated_at = utcnow()
                await endpoints.flush()
                await endpoints.notify_changed(endpoint.id)
    return _settings_read(row)


async def test_connection(session: AsyncSession, box: SecretBox, settings: Settings,
                          body: N8nTestRequest | None) -> N8nTestResult:
    """Calls n8n's public API with the key: reachable or not, key accepted or not, version when known."""
    row = await N8nRepository(session).settings()
    url = (body.url if body else None) or (row.url if row else None)
    key = (body.apiKey if body else None) or (box.decrypt(row.api_key_encrypted) if row else None)
    if not url or not key:
        raise Conflict("n8n is not configured: save {url, apiKey} first or send them in the body to test them",
                       title="n8n not configured")
    async with connect(url, key, timeout=settings.n8n_timeout_seconds) as client:
        probe = await client.probe()
    return N8nTestResult(ok=probe.reachable and probe.key_accepted is True, reachable=probe.reachable,
                         keyAccepted=probe.key_accepted, version=probe.version, statusCode=probe.status_code,
                         detail=probe.detail, durationMs=probe.duration_ms, url=url)


# --- flows: reading --------------------------------------------------------------------------------
def _flow_read(flow: N8nFlow, endpoint: Endpoint | None, *, secret: str | None = None) -> FlowRead:
    live = endpoint is not None and endpoint.status != EndpointStatus.DELETED
    return FlowRead(
        id=flow.id, name=flow.name, category=flow.category, description=flow.description,
        triggerEvents=list(flow.trigger_events or ()), mode=FlowMode(flow.mode), template=flow.template,
        workflowId=flow.workflow_id, webhookPath=flow.webhook_path,
        webhookUrl=endpoint.url if live and endpoint else None, active=flow.active,
        deliveryStatus=EndpointStatusName(endpoint.status) if live and endpoint else None,
        deliveryStatusReason=endpoint.status_reason if live and endpoint else None,
        secret=secret if secret is not None else (endpoint.secret_hint if live and endpoint else None),
        activatedAt=flow.activated_at, deactivatedAt=flow.deactivated_at, createdAt=flow.created_at,
        updatedAt=flow.updated_at)


async def _get(session: AsyncSession, flow_id: uuid.UUID, *, for_update: bool = False) -> N8nFlow:
    flow = await N8nRepository(session).get_flow(flow_id, for_update=for_update)
    if flow is None:
        raise NotFound(f"n8n flow {flow_id} not found")
    return flow


async def get_flow(session: AsyncSession, flow_id: uuid.UUID) -> FlowRead:
    flow = await _get(session, flow_id)
    return _flow_read(flow, await N8nRepository(session).endpoint(flow.endpoint_id))


async def list_flows(session: AsyncSession, *, category: str | None, active: bool | None,
                     page: PageParams) -> Page[FlowRead]:
    repo = N8nRepository(session)
    flows, total = await repo.list_flows(category=category, active=active, limit=page.limit, offset=page.offset)
    endpoints = await repo.endpoints([f.endpoint_id for f in flows if f.endpoint_id])
    items = [_flow_read(f, endpoints.get(f.endpoint_id) if f.endpoint_id else None) for f in flows]
    return Page[FlowRead].of(items, total, page, read=lambda item: item)


# --- flows: creating -------------------------------------------------------------------------------
def list_templates() -> list[TemplateRead]:
    return [TemplateRead(id=t.id, name=t.name, description=t.description, category=t.category,
                         triggerEvents=list(t.trigger_events), trigger="webhook" if t.webhook else "schedule",
                         parameters=[TemplateParamRead(name=p.name, description=p.description, required=p.required,
                                                       secret=p.secret) for p in t.params])
            for t in TEMPLATES.values()]


def _template(template_id: str) -> Template:
    template = TEMPLATES.get(template_id)
    if template is None:
        raise NotFound(f"No template {template_id!r}; GET /api/platform/n8n/templates lists them")
    return template


def _invalid_param(name: str, message: str) -> Unprocessable:
    return Unprocessable(f"params.{name}: {message}", title="Validation failed",
                         extra={"errors": [{"loc": ["body", "params", name], "msg": message, "type": "value_error"}]})


def _template_params(template: Template, given: dict[str, str] | None, settings: Settings) -> dict[str, str]:
    params = {k: v for k, v in (given or {}).items() if v != ""}
    known = {p.name for p in template.params}
    for name in params:
        if name not in known:
            raise _invalid_param(name, f"template {template.id!r} takes no parameter {name!r}"
                                 + (f" (it takes: {', '.join(sorted(known))})" if known else ""))
    if "platformUrl" in known and "platformUrl" not in params and settings.platform_public_url:
        params["platformUrl"] = settings.platform_public_url
    for param in template.params:
        if param.required and not params.get(param.name):
            raise _invalid_param(param.name, f"required by template {template.id!r}: {param.description}")
    if "platformUrl" in params:
        try:
            params["platformUrl"] = check_http_url(params["platformUrl"])
        except ValueError as exc:
            raise _invalid_param("platformUrl", str(exc)) from None
    if "apiKey" in params and (not params["apiKey"].startswith(API_KEY_PREFIX) or any(
            c.isspace() or not c.isprintable() for c in params["apiKey"])):
        raise _invalid_param("apiKey", f"a platform API key ({API_KEY_PREFIX}...), created with "
                             "POST /api/auth/api-keys")
    return params


def _new_endpoint(box: SecretBox, settings: Settings, principal: Principal, flow_name: str, url: str, events: list[str],
                  active: bool) -> tuple[Endpoint, str]:
    secret = generate_secret()
    endpoint = Endpoint(
        id=uuid.uuid4(), url=url[:2048], description=f"n8n flow: {flow_name}"[:500], events=events,
        status=EndpointStatus.ACTIVE if active else EndpointStatus.PAUSED,
        status_reason=None if active else INACTIVE_REASON, secret_encrypted=box.encrypt(secret),
        secret_hint=mask(secret) or "****", max_concurrency=settings.webhook_default_max_concurrency,
        ordered=False, created_by=principal.id, kind=EndpointKind.N8N_FLOW, trusted=True)
    return endpoint, secret


async def _save_flow(session: AsyncSession, box: SecretBox, settings: Settings, principal: Principal, *, n8n_url: str,
                     flow: N8nFlow, active: bool) -> FlowCreated:
    repo = N8nRepository(session)
    if await repo.flow_by_workflow(flow.workflow_id) is not None:
        raise Conflict(f"n8n workflow {flow.workflow_id} is already a flow of the platform")
    endpoint, secret = None, None
    if flow.webhook_path:
        endpoint, secret = _new_endpoint(box, settings, principal, flow.name, webhook_url(n8n_url, flow.webhook_path),
                                         list(flow.trigger_events), active)
        endpoints = EndpointRepository(session)
        await endpoints.add(endpoint)
        await endpoints.notify_changed(endpoint.id)
        flow.endpoint_id = endpoint.id
    flow.active = active
    if active:
        flow.activated_at = utcnow()
    await repo.add(flow)
    read = _flow_read(flow, endpoint, secret=secret)
    return FlowCreated(**read.model_dump())


async def create_flow(session: AsyncSession, box: SecretBox, settings: Settings, principal: Principal,
                      body: FlowCreate) -> FlowCreated:
    if body.template is not None:
        return await _create(session, box, settings, principal, _template(body.template), body, body.params)
    if body.mode == FlowMode.REGISTER:
        return await _register(session, box, settings, principal, body)
    return await _create(session, box, settings, principal, None, body, None)


async def create_from_template(session: AsyncSession, box: SecretBox, settings: Settings, principal: Principal,
                               template_id: str, body: TemplateFlowCreate) -> FlowCreated:
    return await _create(session, box, settings, principal, _template(template_id), body, body.params)


async def _create(session: AsyncSession, box: SecretBox, settings: Settings, principal: Principal,
                  template: Template | None,
                  body: FlowCreate | TemplateFlowCreate, params: dict[str, str] | None) -> FlowCreated:
    """The platform writes the workflow into n8n (inactive), then records the flow."""
    name = body.name or (template.name if template else "")
    events = body.triggerEvents if body.triggerEvents is not None else list(template.trigger_events if template
                                                                              else ())
    if template is not None and not template.webhook and events:
        raise Unprocessable(f"triggerEvents: template {template.id!r} has no Webhook trigger (it runs on a "
                            "schedule), so it cannot receive platform events")
    resolved = _template_params(template, params, settings) if template else {}
    url, key = await _configured(session, box)
    flow_id = uuid.uuid4()
    webhook = template is None or template.webhook
    path = f"plataforma-{flow_id.hex}" if webhook else None
    webhook_id = str(uuid.uuid4()) if webhook else None
    if template is None:
        assert path is not None and webhook_id is not None
        wf = starter_workflow(name, path, webhook_id)
    else:
        wf = template.build(BuildContext(name=name, webhook_path=path, webhook_id=webhook_id, params=resolved))
    async with _n8n(settings, url, key) as n8n:
        answer = await n8n.create_workflow(wf)
        workflow_id = str(answer.get("id") or "")
        if not workflow_id:
            raise ProblemError("n8n created the workflow but its answer carries no id", status=502,
                               title="n8n refused the request")
        flow = N8nFlow(id=flow_id, name=name, category=body.category or (template.category if template else None),
                       description=body.description if body.description is not None else
                       (template.description[:1000] if template else None),
                       trigger_events=events, mode=FlowMode.CREATE.value, template=template.id if template else None,
                       workflow_id=workflow_id[:100], webhook_path=path,
                       webhook_node="Platform event" if webhook else None, created_by=principal.id)
        try:
            return await _save_flow(session, box, settings, principal, n8n_url=url, flow=flow,
                                    active=answer.get("active") is True)
        except Exception:
            # Not recorded here: do not leave an orphan workflow in n8n.
            with contextlib.suppress(Exception):
                await n8n.delete_workflow(workflow_id)
            raise


async def _register(session: AsyncSession, box: SecretBox, settings: Settings, principal: Principal,
                    body: FlowCreate) -> FlowCreated:
    """An existing workflow: read it from n8n and find its Webhook trigger (422 when it has none)."""
    assert body.workflowId is not None and body.name is not None
    url, key = await _configured(session, box)
    if await N8nRepository(session).flow_by_workflow(body.workflowId) is not None:
        raise Conflict(f"n8n workflow {body.workflowId} is already a flow of the platform")
    async with _n8n(settings, url, key) as n8n:
        try:
            wf = await n8n.get_workflow(body.workflowId)
        except N8nError as exc:
            if exc.status == 404:
                raise Unprocessable(f"workflowId: n8n has no workflow {body.workflowId} ({exc.message})",
                                    title="Workflow not found in n8n") from None
            raise
    try:
        trigger = find_webhook_trigger(body.workflowId, wf)
    except NoWebhookTrigger as exc:
        raise Unprocessable(f"workflowId: {exc}", title="The workflow has no Webhook trigger") from None
    flow = N8nFlow(id=uuid.uuid4(), name=body.name, category=body.category, description=body.description,
                   trigger_events=body.triggerEvents or [], mode=FlowMode.REGISTER.value, template=None,
                   workflow_id=body.workflowId, webhook_path=trigger.path, webhook_node=trigger.node,
                   created_by=principal.id)
    return await _save_flow(session, box, settings, principal, n8n_url=url, flow=flow,
                            active=wf.get("active") is True)


# --- flows: changing -------------------------------------------------------------------------------
async def update_flow(session: AsyncSession, flow_id: uuid.UUID, body: FlowUpdate) -> FlowRead:
    fields = body.model_dump(exclude_unset=True)
    repo = N8nRepository(session)
    flow = await _get(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    if "triggerEvents" in fields and fields["triggerEvents"] and endpoint is None:
        raise Unprocessable("triggerEvents: this flow's workflow has no Webhook trigger, so it cannot receive "
                            "platform events")
    for name, column in (("name", "name"), ("category", "category"), ("description", "description"),
                         ("triggerEvents", "trigger_events")):
        if name in fields:
            setattr(flow, column, fields[name])
    flow.updated_at = utcnow()
    if endpoint is not None:
        endpoint.events = list(flow.trigger_events)
        endpoint.description = f"n8n flow: {flow.name}"[:500]
        endpoint.updated_at = utcnow()
    await repo.flush()
    if endpoint is not None:
        await EndpointRepository(session).notify_changed(endpoint.id)
    return _flow_read(flow, endpoint)


async def set_active(session: AsyncSession, box: SecretBox, settings: Settings, flow_id: uuid.UUID,
                     active: bool) -> FlowRead:
    """Switch the workflow in n8n, then mirror n8n's answer: the flow receives events while active."""
    flow = await _get(session, flow_id)
    url, key = await _configured(session, box)
    async with _n8n(settings, url, key) as n8n:
        answer = await n8n.set_active(flow.workflow_id, active)
    now_active = answer["active"] if isinstance(answer.get("active"), bool) else active
    repo = N8nRepository(session)
    flow = await _get(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    now = utcnow()
    if now_active:
        flow.activated_at = now
    else:
        flow.deactivated_at = now
    flow.active = now_active
    flow.updated_at = now
    endpoints = EndpointRepository(session)
    if endpoint is not None and endpoint.status != EndpointStatus.DELETED:
        endpoint.status = EndpointStatus.ACTIVE if now_active else EndpointStatus.PAUSED
        endpoint.status_reason = None if now_active else INACTIVE_REASON
        if now_active:
            endpoint.failing_since = None
            endpoint.disabled_at = None
        endpoint.updated_at = now
        await repo.flush()
        if not now_active:
            # Inactive flows receive nothing: what was still being retried stops (replayable by id).
            await DeliveryRepository(session).fail_pending(endpoint.id, "the n8n flow was deactivated")
        await endpoints.notify_changed(endpoint.id)
    await repo.flush()
    return _flow_read(flow, endpoint)


async def delete_flow(session: AsyncSession, box: SecretBox, settings: Settings, flow_id: uuid.UUID, *,
                      delete_in_n8n: bool) -> None:
    """Forget the flow (its endpoint stops at once; its delivery log stays until the retention), and with
    `deleteInN8n=true` delete the workflow in n8n first (already gone there: fine)."""
    flow = await _get(session, flow_id)
    if delete_in_n8n:
        url, key = await _configured(session, box)
        async with _n8n(settings, url, key) as n8n:
            try:
                await n8n.delete_workflow(flow.workflow_id)
            except N8nError as exc:
                if exc.status != 404:
                    raise
    repo = N8nRepository(session)
    flow = await _get(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    if endpoint is not None and endpoint.status != EndpointStatus.DELETED:
        endpoint.status = EndpointStatus.DELETED
        endpoint.deleted_at = endpoint.updated_at = utcnow()
        await repo.flush()
        endpoints = EndpointRepository(session)
        await DeliveryRepository(session).fail_pending(endpoint.id, "the n8n flow was deleted")
        await endpoints.notify_changed(endpoint.id)
    await repo.delete_flow(flow)


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
        id=str(item.get("id")), workflowId=None if item.get("workflowId") is None else str(item["workflowId"]),
        status=item.get("status") if isinstance(item.get("status"), str) else None,
        mode=item.get("mode") if isinstance(item.get("mode"), str) else None,
        finished=item.get("finished") if isinstance(item.get("finished"), bool) else None,
        startedAt=started, stoppedAt=stopped, durationMs=duration,
        retryOf=None if retry_of is None else str(retry_of),
        data=item.get("data") if include_data else None)


async def logs(session: AsyncSession, box: SecretBox, settings: Settings, flow_id: uuid.UUID, *,
               status: ExecutionStatus | None, since: datetime | None, until: datetime | None, limit: int,
               cursor: str | None, include_data: bool, delivery_status: str | None,
               deliveries_cursor: str | None) -> FlowLogs:
    """n8n's executions of the flow's workflow (its cursor passed through) next to our deliveries to it."""
    flow = await _get(session, flow_id)
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
                if since and (execution.startedAt is None or execution.startedAt < since):
                    continue
                if until and (execution.startedAt is None or execution.startedAt >= until):
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
    return FlowLogs(flowId=flow.id, workflowId=flow.workflow_id, executions=executions, nextCursor=next_cursor,
                    executionsError=error, deliveries=deliveries, deliveriesNextCursor=deliveries_next)
