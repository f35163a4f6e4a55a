"""The platform's Stripe account: keys validated, encrypted at rest, shown masked, testable."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing.context import Billing
from billing.models import StripeSettings
from billing.stripe_api import StripeApi, StripeRejected
from billing.stripe_settings.repository import StripeSettingsRepository
from billing.stripe_settings.schemas import (
    StripeSettingsRead,
    StripeSettingsUpdate,
    StripeTestRequest,
    StripeTestResult,
    key_mode,
)
from common.auth.dependencies import Principal
from common.db import utcnow
from common.db.secret_column import seal, unseal
from common.errors import Conflict, Unprocessable
from common.retrying import RetryableCall


class NotConfigured(Conflict):
    def __init__(self) -> None:
        super().__init__("Stripe is not configured: PUT /api/platform/integrations/stripe first",
                         title="Stripe not configured")


def masked(key: str) -> str:
    """`sk_test_…4242`: the prefix (kind and mode) and the last 4 characters."""
    parts = key.split("_")
    prefix = "_".join(parts[:2] if len(parts) > 2 and parts[1] in ("test", "live") else parts[:1]) + "_"
    return f"{prefix}…{key[-4:]}"


def webhook_url(billing: Billing) -> str:
    base = billing.settings.platform_public_url or f"http://localhost:{os.environ.get('GATEWAY_PORT', '8080')}"
    return base.rstrip("/") + "/api/webhooks/stripe"


def _read(billing: Billing, row: StripeSettings | None) -> StripeSettingsRead:
    if row is None:
        return StripeSettingsRead(configured=False, webhook_url=webhook_url(billing))
    return StripeSettingsRead(configured=True, mode=row.mode, publishable_key=row.publishable_key_hint,  # type: ignore[arg-type]
                              secret_key=row.secret_key_hint, webhook_secret=row.webhook_secret_hint,
                              updated_at=row.updated_at, webhook_url=webhook_url(billing))


async def get(session: AsyncSession, billing: Billing) -> StripeSettingsRead:
    return _read(billing, await StripeSettingsRepository(session).current())


async def put(session: AsyncSession, billing: Billing, principal: Principal,
              body: StripeSettingsUpdate) -> StripeSettingsRead:
    repo = StripeSettingsRepository(session)
    row = await repo.current(for_update=True)
    missing = [name for name, value in (("secretKey", body.secret_key), ("webhookSecret", body.webhook_secret))
               if row is None and value is None]
    if missing:
        raise Unprocessable(f"{', '.join(missing)}: required the first time Stripe is configured",
                            extra={"errors": [{"loc": ["body", m], "msg": "required", "type": "missing"}
                                              for m in missing]})
    mode = key_mode(body.publishable_key)
    if row is not None and body.secret_key is None and row.mode != mode:
        raise Unprocessable(f"publishableKey is a {mode} key but the stored secretKey is a {row.mode} key: "
                            "send a secretKey of the same mode")
    if row is not None and body.webhook_secret is None and row.mode != mode:
        raise Unprocessable(f"webhookSecret: required to switch to {mode} keys (Stripe signs {mode} events with "
                            f"the signing secret of a {mode} webhook endpoint, not the stored {row.mode} one)",
                            extra={"errors": [{"loc": ["body", "webhookSecret"], "msg": "required", "type": "missing"}]})
    if row is not None and row.mode != mode:
        # Imported here: it reaches sync, which imports this module.
        from billing.stripe_settings.mode_switch import start_over

        await start_over(session, leaving=row.mode, entering=mode)
    if row is None:
        row = StripeSettings(mode=mode, publishable_key_encrypted="", publishable_key_hint="",
                             secret_key_encrypted="", secret_key_hint="", webhook_secret_encrypted="",
                             webhook_secret_hint="")
        session.add(row)
    row.mode = mode
    for name, secret in (("publishable_key", body.publishable_key), ("secret_key", body.secret_key),
                         ("webhook_secret", body.webhook_secret)):
        if secret is not None:  # an omitted key is kept
            seal(row, name, secret, billing.box, masked)
    row.updated_by = principal.id
    billing.webhook_secret_cache = None  # this process verifies with the new secret at once
    row.updated_at = utcnow()
    await repo.flush()
    from billing.sync.service import retry_waiting  # (sync imports this module)

    await retry_waiting(session, billing)
    return _read(billing, row)


@dataclass(frozen=True)
class Keys:
    secret_key: str
    webhook_secret: str
    mode: str


async def keys(session: AsyncSession, billing: Billing) -> Keys | None:
    row = await StripeSettingsRepository(session).current()
    if row is None:
        return None
    return Keys(unseal(row, "secret_key", billing.box), unseal(row, "webhook_secret", billing.box), row.mode)


async def api(session: AsyncSession, billing: Billing) -> StripeApi:
    """The Stripe client with the stored key; 409 when Stripe is not configured."""
    found = await keys(session, billing)
    if found is None:
        raise NotConfigured()
    return billing.stripe(found.secret_key)


async def test(session: AsyncSession, billing: Billing, body: StripeTestRequest | None) -> StripeTestResult:
    """One real API call with the key: ok, wrong key (401/403) or unreachable."""
    secret = body.secret_key if body is not None and body.secret_key else None
    if secret is None:
        found = await keys(session, billing)
        if found is None:
            raise NotConfigured()
        secret = found.secret_key
    client = StripeApi(secret, api_base=billing.settings.stripe_api_base,
                       timeout=min(billing.settings.stripe_timeout_seconds, 10.0), attempts=1)
    started = time.monotonic()
    mode = key_mode(secret)
    try:
        await client.ping()
        result, status, detail = "ok", 200, "Stripe accepted the key"
    except StripeRejected as exc:
        wrong = exc.status in (401, 403)
        result, status, detail = ("wrong_key" if wrong else "error"), exc.status, str(exc)
    except RetryableCall as exc:
        result = "unreachable" if exc.status is None else "error"
        status, detail = exc.status, str(exc)
    return StripeTestResult(ok=result == "ok", result=result, mode=mode, status_code=status,  # type: ignore[arg-type]
                            detail=detail[:500], duration_ms=int((time.monotonic() - started) * 1000))


