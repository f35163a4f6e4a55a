"""What billing's events do to a tenant. A suspension for non-payment carries the reason "payment" and only
such a suspension is lifted by a later payment that settles the delinquency (not the late payment of an older
invoice while the overdue one is unpaid): one the owner made by hand stays. A plan changed in Stripe
(customer portal) becomes the tenant's plan once; the tenant.updated it causes finds billing already on that
price, so nothing echoes back to Stripe."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import ProblemError
from tenants.billing.repository import TenantStateRepository
from tenants.tenant import service as tenants
from tenants.tenant.schemas import StatusChange, TenantUpdate

logger = logging.getLogger("tenants.billing")

PAYMENT = "payment"


async def suspend_for_payment(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    state = await TenantStateRepository(session).status(tenant_id)
    if state is None or state[0] != "ACTIVE":
        return False  # unknown, deleted, or already suspended (by hand or for payment): left as it is
    await tenants.suspend(session, tenant_id, StatusChange(reason=PAYMENT))
    return True


async def reactivate_after_payment(session: AsyncSession, tenant_id: uuid.UUID,
                                   settles_delinquency: bool | None = None) -> bool:
    """`settles_delinquency` (the payment's `settlesDelinquency`): false when billing still holds a newer unpaid
    invoice it gave up on (e.g. an older invoice paid late), so the suspension stays. Absent (None, events
    published before billing said so): any payment reactivates, as billing then also cleared its overdue
    state on any payment and would never announce the end of that delinquency again."""
    if settles_delinquency is False:
        return False
    state = await TenantStateRepository(session).status(tenant_id)
    if state is None or state != ("SUSPENDED", PAYMENT):
        return False
    await tenants.reactivate(session, tenant_id, StatusChange(reason=PAYMENT))
    return True


async def follow_plan_from_stripe(session: AsyncSession, tenant_id: uuid.UUID, plan: str) -> bool:
    state = await TenantStateRepository(session).status(tenant_id)
    if state is None or state[0] == "DELETED":
        return False
    try:
        await tenants.update(session, tenant_id, TenantUpdate(plan=plan))  # no change, no event
    except ProblemError as exc:  # e.g. a plan tenants does not know
        logger.warning("plan %r from Stripe not applied to tenant %s: %s", plan, tenant_id, exc.detail)
        return False
    return True
