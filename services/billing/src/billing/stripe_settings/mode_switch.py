"""Keys of the other mode (test -> live): Stripe's test and live objects are two worlds, so billing starts over in
the new one instead of sending test ids to live Stripe (which refused them: every job of every tenant waited for
ever, and no tenant was billed live)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from billing.plan.repository import PlanRepository
from billing.subscription.repository import CustomerRepository, InvoiceRepository, SubscriptionRepository
from billing.subscription.service import ENDED
from billing.sync import service as sync_jobs
from billing.sync.repository import SyncJobRepository
from billing.webhook.repository import StripeEventRepository
from common.errors import Conflict

logger = logging.getLogger("billing.stripe_settings")


async def start_over(session: AsyncSession, *, leaving: str, entering: str) -> int:
    """Forget the products, prices, customers, subscriptions and invoices of the mode `leaving` (test invoices are
    no tenant's billing history; Stripe keeps them in its test mode), and queue a subscription in
    the mode `entering` for every tenant subscribed in the old one (it runs once the plans are priced: POST
    …/plans/sync). Returns how many tenants were queued. Leaving live is refused while live customers are known:
    their subscriptions would go on being billed with billing no longer following them."""
    customers = CustomerRepository(session)
    known = await customers.every()
    if leaving == "live" and known:
        raise Conflict(f"Billing follows {len(known)} live Stripe customers: with test keys their live subscriptions "
                       "would go on being billed unwatched. Keep live keys (send new live ones to rotate them)",
                       title="Live customers exist")
    # First: Stripe events of the old mode received but not applied yet would put its objects back after the
    # forgetting below (and one being applied now is waited for, so that the forgetting sees what it wrote).
    ignored = await StripeEventRepository(session).ignore_pending(livemode=leaving == "live",
                                                                 why=f"Stripe keys switched to {entering} mode")
    plans = {plan.code: plan for plan in await PlanRepository(session).list()}
    names = {customer.tenant_id: customer.name for customer in known}
    deleted = await SyncJobRepository(session).being_cancelled()
    queued = 0
    for subscription in await SubscriptionRepository(session).not_ended(ENDED):
        plan = plans.get(subscription.plan_code or "")
        if subscription.tenant_id in deleted:
            continue  # its cancellation runs (and finds nothing to cancel in the new mode)
        if plan is None:
            logger.warning("tenant %s was subscribed in %s mode on a price of no plan (%s): not subscribed in %s mode",
                           subscription.tenant_id, leaving, subscription.stripe_price_id, entering)
            continue
        await sync_jobs.enqueue(session, uuid.uuid4(), subscription.tenant_id, "create", plan=plan.name,
                                name=names.get(subscription.tenant_id))
        queued += 1
    await PlanRepository(session).forget_prices()
    await SubscriptionRepository(session).forget_all()
    await InvoiceRepository(session).forget_all()
    await customers.forget_all()
    logger.warning("Stripe keys switched from %s to %s mode: %d tenants will be subscribed in %s mode once the plans "
                   "are priced (POST /api/platform/billing/plans/sync); %d %s-mode events not applied", leaving,
                   entering, queued, entering, ignored, leaving)
    return queued
