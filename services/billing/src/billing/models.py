"""ORM models of the billing service (Alembic's target metadata).

Stripe ids are kept as text; Stripe's own timestamps (`created` of the event that set a state) decide which
state is newest, so duplicates and out-of-order deliveries never move a row backwards.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from common.db.base import TableModel, new_registry
from common.db.secret_column import encrypted, hint
from common.messaging import inbox_table, outbox_table


class Base(TableModel, registry=new_registry()):
    pass


def _tz(**kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kw)  # type: ignore[call-overload]


class StripeSettings(Base, table=True):
    """The one Stripe account of the platform. Each key is a secret column pair (common.db.secret_column)."""

    __tablename__ = "stripe_settings"

    singleton: bool = Field(default=True, sa_type=Boolean, unique=True)
    mode: str = Field(sa_type=String(4))  # test | live
    publishable_key_encrypted: str = encrypted()
    publishable_key_hint: str = hint(40)
    secret_key_encrypted: str = encrypted()
    secret_key_hint: str = hint(40)
    webhook_secret_encrypted: str = encrypted()
    webhook_secret_hint: str = hint(40)
    updated_by: uuid.UUID | None = Field(default=None, nullable=True)


class PlanPrice(Base, table=True):
    """Billing's copy of a tenants plan (kept from `plan.created|updated`) and the Stripe recurring price that
    bills it. `terms_at`: the time of the plan event the copy holds (an older event changes nothing)."""

    __tablename__ = "billing_plans"

    code: str = Field(sa_type=String(50), unique=True)
    name: str = Field(sa_type=String(100), unique=True)
    amount: int = Field(sa_type=BigInteger)  # minor units (cents) per interval
    currency: str = Field(sa_type=String(3))
    interval: str = Field(default="month", sa_type=String(10))
    active: bool = Field(default=True, sa_type=Boolean)
    terms_at: datetime | None = _tz(default=None, nullable=True)
    stripe_product_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    stripe_price_id: str | None = Field(default=None, sa_type=String(255), nullable=True, index=True)
    mapped_by: str | None = Field(default=None, sa_type=String(10), nullable=True)  # sync | manual
    synced_at: datetime | None = _tz(default=None, nullable=True)


class Customer(Base, table=True):
    __tablename__ = "billing_customers"

    tenant_id: uuid.UUID = Field(unique=True)
    stripe_customer_id: str = Field(sa_type=String(255), unique=True)
    name: str | None = Field(default=None, sa_type=String(200), nullable=True)


class Subscription(Base, table=True):
    """A tenant's subscription as last known (`state_at`: Stripe's time of that state)."""

    __tablename__ = "billing_subscriptions"
    __table_args__ = (Index("ix_billing_subscriptions_status", "status"),)

    tenant_id: uuid.UUID = Field(unique=True)
    stripe_subscription_id: str = Field(sa_type=String(255), unique=True)
    stripe_customer_id: str = Field(sa_type=String(255))
    stripe_item_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    stripe_price_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    # The price billing last asked Stripe for: a Stripe state with another price is a change made in
    # Stripe (customer portal); one with this price is the echo of our own change.
    requested_price_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    plan_code: str | None = Field(default=None, sa_type=String(50), nullable=True)
    status: str = Field(sa_type=String(30))
    current_period_end: datetime | None = _tz(default=None, nullable=True)
    cancel_at_period_end: bool = Field(default=False, sa_type=Boolean)
    canceled_at: datetime | None = _tz(default=None, nullable=True)
    state_at: int = Field(default=0, sa_type=BigInteger)
    # Since when Stripe has given up collecting (unpaid, canceled for non-payment, last attempt failed);
    # cleared when the subscription is active again or by the payment of the overdue invoice or of a newer one
    # (never of an older one). `delinquent_at`: when billing.subscription.delinquent was published
    # (the grace period ended), so it is published once per delinquency.
    overdue_since: datetime | None = _tz(default=None, nullable=True)
    overdue_invoice_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    delinquent_at: datetime | None = _tz(default=None, nullable=True)


class Invoice(Base, table=True):
    __tablename__ = "billing_invoices"
    __table_args__ = (Index("ix_billing_invoices_tenant_created", "tenant_id", "created_at"),)

    tenant_id: uuid.UUID | None = Field(default=None, nullable=True)
    stripe_invoice_id: str = Field(sa_type=String(255), unique=True)
    stripe_subscription_id: str | None = Field(default=None, sa_type=String(255), nullable=True)
    status: str | None = Field(default=None, sa_type=String(30), nullable=True)
    amount_due: int = Field(default=0, sa_type=BigInteger)
    amount_paid: int = Field(default=0, sa_type=BigInteger)
    currency: str | None = Field(default=None, sa_type=String(3), nullable=True)
    attempt_count: int = Field(default=0, sa_type=Integer)
    next_payment_attempt: datetime | None = _tz(default=None, nullable=True)
    hosted_invoice_url: str | None = Field(default=None, sa_type=Text, nullable=True)
    paid_at: datetime | None = _tz(default=None, nullable=True)
    state_at: int = Field(default=0, sa_type=BigInteger)
    # Stripe's `created` of the invoice (not of an event): which of two invoices is the newer one.
    stripe_created: int | None = Field(default=None, sa_type=BigInteger, nullable=True)


class StripeEvent(Base, table=True):
    """A verified Stripe webhook event, stored once (unique Stripe id), processed later by the worker."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_pending", "received_at", postgresql_where=text("processed_at IS NULL")),)

    stripe_event_id: str = Field(sa_type=String(255), unique=True)
    type: str = Field(sa_type=String(100))
    stripe_created: int = Field(sa_type=BigInteger)
    payload: dict[str, Any] = Field(sa_type=JSONB)
    received_at: datetime = _tz()
    processed_at: datetime | None = _tz(default=None, nullable=True)
    outcome: str | None = Field(default=None, sa_type=String(30), nullable=True)  # applied | stale | ignored | failed
    attempts: int = Field(default=0, sa_type=Integer)
    error: str | None = Field(default=None, sa_type=Text, nullable=True)


class SyncJob(Base, table=True):
    """Work for Stripe caused by a tenant event: one row per event (unique), done in order per tenant,
    retried with backoff while Stripe is down. The event id is the Idempotency-Key prefix."""

    __tablename__ = "billing_sync_jobs"
    __table_args__ = (Index("ix_billing_sync_jobs_pending", "tenant_id", "seq",
                            postgresql_where=text("done_at IS NULL")),)

    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=False), nullable=False))
    event_id: uuid.UUID = Field(unique=True)
    tenant_id: uuid.UUID
    kind: str = Field(sa_type=String(20))  # create | change_plan | cancel
    plan: str | None = Field(default=None, sa_type=String(100), nullable=True)
    tenant_name: str | None = Field(default=None, sa_type=String(200), nullable=True)
    attempts: int = Field(default=0, sa_type=Integer)
    next_attempt_at: datetime = _tz()
    done_at: datetime | None = _tz(default=None, nullable=True)
    last_error: str | None = Field(default=None, sa_type=Text, nullable=True)


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
