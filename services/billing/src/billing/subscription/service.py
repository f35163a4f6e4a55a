"""Subscriptions and invoices as Stripe last said, and the `billing.*` events their changes publish.

Newest state wins: each row keeps Stripe's time of the state it holds (`state_at`, the event's `created`);
an older event changes nothing and publishes nothing, so duplicates and shuffled deliveries end in the
state of the last event by Stripe's order and each change is published once.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing import events
from billing.models import Subscription
from billing.plan.repository import PlanRepository
from billing.subscription.repository import CustomerRepository, InvoiceRepository, SubscriptionRepository
from billing.subscription.stripe_objects import INVOICE_STATUS_RANK, InvoiceState, SubscriptionState
from common.db import utcnow

ENDED = {"canceled", "incomplete_expired"}
# Stripe gave up: the subscription is unpaid, or it was canceled for non-payment.
GAVE_UP_REASONS = {"payment_failed", "payment_disputed"}


async def mark_overdue(session: AsyncSession, row: Subscription, invoice_id: str | None,
                       grace: timedelta | None) -> None:
    """Stripe gave up collecting: the grace period starts (once). With no grace, tenants hears at once."""
    if row.overdue_since is None:
        row.overdue_since, row.overdue_invoice_id = utcnow(), invoice_id
    elif invoice_id is not None and row.overdue_invoice_id is None:
        row.overdue_invoice_id = invoice_id
    if grace is not None and grace.total_seconds() == 0:
        await publish_delinquent(session, row, grace)


def clear_overdue(row: Subscription) -> None:
    row.overdue_since = row.overdue_invoice_id = row.delinquent_at = None


async def payment_settles(session: AsyncSession, row: Subscription, paid: Any) -> bool:
    """Whether the payment of invoice `paid` (its row) ends the subscription's delinquency: the overdue
    invoice's own payment does, and so does a newer invoice's (by Stripe's `created`: Stripe makes the
    subscription active again when its latest invoice is paid); an older invoice's, seen late, does not.
    Not overdue, overdue with no invoice known, or an invoice of unknown age (seen before `created` was
    kept): any payment does, as before."""
    if row.overdue_since is None or row.overdue_invoice_id in (None, paid.stripe_invoice_id):
        return True
    overdue = await InvoiceRepository(session).by_stripe_id(row.overdue_invoice_id)
    if overdue is None or overdue.stripe_created is None or paid.stripe_created is None:
        return True
    return bool(paid.stripe_created > overdue.stripe_created)


async def publish_delinquent(session: AsyncSession, row: Subscription, grace: timedelta) -> None:
    if row.delinquent_at is not None or row.overdue_since is None:
        return
    row.delinquent_at = utcnow()
    await events.publish(session, "billing.subscription.delinquent", {
        "tenantId": row.tenant_id, "subscriptionId": row.stripe_subscription_id,
        "invoiceId": row.overdue_invoice_id, "overdueSince": row.overdue_since,
        "graceHours": grace.total_seconds() / 3600}, key=row.tenant_id, tenant_id=row.tenant_id)


async def publish_due_delinquencies(session: AsyncSession, grace: timedelta, limit: int = 500) -> int:
    """Every subscription whose grace period has ended since the last look: one event each."""
    rows = await SubscriptionRepository(session).grace_ended(utcnow() - grace, limit)
    for row in rows:
        await publish_delinquent(session, row, grace)
    await SubscriptionRepository(session).flush()
    return len(rows)


def now_stripe_time() -> int:
    """A state read from an API answer is as of now (Stripe's clock and ours agree to the second)."""
    return int(time.time())


async def _plan_code(session: AsyncSession, price_id: str | None) -> str | None:
    if price_id is None:
        return None
    plan = await PlanRepository(session).by_price(price_id)
    return plan.code if plan is not None else None


def _subscription_data(row: Subscription, **extra: Any) -> dict[str, Any]:
    return {"tenantId": row.tenant_id, "subscriptionId": row.stripe_subscription_id, "plan": row.plan_code,
            "priceId": row.stripe_price_id, "status": row.status, "currentPeriodEnd": row.current_period_end,
            "cancelAtPeriodEnd": row.cancel_at_period_end} | extra


async def _publish_subscription(session: AsyncSession, name: str, row: Subscription, **extra: Any) -> None:
    await events.publish(session, name, _subscription_data(row, **extra), key=row.tenant_id, tenant_id=row.tenant_id)


async def _tenant_of_customer(session: AsyncSession, customer: str | None) -> uuid.UUID | None:
    if customer is None:
        return None
    found = await CustomerRepository(session).by_stripe_id(customer)
    return found.tenant_id if found is not None else None


async def record_subscription(session: AsyncSession, state: SubscriptionState, state_at: int, *,
                              tenant_id: uuid.UUID | None = None, deleted: bool = False,
                              changed_in_stripe: bool = False, requested_price: str | None = None,
                              grace: timedelta | None = None) -> str:
    """Apply one state of a Stripe subscription (from a webhook event or an API answer); publishes what
    changed. Returns the outcome: applied, unchanged, stale, no_tenant or other_subscription."""
    repo = SubscriptionRepository(session)
    tenant_id = tenant_id or state.tenant_id or await _tenant_of_customer(session, state.customer)
    row = await repo.by_stripe_id(state.id, for_update=True)
    if row is None:
        if tenant_id is None:
            return "no_tenant"
        existing = await repo.by_tenant(tenant_id, for_update=True)
        if existing is not None:
            if existing.status not in ENDED and state.status not in ENDED:
                return "other_subscription"  # a second live subscription for one tenant: left to a human
            if existing.status not in ENDED or state_at < existing.state_at:
                return "stale"
            # The tenant subscribes again after an ended one: the row follows the new subscription.
            existing.stripe_subscription_id, existing.state_at = state.id, -1
            row = existing
    plan_code = await _plan_code(session, state.price_id)
    status = "canceled" if deleted else state.status
    if row is None:
        assert tenant_id is not None
        row = await repo.insert_once({
            "tenant_id": tenant_id, "stripe_subscription_id": state.id, "stripe_customer_id": state.customer or "",
            "stripe_item_id": state.item_id, "stripe_price_id": state.price_id,
            "requested_price_id": requested_price or state.price_id, "plan_code": plan_code, "status": status,
            "current_period_end": state.current_period_end, "cancel_at_period_end": state.cancel_at_period_end,
            "canceled_at": state.canceled_at, "state_at": state_at})
        if row is None:  # created concurrently: apply as an update of that row
            return await record_subscription(session, state, state_at, tenant_id=tenant_id, deleted=deleted,
                                             changed_in_stripe=changed_in_stripe, requested_price=requested_price,
                                             grace=grace)
        await _publish_subscription(session, "billing.subscription.created", row, previousStatus=None,
                                    planChangedInStripe=False)
        if status in ENDED:
            await _publish_subscription(session, "billing.subscription.canceled", row, previousStatus=None,
                                        cancellationReason=state.cancellation_reason)
        return "applied"
    if requested_price is not None:
        row.requested_price_id = requested_price  # asked for now, whatever the answer's age
    if state_at < row.state_at:
        await repo.flush()
        return "stale"
    before = (row.status, row.stripe_price_id, row.cancel_at_period_end, row.current_period_end)
    previous_status, previous_plan = row.status, row.plan_code
    row.status = status
    row.stripe_item_id = state.item_id or row.stripe_item_id
    row.stripe_price_id = state.price_id or row.stripe_price_id
    row.plan_code = plan_code or row.plan_code
    row.current_period_end = state.current_period_end
    row.cancel_at_period_end = state.cancel_at_period_end
    row.canceled_at = state.canceled_at
    row.state_at = state_at
    # A price nobody here asked for is a change made in Stripe (customer portal): adopt it, and say so, so
    # tenants follows it once; our own change coming back (the requested price) is not announced as one.
    from_stripe = changed_in_stripe and state.price_id is not None and state.price_id != row.requested_price_id
    if from_stripe:
        row.requested_price_id = state.price_id
    row.updated_at = utcnow()
    if row.status == "unpaid" or (row.status == "canceled" and state.cancellation_reason in GAVE_UP_REASONS):
        await mark_overdue(session, row, None, grace)
    elif row.status in ("active", "trialing"):
        clear_overdue(row)
    await repo.flush()
    if (row.status, row.stripe_price_id, row.cancel_at_period_end, row.current_period_end) == before:
        return "unchanged"
    if row.status in ENDED and previous_status not in ENDED:
        await _publish_subscription(session, "billing.subscription.canceled", row, previousStatus=previous_status,
                                    cancellationReason=state.cancellation_reason)
    else:
        await _publish_subscription(session, "billing.subscription.updated", row, previousStatus=previous_status,
                                    previousPlan=previous_plan if previous_plan != row.plan_code else None,
                                    planChangedInStripe=from_stripe,
                                    cancellationReason=state.cancellation_reason)
    return "applied"


async def apply_subscription_event(session: AsyncSession, event_type: str, obj: dict[str, Any], created: int,
                                   previous: dict[str, Any], grace: timedelta) -> str:
    state = SubscriptionState.of(obj)
    return await record_subscription(session, state, created, deleted=event_type.endswith(".deleted"),
                                     changed_in_stripe=event_type.endswith(".updated") and "items" in previous,
                                     grace=grace)


def _payment_data(row: Any, state: InvoiceState) -> dict[str, Any]:
    """The attempt this event reports; whether Stripe gave up is judged on the invoice as it is now (a late
    failure of an invoice paid since is never a final one)."""
    gave_up = row.status not in ("paid", "void") and row.next_payment_attempt is None \
        and state.next_payment_attempt is None and state.attempt_count >= row.attempt_count
    return {"tenantId": row.tenant_id, "invoiceId": row.stripe_invoice_id, "subscriptionId": row.stripe_subscription_id,
            "status": row.status, "amountDue": state.amount_due, "amountPaid": state.amount_paid,
            "currency": state.currency, "attemptCount": state.attempt_count,
            "nextPaymentAttempt": state.next_payment_attempt, "hostedInvoiceUrl": state.hosted_invoice_url,
            "finalAttempt": gave_up}


def _invoice_values(state: InvoiceState, tenant_id: uuid.UUID | None, created: int) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "stripe_subscription_id": state.subscription_id, "status": state.status,
            "amount_due": state.amount_due, "amount_paid": state.amount_paid, "currency": state.currency,
            "attempt_count": state.attempt_count, "next_payment_attempt": state.next_payment_attempt,
            "hosted_invoice_url": state.hosted_invoice_url, "paid_at": state.paid_at, "state_at": created,
            "stripe_created": state.created}


