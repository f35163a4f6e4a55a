"""What billing shows: subscriptions (cursor pages), one tenant's billing, invoices. Tenant users see their
own tenant only (another tenant's answers 404, as for tickets)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import Invoice
from billing.plan.repository import PlanRepository
from billing.subscription.repository import CustomerRepository, InvoiceRepository, SubscriptionRepository
from billing.subscription.schemas import (
    InvoiceRead,
    LastPayment,
    SubscriptionPage,
    SubscriptionRead,
    TenantBilling,
)
from common.api import Page, PageParams
from common.auth.dependencies import Principal
from common.errors import NotFound, Unprocessable


def scoped_tenant(principal: Principal, tenant_id: uuid.UUID | None) -> uuid.UUID | None:
    """The tenant a caller may see: any (or the filter) for the owner, only its own for a tenant user."""
    if principal.is_owner:
        return tenant_id
    if tenant_id is not None and tenant_id != principal.tenant_id:
        raise NotFound(f"Tenant {tenant_id} not found")
    return principal.tenant_id or uuid.UUID(int=0)


def _encode(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable("cursor: not a cursor this API returned") from None


async def list_subscriptions(session: AsyncSession, principal: Principal, *, tenant_id: uuid.UUID | None,
                             status: str | None, cursor: str | None, limit: int) -> SubscriptionPage:
    after = _decode(cursor) if cursor else None
    tenant = scoped_tenant(principal, tenant_id)
    rows = await SubscriptionRepository(session).all(SubscriptionRepository(session).page(
        tenant_id=tenant, status=status, after=after, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return SubscriptionPage(items=[SubscriptionRead.model_validate(r) for r in rows],
                            next_cursor=_encode(rows[-1].created_at, rows[-1].id) if more else None)


async def list_invoices(session: AsyncSession, principal: Principal, *, tenant_id: uuid.UUID | None,
                        status: str | None, page: PageParams) -> Page[InvoiceRead]:
    repo = InvoiceRepository(session)
    rows, total = await repo.paginate(repo.filtered(tenant_id=scoped_tenant(principal, tenant_id), status=status),
                                      limit=page.limit, offset=page.offset,
                                      order_by=[Invoice.created_at.desc()])  # type: ignore[attr-defined]
    return Page[InvoiceRead].of(rows, total, page)


async def tenant_billing(session: AsyncSession, principal: Principal, tenant_id: uuid.UUID) -> TenantBilling:
    scoped_tenant(principal, tenant_id)
    customer = await CustomerRepository(session).by_tenant(tenant_id)
    subscription = await SubscriptionRepository(session).by_tenant(tenant_id)
    if customer is None and subscription is None:
        raise NotFound(f"No billing for tenant {tenant_id} yet")
    invoices = InvoiceRepository(session)
    paid = await invoices.last_paid(tenant_id)
    plan = None
    if subscription is not None and subscription.stripe_price_id:
        plan = await PlanRepository(session).by_price(subscription.stripe_price_id)
    return TenantBilling(
        tenant_id=tenant_id, stripe_customer_id=customer.stripe_customer_id if customer else None,
        plan=subscription.plan_code if subscription else None,
        price_id=subscription.stripe_price_id if subscription else None,
        amount=plan.amount if plan else None, currency=plan.currency if plan else None,
        status=subscription.status if subscription else None,
        current_period_end=subscription.current_period_end if subscription else None,
        cancel_at_period_end=subscription.cancel_at_period_end if subscription else False,
        subscription=SubscriptionRead.model_validate(subscription) if subscription else None,
        last_payment=LastPayment(invoice_id=paid.stripe_invoice_id, amount_paid=paid.amount_paid,
                                 currency=paid.currency, paid_at=paid.paid_at) if paid else None,
        open_invoices=[InvoiceRead.model_validate(i) for i in await invoices.open_for(tenant_id)])
