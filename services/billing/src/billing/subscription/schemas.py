from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from billing.subscription.stripe_objects import InvoiceFacts
from common.api import Schema


class SubscriptionRead(Schema):
    id: uuid.UUID
    tenant_id: uuid.UUID
    stripe_subscription_id: str
    stripe_customer_id: str
    stripe_price_id: str | None
    plan_code: str | None
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionPage(Schema):
    items: list[SubscriptionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one")


class InvoiceRead(InvoiceFacts):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    stripe_invoice_id: str
    stripe_subscription_id: str | None
    created_at: datetime
    updated_at: datetime


class LastPayment(Schema):
    invoice_id: str
    amount_paid: int
    currency: str | None
    paid_at: datetime | None


class TenantBilling(Schema):
    tenant_id: uuid.UUID
    stripe_customer_id: str | None
    plan: str | None
    price_id: str | None
    amount: int | None = Field(description="Price per interval in minor units, when the plan is mapped")
    currency: str | None
    status: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    subscription: SubscriptionRead | None
    last_payment: LastPayment | None
    open_invoices: list[InvoiceRead]
