"""Billing's copy of the plans tenants owns (from its `plan.*` events) and the Stripe prices that bill them:
synced by lookup key, or mapped by hand to an existing price of the same terms."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.context import Billing
from billing.models import PlanPrice
from billing.plan.repository import PlanRepository
from billing.plan.schemas import PlanRead, PlanUpdate
from billing.stripe_api import StripeApi, StripeRejected
from billing.stripe_settings import service as stripe_settings
from billing.sync import service as sync_jobs
from common.db import utcnow
from common.errors import BadGateway, Conflict, NotFound, ProblemError, Unprocessable
from common.events.catalogue import PlanData
from common.retrying import RetryableCall


def lookup_key(plan: PlanPrice) -> str:
    """Stable per plan, amount, currency and interval: a changed amount gets a new price (prices are immutable)."""
    return f"plataforma_{plan.code.lower()}_{plan.amount}_{plan.currency.lower()}_{plan.interval}"


def stripe_failure(exc: Exception) -> ProblemError:
    if isinstance(exc, StripeRejected) and exc.status in (401, 403):
        return Conflict("Stripe refused the configured secret key: check it with POST "
                        "/api/platform/integrations/stripe/test", title="Stripe key refused")
    if isinstance(exc, StripeRejected):
        return BadGateway(f"Stripe refused the request: {exc}", title="Stripe refused")
    return ProblemError(f"Stripe could not be reached: {exc}", status=503, title="Stripe unavailable",
                        headers={"Retry-After": "30"})


async def list_plans(session: AsyncSession) -> list[PlanRead]:
    return [PlanRead.model_validate(p) for p in await PlanRepository(session).list()]


async def _sync_one(stripe: StripeApi, plan: PlanPrice) -> None:
    key = lookup_key(plan)
    price = await stripe.price_by_lookup_key(key)
    if price is None:
        product = await stripe.create_product(name=plan.name, code=plan.code, key=f"{key}-product")
        price = await stripe.create_price(product=product["id"], amount=plan.amount, currency=plan.currency,
                                          interval=plan.interval, lookup_key=key, code=plan.code,
                                          key=f"{key}-price")
    product_id = price.get("product")
    plan.stripe_price_id = price["id"]
    plan.stripe_product_id = product_id if isinstance(product_id, str) else (product_id or {}).get("id")
    plan.mapped_by, plan.synced_at = "sync", utcnow()


async def sync(session: AsyncSession, billing: Billing) -> list[PlanRead]:
    """Every plan not mapped by hand gets its Product + recurring Price, found by lookup key when it exists
    (idempotent: a second sync creates nothing)."""
    stripe = await stripe_settings.api(session, billing)
    repo = PlanRepository(session)
    for plan in await repo.list():
        if plan.mapped_by == "manual":
            continue
        try:
            await _sync_one(stripe, plan)
        except (StripeRejected, RetryableCall) as exc:
            raise stripe_failure(exc) from None
        plan.updated_at = utcnow()
        await repo.flush()
    await sync_jobs.retry_waiting(session, billing)
    return await list_plans(session)


async def update(session: AsyncSession, billing: Billing, code: str, body: PlanUpdate) -> PlanRead:
    """Map a plan (known from tenants) to an existing Stripe price that bills the same terms."""
    repo = PlanRepository(session)
    plan = await repo.by_code(code, for_update=True)
    if plan is None:
        raise NotFound(f"Plan {code!r} not found; plans are added in tenants (POST /api/platform/plans)")
    stripe = await stripe_settings.api(session, billing)
    try:
        price = await stripe.retrieve_price(body.price_id)
    except StripeRejected as exc:
        if exc.status == 404:
            raise Unprocessable(f"priceId: Stripe has no price {body.price_id}") from None
        raise stripe_failure(exc) from None
    except RetryableCall as exc:
        raise stripe_failure(exc) from None
    recurring = price.get("recurring") or {}
    if not price.get("active", True) or not recurring:
        raise Unprocessable("priceId: the price must be active and recurring")
    # A plan bills a fixed amount once per interval: not every 3 months, not metered, not tiered (no unit_amount).
    if (price.get("billing_scheme") or "per_unit") != "per_unit" or price.get("unit_amount") is None \
            or int(recurring.get("interval_count") or 1) != 1 or (recurring.get("usage_type") or "licensed") != "licensed":
        raise Unprocessable("priceId: the price must bill a fixed amount once per interval (billing_scheme per_unit, "
                            "usage_type licensed, interval_count 1)")
    terms = (int(price.get("unit_amount") or 0), str(price.get("currency") or "").upper(),
             str(recurring.get("interval") or ""))
    if terms != (plan.amount, plan.currency, plan.interval):
        raise Unprocessable(f"priceId: the price bills {terms[0]} {terms[1]} per {terms[2]}, the plan "
                            f"{plan.amount} {plan.currency} per {plan.interval}: change the plan in tenants "
                            "(PATCH /api/platform/plans/{code}) or pick a price of its terms")
    product = price.get("product")
    plan.stripe_price_id = price["id"]
    plan.stripe_product_id = product if isinstance(product, str) else (product or {}).get("id")
    plan.mapped_by, plan.synced_at = "manual", utcnow()
    plan.updated_at = utcnow()
    await repo.flush()
    await sync_jobs.retry_waiting(session, billing)
    return PlanRead.model_validate(plan)


async def apply_plan_event(session: AsyncSession, billing: Billing, data: PlanData, at: datetime) -> str:
    """Keep billing's copy of a tenants plan (`plan.created|updated`, `at`: the event's time). New terms
    (amount, currency, interval) drop the price mapping: the next sync prices them (prices are immutable),
    and tenants already subscribed keep their price until their plan changes. Returns the outcome."""
    repo = PlanRepository(session)
    plan = await repo.by_code(data.code, for_update=True)
    if plan is not None and plan.terms_at is not None and at <= plan.terms_at:
        return "stale"
    if plan is None or plan.name != data.name:
        await repo.release_name(data.name, keep=data.code)  # before this copy takes it (no autoflush before)
    if plan is None:
        plan = PlanPrice(code=data.code, name=data.name, amount=data.amount, currency=data.currency.upper(),
                         interval=data.interval)
        await repo.add(plan, flush=False)
    elif (plan.amount, plan.currency, plan.interval) != (data.amount, data.currency.upper(), data.interval):
        plan.amount, plan.currency, plan.interval = data.amount, data.currency.upper(), data.interval
        plan.stripe_price_id = plan.stripe_product_id = plan.mapped_by = None
        plan.synced_at = None
    renamed = plan.name != data.name
    plan.name, plan.active, plan.terms_at = data.name, data.active, at
    plan.updated_at = utcnow()
    await repo.flush()
    if renamed and plan.stripe_price_id is not None:
        # Jobs of tenants created with the new name were waiting for a plan of that name.
        await sync_jobs.retry_waiting(session, billing)
    return "applied"
