"""Endpoint rules: create + verify, change, pause/resume, rotate secrets, test, delete.

Services take the session and what they use of the runtime (settings, secret box, transport) and never
commit (STYLE habit 3). The endpoint's health (failing, disabled, re-enabled) is `health.update_health`.
Calls to the subscriber (challenge, test) are made before any statement where possible, so no
database connection waits on someone else's server.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from common.api import KeysetPage, PageParams
from common.auth import Principal
from common.crypto import SecretBox, mask
from common.db import utcnow
from common.errors import Conflict, NotFound, Unprocessable, found
from common.events import build_event, format_timestamp, patterns_matching
from webhook_dispatcher.config import Settings
from webhook_dispatcher.delivery.repository import DeliveryRepository
from webhook_dispatcher.delivery.schemas import RecoverRequest
from webhook_dispatcher.delivery.service import recover as recover_deliveries
from webhook_dispatcher.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EndpointKind,
    EndpointStatus,
    Event,
    WebhookEndpoint,
)
from webhook_dispatcher.outbound.messages import build_headers
from webhook_dispatcher.outbound.signing import generate_secret, secret_key
from webhook_dispatcher.outbound.transport import AttemptResult, ErrorClass, WebhookTransport
from webhook_dispatcher.security import UnsafeURL
from webhook_dispatcher.webhook.health import update_health
from webhook_dispatcher.webhook.repository import WebhookEndpointRepository
from webhook_dispatcher.webhook.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointStatusName,
    EndpointUpdate,
    RecoveryOffer,
    Resumed,
    RotateSecret,
    SecretRotated,
    StatusChange,
    TestSent,
    VerificationRead,
)

tracer = trace.get_tracer("webhook_dispatcher.webhook")

VERIFICATION_EVENT = "webhook.verification"
TEST_EVENT = "webhook.test"


def _read(endpoint: WebhookEndpoint, *, verification: VerificationRead | None = None) -> EndpointRead:
    return EndpointRead.model_validate(endpoint).model_copy(update={"verification": verification})


async def check_url(transport: WebhookTransport, url: str) -> None:
    """URL rules (ARCHITECTURE §3): 422 with the reason when the URL or what it resolves to is refused."""
    try:
        await transport.check(url, fresh=True)
    except UnsafeURL as exc:
        raise Unprocessable(f"url: {exc.reason}", title="Webhook URL refused",
                            extra={"errors": [{"loc": ["body", "url"], "msg": exc.reason,
                                               "type": exc.error_class}]}) from None


# --- the subscriber's side: challenge and test -----------------------------------------------------
@dataclass
class Sent:
    event_id: uuid.UUID
    body: bytes
    occurred_at: datetime
    result: AttemptResult
    error: str | None  # why it does not count as a success (None: success)

    def verification(self, delivery_id: uuid.UUID) -> VerificationRead:
        return VerificationRead(success=self.error is None, status_code=self.result.status_code, error=self.error,
                                duration_ms=self.result.duration_ms, delivery_id=delivery_id)


def _challenge_error(result: AttemptResult, challenge: str) -> str | None:
    if result.status_code is None or result.error_class not in (None, ErrorClass.HTTP):
        return f"the challenge could not be delivered ({result.describe()})"
    if not 200 <= result.status_code < 300:
        return f"the endpoint answered HTTP {result.status_code} to the challenge; expected 2xx echoing it"
    body = result.response_body or ""
    if body.strip() == challenge:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("challenge") == challenge:
        return None
    return ('the endpoint answered 2xx but did not echo the challenge: answer with the JSON '
            '{"challenge": "<the challenge>"} or with the challenge as plain text')


async def _send_once(transport: WebhookTransport, settings: Settings, endpoint_id: uuid.UUID, url: str,
                     keys: list[bytes], event: str, body_value: dict[str, Any]) -> tuple[bytes, AttemptResult]:
    body = orjson.dumps(body_value)
    with tracer.start_as_current_span(f"webhook {event}", kind=trace.SpanKind.CLIENT,
                                      attributes={"webhook.endpoint_id": str(endpoint_id)}):
        headers = build_headers(body_value["id"], body, keys, user_agent=settings.webhook_user_agent)
        result = await transport.post(url, body, headers)
    return body, result


async def _challenge(transport: WebhookTransport, settings: Settings, endpoint_id: uuid.UUID, url: str,
                     key: bytes) -> Sent:
    challenge = secrets.token_urlsafe(32)
    event_id, now = uuid.uuid4(), datetime.now(UTC)
    message = {"id": str(event_id), "event": VERIFICATION_EVENT, "timestamp": format_timestamp(now),
               "data": {"challenge": challenge}}
    body, result = await _send_once(transport, settings, endpoint_id, url, [key], VERIFICATION_EVENT, message)
    return Sent(event_id, body, now, result, _challenge_error(result, challenge))


async def _record_single(session: AsyncSession, endpoint: WebhookEndpoint, event_type: str, sent: Sent) -> uuid.UUID:
    """A one-off message (challenge, test) with its single attempt, visible in the delivery log."""
    result = sent.result
    ok = sent.error is None
    delivery = Delivery(
        id=uuid.uuid4(), endpoint_id=endpoint.id, event_id=sent.event_id, event_type=event_type,
        ordering_key=f"webhook:{endpoint.id}", status=DeliveryStatus.SUCCEEDED if ok else DeliveryStatus.FAILED,
        attempts=1, cycle_attempts=1, last_attempt_at=result.started_at, last_status_code=result.status_code,
        last_error_class=result.error_class, last_error=sent.error and sent.error[:1000],
        delivered_at=utcnow() if ok else None)
    await DeliveryRepository(session).record_one_off(
        Event(id=sent.event_id, event_type=event_type, occurred_at=sent.occurred_at, tenant_id=None,
              ordering_key=f"webhook:{endpoint.id}", body=sent.body.decode()),
        delivery,
        Attempt(delivery_id=delivery.id, endpoint_id=endpoint.id, number=1, started_at=result.started_at,
                duration_ms=result.duration_ms, url=endpoint.url[:2048], target_ip=result.target_ip,
                request_headers=result.request_headers, status_code=result.status_code,
                response_headers=result.response_headers, response_body=result.response_body, success=ok,
                error_class=result.error_class, error=(sent.error or result.error or "")[:1000] or None))
    return delivery.id


def _signing_key(box: SecretBox, encrypted: str) -> bytes:
    return secret_key(box.decrypt(encrypted))


def _apply_verification(endpoint: WebhookEndpoint, sent: Sent, *, activate: bool) -> None:
    endpoint.verification_error = sent.error[:1000] if sent.error else None
    if sent.error is None:
        endpoint.verified_at = utcnow()
        if activate:
            endpoint.status = EndpointStatus.ACTIVE
            endpoint.status_reason = None
            endpoint.failing_since = None


# --- use cases ---------------------------------------------------------------------------------------
async def _get(session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False) -> WebhookEndpoint:
    endpoint = await WebhookEndpointRepository(session).get(endpoint_id, for_update=for_update, kind=EndpointKind.WEBHOOK)
    return found(endpoint, f"Webhook endpoint {endpoint_id} not found")


async def create(session: AsyncSession, box: SecretBox, settings: Settings, transport: WebhookTransport,
                 principal: Principal, payload: EndpointCreate) -> EndpointCreated:
    await check_url(transport, payload.url)
    secret = payload.secret or generate_secret()
    endpoint_id = uuid.uuid4()
    # The challenge goes out before anything is written: no transaction waits on the subscriber.
    sent = await _challenge(transport, settings, endpoint_id, payload.url, secret_key(secret))
    endpoint = WebhookEndpoint(
        id=endpoint_id, url=payload.url, description=payload.description, events=payload.events,
        status=EndpointStatus.PENDING_VERIFICATION, secret_encrypted=box.encrypt(secret),
        secret_hint=mask(secret) or "****",
        max_concurrency=payload.max_concurrency or settings.webhook_default_max_concurrency,
        rate_limit_per_second=payload.rate_limit_per_second, ordered=payload.ordered, created_by=principal.id,
    )
    _apply_verification(endpoint, sent, activate=True)
    repo = WebhookEndpointRepository(session)
    await repo.add(endpoint)
    delivery_id = await _record_single(session, endpoint, VERIFICATION_EVENT, sent)
    await repo.notify_changed(endpoint.id)
    read = _read(endpoint, verification=sent.verification(delivery_id))
    return EndpointCreated(**(dict(read) | {"secret": secret}))


async def get(session: AsyncSession, endpoint_id: uuid.UUID) -> EndpointRead:
    return _read(await _get(session, endpoint_id))


async def list_endpoints(session: AsyncSession, *, statuses: Sequence[EndpointStatusName] = (),
                         event_type: str | None = None, q: str | None = None,
                         page: PageParams) -> KeysetPage[EndpointRead]:
    """`event_type`: only the endpoints that would receive it (subscribed to a pattern routing matches)."""
    patterns = None if event_type is None else patterns_matching(event_type)
    items, total = await WebhookEndpointRepository(session).list(statuses=statuses, patterns=patterns, q=q,
                                                          limit=page.limit, offset=page.offset,
                                                          cursor=page.cursor)
    return KeysetPage[EndpointRead].of(items, total, page)


async def verify(session: AsyncSession, box: SecretBox, settings: Settings, transport: WebhookTransport,
                 endpoint_id: uuid.UUID) -> EndpointRead:
    """Send the challenge again. PENDING_VERIFICATION becomes ACTIVE on success; other states keep theirs."""
    endpoint = await _get(session, endpoint_id)
    url, key = endpoint.url, _signing_key(box, endpoint.secret_encrypted)
    sent = await _challenge(transport, settings, endpoint.id, url, key)
    endpoint = await _get(session, endpoint_id, for_update=True)
    if endpoint.url != url:
        raise Conflict("The endpoint's URL changed while it was being verified; verify again")
    _apply_verification(endpoint, sent, activate=endpoint.status == EndpointStatus.PENDING_VERIFICATION)
    endpoint.updated_at = utcnow()
    delivery_id = await _record_single(session, endpoint, VERIFICATION_EVENT, sent)
    repo = WebhookEndpointRepository(session)
    await repo.flush()
    await repo.notify_changed(endpoint.id)
    return _read(endpoint, verification=sent.verification(delivery_id))


async def update(session: AsyncSession, box: SecretBox, settings: Settings, transport: WebhookTransport,
                 endpoint_id: uuid.UUID, payload: EndpointUpdate) -> EndpointRead:
    given = payload.model_fields_set
    endpoint = await _get(session, endpoint_id)
    new_url = payload.url if "url" in given else None
    sent = None
    if new_url is not None and new_url != endpoint.url:
        await check_url(transport, new_url)
        sent = await _challenge(transport, settings, endpoint.id, new_url,
                                _signing_key(box, endpoint.secret_encrypted))
    endpoint = await _get(session, endpoint_id, for_update=True)
    for name in ("events", "description", "max_concurrency", "rate_limit_per_second", "ordered"):
        if name in given:
            setattr(endpoint, name, getattr(payload, name))
    verification = None
    if sent is not None and new_url is not None:
        # A new URL receives nothing until it has answered the challenge.
        endpoint.url = new_url
        endpoint.status = EndpointStatus.PENDING_VERIFICATION
        endpoint.status_reason = None
        endpoint.verified_at = None
        _apply_verification(endpoint, sent, activate=True)
        verification = sent.verification(await _record_single(session, endpoint, VERIFICATION_EVENT, sent))
    endpoint.updated_at = utcnow()
    repo = WebhookEndpointRepository(session)
    await repo.flush()
    await repo.notify_changed(endpoint.id)
    return _read(endpoint, verification=verification)


async def delete(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """Soft delete: the endpoint stops receiving at once; its delivery log stays until the retention."""
    endpoint = await WebhookEndpointRepository(session).get(endpoint_id, for_update=True, include_deleted=True,
                                                     kind=EndpointKind.WEBHOOK)
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    if endpoint.status == EndpointStatus.DELETED:
        return
    endpoint.status = EndpointStatus.DELETED
    endpoint.deleted_at = endpoint.updated_at = utcnow()
    repo = WebhookEndpointRepository(session)
    await repo.flush()
    await DeliveryRepository(session).fail_pending(endpoint.id, "endpoint deleted")
    await repo.notify_changed(endpoint.id)


async def pause(session: AsyncSession, endpoint_id: uuid.UUID, body: StatusChange) -> EndpointRead:
    """ACTIVE -> PAUSED: no new deliveries; pending ones wait and go out on resume."""
    endpoint = await _get(session, endpoint_id, for_update=True)
    if endpoint.status == EndpointStatus.PAUSED:
        return _read(endpoint)
    if endpoint.status != EndpointStatus.ACTIVE:
        raise Conflict(f"Endpoint is {endpoint.status}; only an ACTIVE endpoint can be paused")
    endpoint.status = EndpointStatus.PAUSED
    endpoint.status_reason = body.reason
    endpoint.paused_at = endpoint.updated_at = utcnow()
    repo = WebhookEndpointRepository(session)
    await repo.flush()
    await repo.notify_changed(endpoint.id)
    return _read(endpoint)


RECOVERY_OFFER_LAG = timedelta(minutes=1)


async def resume(session: AsyncSession, settings: Settings, endpoint_id: uuid.UUID,
                 body: StatusChange) -> Resumed:
    """PAUSED or DISABLED -> ACTIVE (re-enabling a disabled endpoint emits `webhook.endpoint.recovered`),
    with an offer to recover what it missed meanwhile."""
    endpoint = await _get(session, endpoint_id, for_update=True)
    if endpoint.status == EndpointStatus.ACTIVE:
        return Resumed(**dict(_read(endpoint)))
    if endpoint.status not in (EndpointStatus.PAUSED, EndpointStatus.DISABLED):
        raise Conflict(f"Endpoint is {endpoint.status}; verify it first (POST /{{id}}/verify)")
    # Off since it was paused, or since its failing clock started (disabled), less the consumer's lag
    # (events that happened just before but reached the dispatcher after). What failed since its last
    # success may carry older events.
    off_since = (endpoint.paused_at if endpoint.status == EndpointStatus.PAUSED else None) \
        or endpoint.failing_since or endpoint.disabled_at or endpoint.updated_at
    off_since -= RECOVERY_OFFER_LAG
    oldest_failed = await DeliveryRepository(session).earliest_failed_event(endpoint.id)
    if oldest_failed is not None and oldest_failed < off_since:
        off_since = oldest_failed
    repo = WebhookEndpointRepository(session)
    if endpoint.status == EndpointStatus.DISABLED:
        await update_health(session, reenable={endpoint.id: body.reason})
        await session.refresh(endpoint)
    else:
        endpoint.status = EndpointStatus.ACTIVE
        endpoint.status_reason = body.reason
        endpoint.failing_since = None
        endpoint.disabled_at = None
        endpoint.paused_at = None
        endpoint.updated_at = utcnow()
        await repo.flush()
        await repo.notify_changed(endpoint.id)
    offer = await recover_deliveries(session, endpoint.id, RecoverRequest(since=off_since, dryRun=True),
                                     max_count=settings.webhook_recover_max,
                                     default_rate=settings.webhook_recover_rate_per_second)
    since = format_timestamp(off_since)
    return Resumed(**dict(_read(endpoint)), recovery_offer=RecoveryOffer(
        since=off_since, count=offer.count, failed=offer.failed, missed=offer.missed,
        recover={"since": since, "status": ["FAILED", "MISSED"]}))


async def rotate_secret(session: AsyncSession, box: SecretBox, settings: Settings, endpoint_id: uuid.UUID,
                        body: RotateSecret) -> SecretRotated:
    """New secret now; the old one keeps signing too (second signature) for the grace period."""
    longest = settings.webhook_rotation_grace_hours_max
    if body.grace_hours is not None and body.grace_hours > longest:  # asked for more than allowed: say so
        raise Unprocessable(f"graceHours is at most {longest:g} here")
    grace = min(settings.webhook_rotation_grace_hours_default if body.grace_hours is None else body.grace_hours,
                longest)
    endpoint = await _get(session, endpoint_id, for_update=True)
    secret = body.secret or generate_secret()
    if grace > 0:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = utcnow() + timedelta(hours=grace)
    else:
        endpoint.previous_secret_encrypted = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_encrypted = box.encrypt(secret)
    endpoint.secret_hint = mask(secret) or "****"
    endpoint.updated_at = utcnow()
    repo = WebhookEndpointRepository(session)
    await repo.flush()
    await repo.notify_changed(endpoint.id)
    return SecretRotated(**(dict(_read(endpoint)) | {"secret": secret}))


async def send_test(session: AsyncSession, box: SecretBox, settings: Settings, transport: WebhookTransport,
                    endpoint_id: uuid.UUID) -> TestSent:
    """One signed `webhook.test` to this endpoint only, sent now; the attempt is recorded (no retries)."""
    endpoint = await _get(session, endpoint_id)
    if endpoint.status == EndpointStatus.PENDING_VERIFICATION:
        raise Conflict("The endpoint is not verified yet: POST /{id}/verify first")
    # The row just read: a rotation a moment ago counts (both signatures while the old secret is in grace).
    keys = [_signing_key(box, endpoint.secret_encrypted)]
    if endpoint.secret_rotation is not None and endpoint.previous_secret_encrypted:
        keys.append(_signing_key(box, endpoint.previous_secret_encrypted))
    envelope = build_event(TEST_EVENT, {"endpointId": endpoint.id})
    body, result = await _send_once(transport, settings, endpoint.id, endpoint.url, keys, TEST_EVENT,
                                    envelope.to_webhook())
    sent = Sent(envelope.id, body, envelope.timestamp, result, None if result.success else result.describe())
    delivery_id = await _record_single(session, endpoint, TEST_EVENT, sent)
    return TestSent(delivery_id=delivery_id, event_id=envelope.id, success=result.success,
                    status_code=result.status_code, error=sent.error, duration_ms=result.duration_ms)
