"""Stripe's webhook: verify, store once, answer; then a worker applies the stored events in Stripe's order.

The five types the platform acts on change subscriptions and invoices (newest state wins, see
`billing.subscription.service`); any other verified type is stored, counted and ignored.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import orjson
import stripe
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from billing.context import Billing
from billing.models import StripeEvent
from billing.stripe_settings import service as stripe_settings
from billing.subscription import service as subscriptions
from billing.webhook.repository import StripeEventRepository
from billing.webhook.schemas import WebhookAck
from common.db import Database, commit_each_statement, utcnow
from common.errors import BadRequest, Conflict

logger = logging.getLogger("billing.webhook")

TOLERANCE_SECONDS = 300
SECRET_CACHE_SECONDS = 5.0
MAX_ATTEMPTS = 5
HANDLED = {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
           "invoice.payment_succeeded", "invoice.payment_failed"}

RECEIVED = Counter("billing_stripe_events_received_total", "Verified Stripe webhook events", ["type", "duplicate"])
PROCESSED = Counter("billing_stripe_events_processed_total", "Stored Stripe events applied", ["type", "outcome"])


async def _webhook_secret(session: AsyncSession, billing: Billing) -> str:
    cached = billing.webhook_secret_cache
    if cached is not None and time.monotonic() - cached[1] < SECRET_CACHE_SECONDS:
        return cached[0]
    keys = await stripe_settings.keys(session, billing)
    if keys is None:
        raise Conflict("Stripe is not configured: no webhook secret to verify with", title="Stripe not configured")
    billing.webhook_secret_cache = (keys.webhook_secret, time.monotonic())
    return keys.webhook_secret


def _event_fields(body: bytes) -> tuple[str, str, int, dict[str, Any]]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON") from None
    if not isinstance(event, dict):
        raise BadRequest("The body is not a Stripe event object")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    if not (isinstance(event_id, str) and event_id.startswith("evt_") and 4 < len(event_id) <= 255):
        raise BadRequest("The event has no valid id (evt_…)")
    if not (isinstance(event_type, str) and 0 < len(event_type) <= 100):
        raise BadRequest("The event has no valid type")
    if not (isinstance(created, int) and not isinstance(created, bool) and 0 < created < 2**53):
        raise BadRequest("The event has no valid created timestamp")
    if not (isinstance(data, dict) and isinstance(data.get("object"), dict)):
        raise BadRequest("The event has no data.object")
    return event_id, event_type, created, event


async def receive(session: AsyncSession, billing: Billing, body: bytes, signature: str | None) -> WebhookAck:
    # The only write is one statement: it commits by itself (no BEGIN/COMMIT round trips on this hot path).
    await commit_each_statement(session)
    if not signature:
        raise BadRequest("Missing Stripe-Signature header")
    secret = await _webhook_secret(session, billing)
    try:
        payload = body.decode("utf-8")
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
    except (UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
        raise BadRequest(f"Stripe-Signature does not verify: {str(exc)[:200]}") from None
    event_id, event_type, created, event = _event_fields(body)
    try:
        new = await StripeEventRepository(session).store(stripe_event_id=event_id, type=event_type,
                                                         created=created, payload=event, received_at=utcnow())
    except UnicodeEncodeError:
        raise BadRequest("The event holds text PostgreSQL cannot store") from None
    RECEIVED.labels(event_type if event_type in HANDLED else "other", str(not new).lower()).inc()
    if new:
        billing.events_waiting.set()  # already committed
    return WebhookAck(duplicate=not new)


async def _apply(session: AsyncSession, billing: Billing, row: StripeEvent) -> str:
    if row.type not in HANDLED:
        return "ignored"
    obj = row.payload["data"]["object"]
    grace = timedelta(hours=billing.settings.billing_suspend_grace_hours)
    previous = row.payload["data"].get("previous_attributes") or {}
    if row.type.startswith("customer.subscription."):
        return await subscriptions.apply_subscription_event(session, row.type, obj, row.stripe_created,
                                                            previous, grace)
    return await subscriptions.apply_invoice_event(session, row.type, obj, row.stripe_created, grace)


async def process_batch(database: Database, billing: Billing) -> int:
    """Apply up to a batch of stored events in one transaction; on a failure, one by one (a bad event is
    retried a few times, then recorded as failed, and never blocks the others). Returns how many."""
    async with database.sessionmaker() as session:
        rows = await StripeEventRepository(session).claim(billing.settings.billing_event_batch)
        if not rows:
            return 0
        try:
            outcomes = [(row, await _apply(session, billing, row)) for row in rows]
            await StripeEventRepository(session).mark_many([(row.id, outcome) for row, outcome in outcomes])
            await session.commit()
        except Exception:
            await session.rollback()
            logger.exception("applying %d Stripe events failed; applying them one by one", len(rows))
            return await _one_by_one(database, billing, [r.id for r in rows])
    for row, outcome in outcomes:
        PROCESSED.labels(row.type if row.type in HANDLED else "other", outcome).inc()
    return len(rows)


async def _one_by_one(database: Database, billing: Billing, ids: list[Any]) -> int:
    for event_id in ids:
        async with database.sessionmaker() as session:
            row = await StripeEventRepository(session).get(event_id, for_update=True)
            if row is None or row.processed_at is not None:
                continue
            try:
                async with session.begin_nested():
                    outcome = await _apply(session, billing, row)
                await StripeEventRepository(session).mark(row.id, outcome=outcome)
            except Exception as exc:
                failed = row.attempts + 1 >= MAX_ATTEMPTS
                logger.exception("Stripe event %s (%s) failed (attempt %d)", row.stripe_event_id, row.type,
                                 row.attempts + 1)
                await StripeEventRepository(session).mark(row.id, outcome="failed" if failed else None,
                                                          error=repr(exc)[:2000], done=failed)
                outcome = "failed" if failed else "retry"
            await session.commit()
            PROCESSED.labels(row.type if row.type in HANDLED else "other", outcome).inc()
    return len(ids)
