"""Stripe's webhook: verify, store once, answer; then a worker applies the stored events in Stripe's order.

The five types the platform acts on change subscriptions and invoices (newest state wins, see
`billing.subscription.service`); any other verified type is stored, counted and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import orjson
import stripe
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from billing import events
from billing.context import Billing
from billing.stripe_settings import service as stripe_settings
from billing.subscription import service as subscriptions
from billing.subscription.stripe_objects import InvoiceState
from billing.webhook.repository import PendingEvent, StripeEventRepository, store_event
from billing.webhook.schemas import WebhookAck
from common.db import Database
from common.errors import BadRequest, Conflict

logger = logging.getLogger("billing.webhook")

TOLERANCE_SECONDS = 300
SECRET_CACHE_SECONDS = 5.0
SECRET_REFRESH_SECONDS = 1.0
MAX_ATTEMPTS = 5
INVOICE_TYPES = {"invoice.payment_succeeded", "invoice.payment_failed"}
YIELD_EVERY = 10
HANDLED = {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
           "invoice.payment_succeeded", "invoice.payment_failed"}

RECEIVED = Counter("billing_stripe_events_received_total", "Verified Stripe webhook events", ["type", "duplicate"])
# jsonb refuses \u0000 (22P05) and text it cannot convert (22021): the sender's fault, not ours.
UNSTORABLE_TEXT = {"22P05", "22021"}
OTHER_MODE = Counter("billing_stripe_events_other_mode_total", "Verified Stripe events of the other mode than the "
                     "configured keys (livemode), acknowledged and not applied", ["livemode"])
PROCESSED = Counter("billing_stripe_events_processed_total", "Stored Stripe events applied", ["type", "outcome"])


async def _webhook_keys(billing: Billing, *, fresh: bool = False) -> tuple[str, str]:
    """The webhook secret and the keys' mode (test | live), decrypted once and kept a few seconds (one read
    per interval, not per event). A PUT in this process drops them at once; `fresh` re-reads them (keys
    changed by another replica), at most once a second (a flood of forged signatures must not become a
    flood of reads)."""
    cached = billing.webhook_secret_cache
    max_age = SECRET_REFRESH_SECONDS if fresh else SECRET_CACHE_SECONDS
    if cached is not None and time.monotonic() - cached[2] < max_age:
        return cached[0], cached[1]
    assert billing.database is not None
    async with billing.database.sessionmaker() as session:
        keys = await stripe_settings.keys(session, billing)
    if keys is None:
        raise Conflict("Stripe is not configured: no webhook secret to verify with", title="Stripe not configured")
    billing.webhook_secret_cache = (keys.webhook_secret, keys.mode, time.monotonic())
    return keys.webhook_secret, keys.mode


def _refusal(payload: str, signature: str, secret: str) -> str | None:
    """Why the SDK refuses this signature, or None when it verifies."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        return str(exc)[:200]
    return None


def _event_fields(body: bytes) -> tuple[str, str, int, bool]:
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
    livemode = event.get("livemode")
    if not isinstance(livemode, bool):
        raise BadRequest("The event has no livemode")
    return event_id, event_type, created, livemode