async def insert_new_invoices(session: AsyncSession, events: list[tuple[dict[str, Any], int]]) -> set[str]:
    """A batch's first sight of invoices, in one statement: `(invoice object, event created)` of events
    that name their tenant and are the only event of their invoice in the batch (so this insert is exactly
    what `apply_invoice_event` would do first). Returns the ids inserted; the others exist already."""
    rows = []
    for obj, created in events:
        state = InvoiceState.of(obj)
        rows.append({"stripe_invoice_id": state.id, **_invoice_values(state, state.tenant_id, created)})
    return await InvoiceRepository(session).insert_many_once(rows)


async def apply_invoice_event(session: AsyncSession, event_type: str, obj: dict[str, Any], created: int,
                              grace: timedelta, *, inserted: bool = False) -> str:
    """The invoice row takes the newest state; every payment event (each Stripe event is stored once) is
    published once, even one that arrives after a newer state: subscribers hear of every attempt.
    `inserted`: `insert_new_invoices` already wrote this event's state as the invoice's first row."""
    state = InvoiceState.of(obj)
    repo = InvoiceRepository(session)
    tenant_id = state.tenant_id
    if tenant_id is None and state.subscription_id is not None:
        sub = await SubscriptionRepository(session).by_stripe_id(state.subscription_id)
        tenant_id = sub.tenant_id if sub is not None else None
    tenant_id = tenant_id or await _tenant_of_customer(session, state.customer)
    values = _invoice_values(state, tenant_id, created)
    outcome = "applied"
    row: Any
    if inserted:
        row = SimpleNamespace(stripe_invoice_id=state.id, **values)
    else:
        # Most events bring an invoice seen for the first time: try the insert first (one statement).
        row = await repo.insert_once({"stripe_invoice_id": state.id, **values})
    if row is None:
        row = await repo.by_stripe_id(state.id, for_update=True)
        assert row is not None  # invoices are never deleted
        newer = (created, INVOICE_STATUS_RANK.get(state.status or "", 0), state.attempt_count)
        held = (row.state_at, INVOICE_STATUS_RANK.get(row.status or "", 0), row.attempt_count)
        if newer <= held:
            outcome = "stale"
        else:
            for key, value in values.items():
                if key not in ("tenant_id", "stripe_created") or value is not None:
                    setattr(row, key, value)
            row.updated_at = utcnow()
            await repo.flush()
    if row.tenant_id is None:
        return "no_tenant"
    data = _payment_data(row, state)
    name = "billing.payment_failed" if event_type == "invoice.payment_failed" else "billing.payment_succeeded"
    subs = SubscriptionRepository(session)
    sub: Subscription | None = None
    if row.stripe_subscription_id is not None and (name == "billing.payment_succeeded" or (
            outcome == "applied" and (row.status == "paid" or data["finalAttempt"]))):
        # Locked only when this event may change it (a stale one only reads whether anything is overdue).
        sub = await subs.by_stripe_id(row.stripe_subscription_id, for_update=outcome == "applied")
    if outcome == "applied" and sub is not None:
        if row.status == "paid" and await payment_settles(session, sub, row):
            clear_overdue(sub)
        elif data["finalAttempt"]:
            await mark_overdue(session, sub, row.stripe_invoice_id, grace)
    if name == "billing.payment_succeeded":
        # Tells tenants whether this payment lifts a suspension for non-payment: only when nothing is overdue
        # after it (a late payment of an older invoice leaves the newer overdue one, and the suspension).
        sub = sub or await subs.by_tenant(row.tenant_id)
        data["settlesDelinquency"] = sub is None or sub.overdue_since is None
    await events.publish(session, name, data, key=row.tenant_id, tenant_id=row.tenant_id)
    return outcome
