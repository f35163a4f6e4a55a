"""The n8n instance the platform uses: its settings (URL, encrypted API key), the connection test, and the
client the bridge calls n8n with, whose failures become problem responses (502 with n8n's message, 504 on
timeout). Services never commit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from common.auth import Principal
from common.crypto import SecretBox, mask
from common.db import utcnow
from common.errors import Conflict, ProblemError, Unprocessable
from webhook_dispatcher.config import Settings
from webhook_dispatcher.models import N8nSettings
from webhook_dispatcher.n8n.client import N8nClient, N8nError, N8nProblem, N8nTimeout, connect, webhook_url
from webhook_dispatcher.n8n.repository import N8nRepository
from webhook_dispatcher.n8n.schemas import (
    N8nSettingsRead,
    N8nSettingsUpdate,
    N8nTestRequest,
    N8nTestResult,
)
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository


# --- n8n access ------------------------------------------------------------------------------------
def problem_of(exc: N8nProblem) -> ProblemError:
    if isinstance(exc, N8nTimeout):
        return ProblemError(exc.detail, status=504, title="n8n did not answer in time")
    if isinstance(exc, N8nError):
        return ProblemError(exc.detail, status=502, title="n8n refused the request",
                            extra={"n8nStatus": exc.status, "n8nMessage": exc.message})
    return ProblemError(exc.detail, status=502, title="n8n is unreachable")


@contextlib.asynccontextmanager
async def n8n_client(settings: Settings, url: str, api_key: str) -> AsyncIterator[N8nClient]:
    """A client whose failures become problem responses (502/504), the local state left unchanged."""
    try:
        async with connect(url, api_key, timeout=settings.n8n_timeout_seconds) as client:
            yield client
    except N8nProblem as exc:
        raise problem_of(exc) from None


async def configured(session: AsyncSession, box: SecretBox) -> tuple[str, str]:
    row = await N8nRepository(session).settings()
    if row is None:
        raise Conflict("n8n is not configured yet: PUT /api/platform/integrations/n8n {url, apiKey} first",
                       title="n8n not configured")
    return row.url, box.decrypt(row.api_key_encrypted)


# --- settings --------------------------------------------------------------------------------------
def _settings_read(row: N8nSettings | None) -> N8nSettingsRead:
    if row is None:
        return N8nSettingsRead(configured=False, url=None, api_key=None, updated_at=None)
    return N8nSettingsRead(configured=True, url=row.url, api_key=row.api_key_hint, updated_at=row.updated_at)


async def get_settings(session: AsyncSession) -> N8nSettingsRead:
    return _settings_read(await N8nRepository(session).settings())


async def put_settings(session: AsyncSession, box: SecretBox, principal: Principal,
                       body: N8nSettingsUpdate) -> N8nSettingsRead:
    """Save URL and key (the key encrypted at rest). A new URL moves every flow's webhook URL with it."""
    repo = N8nRepository(session)
    row = await repo.settings(for_update=True)
    if row is None and not body.api_key:
        raise Unprocessable("apiKey: required the first time n8n is configured",
                            extra={"errors": [{"loc": ["body", "apiKey"], "msg": "required", "type": "missing"}]})
    if row is None:
        row = N8nSettings(singleton=True, url=body.url, api_key_encrypted="", api_key_hint="")
        old_url = None
    else:
        old_url = row.url
    if body.api_key:
        row.api_key_encrypted = box.encrypt(body.api_key)
        row.api_key_hint = mask(body.api_key) or "****"
    row.url = body.url
    row.updated_by = principal.id
    row.updated_at = utcnow()
    if old_url is None:
        await repo.add(row)
    else:
        await repo.flush()
    if old_url is not None and old_url != body.url:
        endpoints = WebhookEndpointRepository(session)
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
    key = (body.api_key if body else None) or (box.decrypt(row.api_key_encrypted) if row else None)
    if not url or not key:
        raise Conflict("n8n is not configured: save {url, apiKey} first or send them in the body to test them",
                       title="n8n not configured")
    async with connect(url, key, timeout=settings.n8n_timeout_seconds) as client:
        probe = await client.probe()
    return N8nTestResult(ok=probe.reachable and probe.key_accepted is True, reachable=probe.reachable,
                         key_accepted=probe.key_accepted, version=probe.version, status_code=probe.status_code,
                         detail=probe.detail, duration_ms=probe.duration_ms, url=url)

