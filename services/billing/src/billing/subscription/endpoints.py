from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from billing.subscription import queries
from billing.subscription.schemas import InvoiceRead, SubscriptionPage, TenantBilling
from common.api import Page, PageParamsDep
from common.auth import AnyCaller
from common.db import SessionDep
from common.errors import problem_responses

router = APIRouter(prefix="/api/platform/billing", tags=["billing"])

SubscriptionStatus = Literal["incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled",
                             "unpaid", "paused"]
InvoiceStatus = Literal["draft", "open", "paid", "uncollectible", "void"]


@router.get("/subscriptions", response_model=SubscriptionPage, responses=problem_responses(401, 403, 422))
async def list_subscriptions(
    session: SessionDep, caller: AnyCaller,
    tenantId: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SubscriptionPage:
    """Subscriptions, newest first (cursor pages). Tenant users see their tenant's only."""
    return await queries.list_subscriptions(session, caller, tenant_id=tenantId, status=status, cursor=cursor,
                                            limit=limit)


@router.get("/tenants/{tenant_id}", response_model=TenantBilling, responses=problem_responses(401, 403, 404, 422))
async def tenant_billing(session: SessionDep, caller: AnyCaller, tenant_id: uuid.UUID) -> TenantBilling:
    """A tenant's plan, price, status, period end, last payment and open invoices."""
    return await queries.tenant_billing(session, caller, tenant_id)


@router.get("/invoices", response_model=Page[InvoiceRead], responses=problem_responses(401, 403, 422))
async def list_invoices(session: SessionDep, caller: AnyCaller, page: PageParamsDep,
                        tenantId: Annotated[uuid.UUID | None, Query()] = None,
                        status: Annotated[InvoiceStatus | None, Query()] = None) -> Page[InvoiceRead]:
    """Invoices, newest first: amounts, attempts, next attempt, hosted invoice URL."""
    return await queries.list_invoices(session, caller, tenant_id=tenantId, status=status, page=page)
