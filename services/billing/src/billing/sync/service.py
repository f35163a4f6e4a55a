"""Tenant events become Stripe work: a Customer + Subscription on the plan's price, a price change with
proration, a cancellation. Each job runs in its tenant's event order; every Stripe call carries an
Idempotency-Key made from the causing event's id, so a retried job never creates or changes twice.
While Stripe fails (or is not configured, or the plan has no price yet) the job waits with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from billing.context import Billing, wake_after_commit
from billing.models import SyncJob
from billing.plan.repository import PlanRepository
from billing.stripe_api import StripeApi, StripeRejected, idempotency_key
from billing.stripe_settings import service as stripe_settings
from billing.subscription import service as subscriptions
from billing.subscription.repository import CustomerRepository, SubscriptionRepository
from billing.subscription.stripe_objects import SubscriptionState
from billing.sync.repository import SyncJobRepository
from common.db import Database
from common.retrying import RetryableCall
from common.supervise import IdleWait

logger = logging.getLogger("billing.sync")

CLOCK_SKEW_SECONDS = 600


class Waiting(Exception):
    """The job cannot run yet (Stripe not configured, plan without a price): retried later."""


async def enqueue(session: AsyncSession, event_id: uuid.UUID, tenant_id: uuid.UUID, kind: str, *,
                  plan: str | None = None, name: str | None = None) -> int:
    return int(await SyncJobRepository(session).add_once({"event_id": event_id, "tenant_id": tenant_id,
                                                          "kind": kind, "plan": plan, "tenant_name": name}))


async def retry_waiting(session: AsyncSession, billing: Billing) -> None:
    """After a change that may unblock waiting jobs (keys saved, plans priced): they run once it commits."""
    await SyncJobRepository(session).due_now()
    wake_after_commit(session, billing.jobs_waiting.set)


async def _price_for(session: AsyncSession, plan_name: str | None) -> str:
    plan = await PlanRepository(session).by_name_or_code(plan_name or "")
    if plan is None or plan.stripe_price_id is None:
        raise Waiting(f"plan {plan_name!r} has no Stripe price yet: POST /api/platform/billing/plans/sync "
                      "or map it with PUT /api/platform/billing/plans/{code}")
    return plan.stripe_price_id


async def _record(database: Database, billing: Billing, job: SyncJob, answer: dict[str, object], *,
                  requested_price: str | None = None) -> None:
    async with database.sessionmaker() as session:
        await subscriptions.record_subscription(session, SubscriptionState.of(answer), subscriptions.now_stripe_time(),
                                                tenant_id=job.tenant_id, requested_price=requested_price,
                                                grace=timedelta(hours=billing.settings.billing_suspend_grace_hours))
        await session.commit()


def _first_try(job: SyncJob) -> int:
    """No try of the job can have made anything before it was queued (less a margin for clock skew)."""
    return int(job.created_at.timestamp()) - CLOCK_SKEW_SECONDS


async def _create(database: Database, billing: Billing, stripe: StripeApi, job: SyncJob) -> None:
    async with database.sessionmaker() as session:
        customer = await CustomerRepository(session).by_tenant(job.tenant_id)
        subscription = await SubscriptionRepository(session).by_tenant(job.tenant_id)
        if subscription is not None and subscription.status not in subscriptions.ENDED:
            return
        price = await _price_for(session, job.plan)
    # A retried job may follow a try whose answer was lost after Stripe acted. Its Idempotency-Key replays
    # that answer for 24 h only: look for what the try made before making it again.
    retried = job.attempts > 1
    if customer is None:
        answer = await stripe.find_customer(tenant_id=job.tenant_id, created_since=_first_try(job)) \
            if retried else None
        if answer is None:
            answer = await stripe.create_customer(tenant_id=job.tenant_id, name=job.tenant_name,
                                                  key=idempotency_key(job.event_id, "customer"))
        async with database.sessionmaker() as session:
            await CustomerRepository(session).add_once(job.tenant_id, str(answer["id"]), job.tenant_name)
            await session.commit()
            customer = await CustomerRepository(session).by_tenant(job.tenant_id)
        assert customer is not None
    answer = await stripe.find_subscription(customer=customer.stripe_customer_id, tenant_id=job.tenant_id) \
        if retried else None
    if answer is None:
        answer = await stripe.create_subscription(customer=customer.stripe_customer_id, price=price,
                                                  tenant_id=job.tenant_id,
                                                  key=idempotency_key(job.event_id, "subscription"))
    await _record(database, billing, job, answer, requested_price=price)


async def _change_plan(database: Database, billing: Billing, stripe: StripeApi, job: SyncJob) -> None:
    async with database.sessionmaker() as session:
        subscription = await SubscriptionRepository(session).by_tenant(job.tenant_id)
        price = await _price_for(session, job.plan)
    if subscription is None or subscription.status in subscriptions.ENDED:
        await _create(database, billing, stripe, job)
        return
    if subscription.stripe_price_id == price or subscription.stripe_item_id is None:
        return  # already on it: changed before (its answer or Stripe's event recorded), or in Stripe and echoed back
    # Said before asking: Stripe's event of this change may be applied before its answer is (or instead, the answer
    # lost), and a price nobody asked for is announced as a change made in Stripe (tenants would follow it back).
    async with database.sessionmaker() as session:
        await SubscriptionRepository(session).request_price(job.tenant_id, price)
        await session.commit()
    answer = await stripe.change_price(subscription=subscription.stripe_subscription_id,
                                       item=subscription.stripe_item_id, price=price,
                                       proration=billing.settings.billing_proration_behavior,
                                       key=idempotency_key(job.event_id, "price"))
    await _record(database, billing, job, answer, requested_price=price)


async def _unrecorded_subscription(database: Database, stripe: StripeApi, job: SyncJob) -> str | None:
    """A live subscription of the tenant that Stripe made but billing never heard of: a try of an earlier job,
    superseded by this cancel (see `run_job`), may have made it (or its customer) and lost the answer."""
    async with database.sessionmaker() as session:
        customer = await CustomerRepository(session).by_tenant(job.tenant_id)
        since = await SyncJobRepository(session).first_queued_at(job.tenant_id)
    customer_id = customer.stripe_customer_id if customer is not None else None
    if customer_id is None:
        first = int((since or job.created_at).timestamp()) - CLOCK_SKEW_SECONDS
        found = await stripe.find_customer(tenant_id=job.tenant_id, created_since=first)
        customer_id = str(found["id"]) if found is not None else None
    if customer_id is None:
        return None
    found = await stripe.find_subscription(customer=customer_id, tenant_id=job.tenant_id)
    return str(found["id"]) if found is not None else None


async def _cancel(database: Database, billing: Billing, stripe: StripeApi, job: SyncJob) -> None:
    async with database.sessionmaker() as session:
        subscription = await SubscriptionRepository(session).by_tenant(job.tenant_id)
    if subscription is not None and subscription.status not in subscriptions.ENDED:
        subscription_id: str | None = subscription.stripe_subscription_id
    else:
        subscription_id = await _unrecorded_subscription(database, stripe, job)
    if subscription_id is None:
        return
    answer = await stripe.cancel_subscription(subscription=subscription_id,
                                              key=idempotency_key(job.event_id, "cancel"))
    await _record(database, billing, job, answer)


_KINDS = {"create": _create, "change_plan": _change_plan, "cancel": _cancel}


def backoff(billing: Billing, attempts: int) -> timedelta:
    settings = billing.settings
    delay = min(settings.billing_retry_initial_seconds * 2 ** max(0, attempts - 1), settings.billing_retry_max_seconds)
    return timedelta(seconds=delay * random.uniform(0.8, 1.0))


async def run_job(database: Database, billing: Billing, job: SyncJob) -> bool:
    """Do one job; True when done, False when postponed.

    A job of a tenant deleted since it was queued is superseded: done without running, so the cancellation
    queued after it runs next. A job Stripe keeps refusing (a price it will not switch to) or that waits for
    the owner (a plan without a price) would otherwise hold the cancellation behind it, and the deleted tenant
    would go on being charged; run, a create would subscribe a deleted tenant."""
    if job.kind != "cancel":
        async with database.sessionmaker() as session:
            cancel = await SyncJobRepository(session).cancel_after(job)
            if cancel is not None:
                await SyncJobRepository(session).finish(job.id, f"superseded: the tenant was deleted (event {cancel})")
                await session.commit()
        if cancel is not None:
            logger.warning("billing job %s (%s of tenant %s) superseded: the tenant was deleted (event %s) first",
                           job.event_id, job.kind, job.tenant_id, cancel)
            return True
    try:
        async with database.sessionmaker() as session:
            stripe = await stripe_settings.api(session, billing)
        await _KINDS[job.kind](database, billing, stripe, job)
    except (RetryableCall, StripeRejected, Waiting, stripe_settings.NotConfigured) as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        if isinstance(exc, (Waiting, stripe_settings.NotConfigured)):
            # Only the owner unblocks it (keys saved, plans priced), and that makes every waiting job due at once
            # (`retry_waiting`): meanwhile it is tried again only as a safety net (a change that raced this
            # attempt), once per BILLING_RETRY_MAX_SECONDS, and said once per reason. Backing off from 2 s, each
            # of 200 new tenants waiting for Stripe's keys logged 3-4 warnings in its first 15 s, then one per
            # 5 min for good.
            delay = timedelta(seconds=billing.settings.billing_retry_max_seconds * random.uniform(0.8, 1.0))
            said = job.last_error == detail[:2000]
        else:
            delay, said = backoff(billing, job.attempts), False
        (logger.debug if said else logger.warning)(
            "billing job %s (%s of tenant %s) postponed after attempt %d: %s", job.event_id, job.kind, job.tenant_id,
            job.attempts, detail)
        async with database.sessionmaker() as session:
            await SyncJobRepository(session).postpone(job.id, delay, detail)
            await session.commit()
        # Due again after `delay`: the worker is woken then (its fallback poll backs off while idle).
        asyncio.get_running_loop().call_later(delay.total_seconds(), billing.jobs_waiting.set)
        return False
    async with database.sessionmaker() as session:
        await SyncJobRepository(session).finish(job.id)
        await session.commit()
    return True


async def run_worker(database: Database, billing: Billing) -> None:
    """Claims due jobs while it has free slots (`BILLING_SYNC_CONCURRENCY`); a slow tenant holds one slot only.
    Runs under `supervise`."""
    settings = billing.settings
    slots = settings.billing_sync_concurrency
    lease = settings.stripe_timeout_seconds * 3 + 60
    running: set[asyncio.Task[bool]] = set()
    # New jobs wake it after their commit, finished ones when they end, postponed ones when they are due again:
    # the fallback poll (leases of a dead replica, jobs another replica postponed) backs off while idle.
    idle = IdleWait(settings.billing_poll_interval_seconds)
    try:
        while True:
            billing.jobs_waiting.clear()
            free = slots - len(running)
            jobs: list[SyncJob] = []
            if free > 0:
                async with database.sessionmaker() as session:
                    jobs = await SyncJobRepository(session).claim(free, lease)
                    await session.commit()
            for job in jobs:
                task = asyncio.create_task(run_job(database, billing, job))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), billing.jobs_waiting.set()))
            if jobs and len(running) < slots:
                continue
            await idle.wait(billing.jobs_waiting, found=bool(jobs))
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
