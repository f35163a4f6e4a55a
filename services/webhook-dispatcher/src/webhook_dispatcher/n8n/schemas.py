from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from common.api import InputSchema, Schema
from common.validation import omitted_not_null, storable
from webhook_dispatcher.delivery.schemas import AttemptRead, DeliveryRead
from webhook_dispatcher.webhook.schemas import EndpointStatusName, unique_patterns


def check_http_url(value: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment; kept without a trailing slash.

    The n8n URL is the platform owner's own configuration: loopback and private addresses are fine
    (the subscriber SSRF policy does not apply to it)."""
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:5678")
    if not parts.hostname or any(c.isspace() for c in value) or "\x00" in value:
        raise ValueError("must name a host, e.g. http://127.0.0.1:5678")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: the API key goes in apiKey")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("must not have a query or a fragment")
    if port == 0:
        raise ValueError("port 0 is not a port")
    return value.rstrip("/")


def _text(value: str) -> str:
    """Text that n8n and PostgreSQL can both hold: storable, and no other control characters either."""
    storable(value)
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("contains control characters")
    return value


N8nUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                   AfterValidator(check_http_url)]
ApiKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000,
                                          pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_text)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
                     AfterValidator(_text)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(_text)]
WorkflowId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                              pattern=r"^[A-Za-z0-9_-]+$")]
TemplateId = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Pattern = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ParamValue = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), AfterValidator(_text)]
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")


TriggerEvents = Annotated[list[Pattern], Field(max_length=100), AfterValidator(unique_patterns)]


def _params(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is not None:
        bad = [k for k in value if not _PARAM_NAME.match(k)]
        if bad:
            raise ValueError(f"not a parameter name: {bad[0][:60]!r}")
    return value


Params = Annotated[dict[str, ParamValue] | None, Field(max_length=20, description="Template parameters"),
                   AfterValidator(_params)]


# --- settings -------------------------------------------------------------------------------------
class N8nSettingsUpdate(InputSchema):
    url: N8nUrl = Field(description="Base URL of the n8n instance, e.g. http://127.0.0.1:5678")
    api_key: ApiKey | None = Field(default=None, description="n8n API key (Settings > n8n API). Required the first "
                                  "time; when omitted later the stored key is kept")


class N8nSettingsRead(Schema):
    configured: bool
    url: str | None
    api_key: str | None = Field(description="Masked: only the last 4 characters")
    updated_at: datetime | None


class N8nTestRequest(InputSchema):
    """Optional: test other values before saving them (each defaults to the stored one)."""

    url: N8nUrl | None = None
    api_key: ApiKey | None = None


class N8nTestResult(Schema):
    ok: bool = Field(description="Reachable and the key was accepted")
    reachable: bool
    key_accepted: bool | None = Field(description="null when n8n's answer did not tell")
    version: str | None = Field(description="n8n's version, when it tells")
    status_code: int | None
    detail: str
    duration_ms: int
    url: str


# --- flows ----------------------------------------------------------------------------------------
class FlowMode(StrEnum):
    CREATE = "create"  # the platform creates the workflow in n8n (Webhook trigger + a starter node)
    REGISTER = "register"  # an existing workflow (workflowId) with a Webhook trigger


class _FlowFields(InputSchema):
    name: Name | None = None
    category: Category | None = None
    description: Description | None = None
    trigger_events: TriggerEvents | None = Field(
        default=None, description="Platform events the flow receives: exact names, prefix wildcards like "
                                  "`lead.*`, or `*` (the same patterns as webhooks)")


class FlowCreate(_FlowFields):
    mode: FlowMode = FlowMode.CREATE
    workflow_id: WorkflowId | None = Field(default=None, description="register: the n8n workflow's id")
    template: TemplateId | None = Field(default=None, description="Create from a template "
                                        "(GET /api/platform/n8n/templates); implies mode create")
    params: Params = None

    @model_validator(mode="after")
    def _mode(self) -> FlowCreate:
        if self.mode == FlowMode.REGISTER:
            if not self.workflow_id:
                raise ValueError("mode 'register' needs the workflowId of the n8n workflow")
            if self.template or self.params:
                raise ValueError("template and params are for mode 'create'")
        elif self.workflow_id:
            raise ValueError("workflowId is only for mode 'register'")
        if self.template is None and self.params:
            raise ValueError("params are the parameters of a template")
        if self.template is None and not self.name:
            raise ValueError("name is required")
        return self


class TemplateFlowCreate(_FlowFields):
    params: Params = None


class FlowUpdate(_FlowFields):
    """Partial update of the platform's record (the workflow in n8n is not changed)."""

    _not_null = omitted_not_null("name", "trigger_events")


class FlowRead(Schema):
    id: uuid.UUID
    name: str
    category: str | None
    description: str | None
    trigger_events: list[str]
    mode: FlowMode
    template: str | None
    workflow_id: str
    webhook_path: str | None = Field(description="null when the workflow has no Webhook trigger (schedule only)")
    webhook_url: str | None = Field(description="Where the platform POSTs the flow's events")
    active: bool = Field(description="As n8n last answered activate/deactivate")
    delivery_status: EndpointStatusName | None = Field(
        description="ACTIVE while the flow receives events, PAUSED while inactive, DISABLED after failing "
                    "continuously (activate again to resume); null without a Webhook trigger")
    delivery_status_reason: str | None
    secret: str | None = Field(description="Signing secret (Standard Webhooks), masked: only the last 4 characters")
    activated_at: datetime | None
    deactivated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FlowCreated(FlowRead):
    secret: str | None = Field(description="The full signing secret (`whsec_...`), shown only in this response: "
                               "verify the `webhook-signature` header in n8n with it if you wish")


# --- logs -----------------------------------------------------------------------------------------
class ExecutionStatus(StrEnum):
    """What n8n's GET /executions filters by."""

    canceled = "canceled"
    error = "error"
    running = "running"
    success = "success"
    waiting = "waiting"


class ExecutionRead(Schema):
    id: str
    workflow_id: str | None
    status: str | None = Field(description="canceled, crashed, error, new, running, success, unknown, waiting")
    mode: str | None
    finished: bool | None
    started_at: datetime | None
    stopped_at: datetime | None
    duration_ms: int | None = Field(description="stoppedAt - startedAt; null while running")
    retry_of: str | None
    data: Any | None = Field(default=None, description="The data processed (with includeData=true)")


class FlowDelivery(DeliveryRead):
    attempt_log: list[AttemptRead]


class FlowLogs(Schema):
    flow_id: uuid.UUID
    workflow_id: str
    executions: list[ExecutionRead] = Field(description="From n8n, newest first")
    next_cursor: str | None = Field(description="n8n's cursor: pass it back as `cursor` for older executions")
    executions_error: str | None = Field(description="Why executions could not be read from n8n (deliveries are "
                                        "still listed)")
    deliveries: list[FlowDelivery] = Field(description="The platform's deliveries to the flow, newest first, "
                                           "with every attempt")
    deliveries_next_cursor: str | None = Field(description="Pass as `deliveriesCursor` for older deliveries")


# --- templates ------------------------------------------------------------------------------------
class TemplateParamRead(Schema):
    name: str
    description: str
    required: bool
    secret: bool


class TemplateRead(Schema):
    id: str
    name: str
    description: str
    category: str
    trigger_events: list[str]
    trigger: str = Field(description="webhook (receives platform events) or schedule")
    parameters: list[TemplateParamRead]
