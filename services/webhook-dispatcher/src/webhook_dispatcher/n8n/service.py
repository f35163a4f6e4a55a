"""The N8N bridge's flows: create / register / activate / deactivate / delete, and templates (the n8n
settings are `instance`, a flow's logs `logs`).

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

from sqlalchemy.ext.asyncio import AsyncSession

from common.api import Page, PageParams
from common.auth import Principal
from common.crypto import SecretBox, mask
from common.db import utcnow
from common.errors import Conflict, NotFound, ProblemError, Unprocessable, found
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.models import EndpointKind, EndpointStatus, N8nFlow, WebhookEndpoint
from webhook_dispatcher.n8n.client import N8nError, webhook_url
from webhook_dispatcher.n8n.instance import configured, n8n_client
from webhook_dispatcher.n8n.readiness import setup_needed
from webhook_dispatcher.n8n.repository import N8nRepository
from webhook_dispatcher.n8n.schemas import (
    FlowCreate,
    FlowCreated,
    FlowMode,
    FlowRead,
    FlowUpdate,
    TemplateFlowCreate,
    TemplateParamRead,
    TemplateRead,
    check_http_url,
)
from webhook_dispatcher.n8n.templates import API_KEY_PREFIX, TEMPLATES, BuildContext, Template
from webhook_dispatcher.n8n.workflows import NoWebhookTrigger, find_webhook_trigger, starter_workflow
from webhook_dispatcher.outbound.signing import generate_secret
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository
from webhook_dispatcher.webhook.schemas import EndpointStatusName

logger = logging.getLogger("webhook_dispatcher.n8n")

INACTIVE_REASON = "the n8n flow is inactive"


# --- flows: reading --------------------------------------------------------------------------------
def _flow_read(flow: N8nFlow, endpoint: WebhookEndpoint | None, *, secret: str | None = None) -> FlowRead:
    live = endpoint is not None and endpoint.status != EndpointStatus.DELETED
    return FlowRead(
        id=flow.id, name=flow.name, category=flow.category, description=flow.description,
        trigger_events=list(flow.trigger_events or ()), mode=FlowMode(flow.mode), template=flow.template,
        workflow_id=flow.workflow_id, webhook_path=flow.webhook_path,
        webhook_url=endpoint.url if live and endpoint else None, active=flow.active,
        delivery_status=EndpointStatusName(endpoint.status) if live and endpoint else None,
        delivery_status_reason=endpoint.status_reason if live and endpoint else None,
        secret=secret if secret is not None else (endpoint.secret_hint if live and endpoint else None),
        activated_at=flow.activated_at, deactivated_at=flow.deactivated_at, created_at=flow.created_at,
        updated_at=flow.updated_at)


async def flow_or_404(session: AsyncSession, flow_id: uuid.UUID, *, for_update: bool = False) -> N8nFlow:
    flow = await N8nRepository(session).get_flow(flow_id, for_update=for_update)
    return found(flow, f"n8n flow {flow_id} not found")


async def get_flow(session: AsyncSession, flow_id: uuid.UUID) -> FlowRead:
    flow = await flow_or_404(session, flow_id)
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
                         trigger_events=list(t.trigger_events), trigger="webhook" if t.webhook else "schedule",
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
                  active: bool) -> tuple[WebhookEndpoint, str]:
    secret = generate_secret()
    endpoint = WebhookEndpoint(
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
        endpoints = WebhookEndpointRepository(session)
        await endpoints.add(endpoint)
        await endpoints.notify_changed(endpoint.id)
        flow.endpoint_id = endpoint.id
    flow.active = active
    if active:
        flow.activated_at = utcnow()
    await repo.add(flow)
    read = _flow_read(flow, endpoint, secret=secret)
    return FlowCreated(**dict(read))


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
    events = body.trigger_events if body.trigger_events is not None else list(template.trigger_events if template
                                                                              else ())
    if template is not None and not template.webhook and events:
        raise Unprocessable(f"triggerEvents: template {template.id!r} has no Webhook trigger (it runs on a "
                            "schedule), so it cannot receive platform events")
    resolved = _template_params(template, params, settings) if template else {}
    url, key = await configured(session, box)
    flow_id = uuid.uuid4()
    webhook = template is None or template.webhook
    path = f"plataforma-{flow_id.hex}" if webhook else None
    webhook_id = str(uuid.uuid4()) if webhook else None
    if template is None:
        assert path is not None and webhook_id is not None
        wf = starter_workflow(name, path, webhook_id)
    else:
        wf = template.build(BuildContext(name=name, webhook_path=path, webhook_id=webhook_id, params=resolved))
    async with n8n_client(settings, url, key) as n8n:
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
    assert body.workflow_id is not None and body.name is not None
    url, key = await configured(session, box)
    if await N8nRepository(session).flow_by_workflow(body.workflow_id) is not None:
        raise Conflict(f"n8n workflow {body.workflow_id} is already a flow of the platform")
    async with n8n_client(settings, url, key) as n8n:
        try:
            wf = await n8n.get_workflow(body.workflow_id)
        except N8nError as exc:
            if exc.status == 404:
                raise Unprocessable(f"workflowId: n8n has no workflow {body.workflow_id} ({exc.message})",
                                    title="Workflow not found in n8n") from None
            raise
    try:
        trigger = find_webhook_trigger(body.workflow_id, wf)
    except NoWebhookTrigger as exc:
        raise Unprocessable(f"workflowId: {exc}", title="The workflow has no Webhook trigger") from None
    flow = N8nFlow(id=uuid.uuid4(), name=body.name, category=body.category, description=body.description,
                   trigger_events=body.trigger_events or [], mode=FlowMode.REGISTER.value, template=None,
                   workflow_id=body.workflow_id, webhook_path=trigger.path, webhook_node=trigger.node,
                   created_by=principal.id)
    return await _save_flow(session, box, settings, principal, n8n_url=url, flow=flow,
                            active=wf.get("active") is True)


# --- flows: changing -------------------------------------------------------------------------------
async def update_flow(session: AsyncSession, flow_id: uuid.UUID, body: FlowUpdate) -> FlowRead:
    given = body.model_fields_set
    repo = N8nRepository(session)
    flow = await flow_or_404(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    if "trigger_events" in given and body.trigger_events and endpoint is None:
        raise Unprocessable("triggerEvents: this flow's workflow has no Webhook trigger, so it cannot receive "
                            "platform events")
    for name in ("name", "category", "description", "trigger_events"):
        if name in given:
            setattr(flow, name, getattr(body, name))
    flow.updated_at = utcnow()
    if endpoint is not None:
        endpoint.events = list(flow.trigger_events)
        endpoint.description = f"n8n flow: {flow.name}"[:500]
        endpoint.updated_at = utcnow()
    await repo.flush()
    if endpoint is not None:
        await WebhookEndpointRepository(session).notify_changed(endpoint.id)
    return _flow_read(flow, endpoint)


async def set_active(session: AsyncSession, box: SecretBox, settings: Settings, flow_id: uuid.UUID,
                     active: bool) -> FlowRead:
    """Switch the workflow in n8n, then mirror n8n's answer: the flow receives events while active. n8n 2.x
    refuses to activate while nodes lack credentials: 409 naming them (`readiness`), nothing changed here."""
    flow = await flow_or_404(session, flow_id)
    url, key = await configured(session, box)
    async with n8n_client(settings, url, key) as n8n:
        try:
            answer = await n8n.set_active(flow.workflow_id, active)
        except N8nError as exc:
            refusal = setup_needed(exc, url, flow.workflow_id) if active else None
            if refusal is None:
                raise
            raise refusal from None
    now_active = answer["active"] if isinstance(answer.get("active"), bool) else active
    repo = N8nRepository(session)
    flow = await flow_or_404(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    now = utcnow()
    if now_active:
        flow.activated_at = now
    else:
        flow.deactivated_at = now
    flow.active = now_active
    flow.updated_at = now
    endpoints = WebhookEndpointRepository(session)
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
    flow = await flow_or_404(session, flow_id)
    if delete_in_n8n:
        url, key = await configured(session, box)
        async with n8n_client(settings, url, key) as n8n:
            try:
                await n8n.delete_workflow(flow.workflow_id)
            except N8nError as exc:
                if exc.status != 404:
                    raise
    repo = N8nRepository(session)
    flow = await flow_or_404(session, flow_id, for_update=True)
    endpoint = await repo.endpoint(flow.endpoint_id, for_update=True)
    if endpoint is not None and endpoint.status != EndpointStatus.DELETED:
        endpoint.status = EndpointStatus.DELETED
        endpoint.deleted_at = endpoint.updated_at = utcnow()
        await repo.flush()
        endpoints = WebhookEndpointRepository(session)
        await DeliveryRepository(session).fail_pending(endpoint.id, "the n8n flow was deleted")
        await endpoints.notify_changed(endpoint.id)
    await repo.delete_flow(flow)