async def receive(billing: Billing, body: bytes, signature: str | None) -> WebhookAck:
    """Verify, then store in ONE autocommitted statement (committed before the 2xx), then wake the worker."""
    if not signature:
        raise BadRequest("Missing Stripe-Signature header")
    if not signature.isascii():
        # Stripe's header is hex and ASCII; the SDK's comparison (hmac.compare_digest) raises TypeError on anything
        # else, which would be a 500 anyone can cause.
        raise BadRequest("Stripe-Signature does not verify: it is not ASCII")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Stripe-Signature does not verify: the body is not UTF-8") from None
    secret, mode = await _webhook_keys(billing)
    refusal = _refusal(payload, signature, secret)
    if refusal is not None:
        # The cached secret may be an old one (changed by another replica): check against the stored one.
        fresh, mode = await _webhook_keys(billing, fresh=True)
        if fresh != secret:
            refusal = _refusal(payload, signature, fresh)
        if refusal is not None:
            raise BadRequest(f"Stripe-Signature does not verify: {refusal}")
    event_id, event_type, created, livemode = _event_fields(body)
    if livemode != (mode == "live"):
        # Signed by this endpoint's secret, yet of the other mode (a test event on live keys, or the reverse):
        # never applied. Acknowledged, because Stripe retries any other answer for days.
        OTHER_MODE.labels("live" if livemode else "test").inc()
        logger.warning("Stripe event %s (%s) is a %s event but the keys are %s keys: acknowledged, not applied",
                       event_id, event_type, "live" if livemode else "test", mode)
        return WebhookAck(duplicate=False, ignored="livemode")
    assert billing.database is not None
    try:
        async with billing.ack_slots, billing.database.autocommit.connect() as conn:
            new = await store_event(conn, stripe_event_id=event_id, type=event_type, created=created, body=payload)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT:
            raise BadRequest("The event holds text PostgreSQL cannot store") from None
        raise
    RECEIVED.labels(event_type if event_type in HANDLED else "other", str(not new).lower()).inc()
    if new:
        billing.events_waiting.set()  # already committed
    return WebhookAck(duplicate=not new)


async def _apply(session: AsyncSession, billing: Billing, type: str, payload: dict[str, Any], created: int,
                 *, inserted: bool = False) -> str:
    if type not in HANDLED:
        return "ignored"
    obj = payload["data"]["object"]
    grace = timedelta(hours=billing.settings.billing_suspend_grace_hours)
    previous = payload["data"].get("previous_attributes") or {}
    if type.startswith("customer.subscription."):
        return await subscriptions.apply_subscription_event(session, type, obj, created, previous, grace)
    return await subscriptions.apply_invoice_event(session, type, obj, created, grace, inserted=inserted)


def _first_sights(rows: list[PendingEvent]) -> dict[str, PendingEvent]:
    """Invoice events that can be inserted up front in one statement: they name their tenant (no lookup
    that an earlier event of the batch could change) and are their invoice's only event in the batch."""
    by_invoice: dict[str, list[PendingEvent]] = {}
    for row in rows:
        if row.type in INVOICE_TYPES:
            obj = row.payload["data"]["object"]
            if InvoiceState.of(obj).tenant_id is not None:
                by_invoice.setdefault(str(obj["id"]), []).append(row)
    return {invoice: found[0] for invoice, found in by_invoice.items() if len(found) == 1}


async def process_batch(database: Database, billing: Billing) -> int:
    """Apply up to a batch of stored events in one transaction, in Stripe's order, with few round trips:
    one claim, new invoices inserted together, the `billing.*` events written together (in order) at the
    end, one update marking the batch. On a failure, one by one (a bad event is retried a few times, then
    recorded as failed, and never blocks the others). Returns how many."""
    async with database.sessionmaker() as session:
        rows = await StripeEventRepository(session).claim_pending(billing.settings.billing_event_batch)
        if not rows:
            return 0
        try:
            first = _first_sights(rows)
            inserted = await subscriptions.insert_new_invoices(
                session, [(row.payload["data"]["object"], row.stripe_created) for row in first.values()])
            fresh = {id(first[invoice]) for invoice in inserted}
            events.collect_events(session)
            outcomes = []
            for n, row in enumerate(rows, 1):
                outcomes.append(await _apply(session, billing, row.type, row.payload, row.stripe_created,
                                             inserted=id(row) in fresh))
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a long batch without I/O must not hold acknowledgements back
            await events.write_collected(session)
            await StripeEventRepository(session).mark_many([(row.id, outcome) for row, outcome in
                                                             zip(rows, outcomes, strict=True)])
            await session.commit()
        except Exception:
            await session.rollback()
            logger.exception("applying %d Stripe events failed; applying them one by one", len(rows))
            return await _one_by_one(database, billing, [r.id for r in rows])
    for row, outcome in zip(rows, outcomes, strict=True):
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
                    outcome = await _apply(session, billing, row.type, row.payload, row.stripe_created)
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
