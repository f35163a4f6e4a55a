"""All SQL of customers, subscriptions and invoices."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from billing.models import Customer, Invoice, Subscription
from common.db.repository import Repository


class CustomerRepository(Repository[Customer]):
    model = Customer

    async def by_tenant(self, tenant_id: uuid.UUID) -> Customer | None:
        return await self.get_one(select(Customer).where(Customer.tenant_id == tenant_id))

    async def by_stripe_id(self, customer_id: str) -> Customer | None:
        return await self.get_one(select(Customer).where(Customer.stripe_customer_id == customer_id))

    async def add_once(self, tenant_id: uuid.UUID, customer_id: str, name: str | None) -> None:
        await self.session.execute(insert(Customer).values(id=uuid.uuid4(), tenant_id=tenant_id,
                                                           stripe_customer_id=customer_id, name=name)
                                   .on_conflict_do_nothing())

    async def every(self) -> list[Customer]:
        return await self.all(select(Customer))

    async def forget_all(self) -> None:
        await self.session.execute(delete(Customer))


class SubscriptionRepository(Repository[Subscription]):
    model = Subscription

    async def request_price(self, tenant_id: uuid.UUID, price_id: str) -> None:
        await self.session.execute(update(Subscription).where(Subscription.tenant_id == tenant_id)
                                   .values(requested_price_id=price_id))

    async def not_ended(self, ended: set[str]) -> list[Subscription]:
        return await self.all(select(Subscription).where(Subscription.status.not_in(ended)))  # type: ignore[attr-defined]

    async def forget_all(self) -> None:
        await self.session.execute(delete(Subscription))

    async def by_stripe_id(self, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
        stmt = select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def by_tenant(self, tenant_id: uuid.UUID, *, for_update: bool = False) -> Subscription | None:
        stmt = select(Subscription).where(Subscription.tenant_id == tenant_id)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def insert_once(self, values: dict[str, Any]) -> Subscription | None:
        """Insert unless the tenant or the Stripe subscription is known (then None): one row each."""
        stmt = insert(Subscription).values(id=uuid.uuid4(), **values).on_conflict_do_nothing().returning(Subscription)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def grace_ended(self, overdue_before: datetime, limit: int) -> list[Subscription]:
        return await self.all(select(Subscription).where(
            Subscription.overdue_since <= overdue_before, Subscription.delinquent_at.is_(None))  # type: ignore[operator,union-attr]
            .order_by(Subscription.overdue_since).limit(limit).with_for_update(skip_locked=True))

    def page(self, *, tenant_id: uuid.UUID | None, status: str | None,
             after: tuple[datetime, uuid.UUID] | None, limit: int) -> Select[tuple[Subscription]]:
        stmt = select(Subscription)
        if tenant_id is not None:
            stmt = stmt.where(Subscription.tenant_id == tenant_id)
        if status is not None:
            stmt = stmt.where(Subscription.status == status)
        if after is not None:
            stmt = stmt.where(tuple_(Subscription.created_at, Subscription.id) < tuple_(*after))
        return stmt.order_by(Subscription.created_at.desc(), Subscription.id.desc()).limit(limit)  # type: ignore[attr-defined]


_BULK_INVOICE_COLUMNS = {
    "stripe_invoice_id": "text", "tenant_id": "uuid", "stripe_subscription_id": "text", "status": "text",
    "amount_due": "bigint", "amount_paid": "bigint", "currency": "text", "attempt_count": "int",
    "next_payment_attempt": "timestamptz", "hosted_invoice_url": "text", "paid_at": "timestamptz",
    "state_at": "bigint", "stripe_created": "bigint"}
_INSERT_INVOICES = text(
    f"INSERT INTO billing_invoices (id, {', '.join(_BULK_INVOICE_COLUMNS)}, created_at, updated_at) "
    f"SELECT u.*, now(), now() FROM unnest(CAST(:id AS uuid[]), "
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _BULK_INVOICE_COLUMNS.items())
    + ") AS u ON CONFLICT DO NOTHING RETURNING stripe_invoice_id")


class InvoiceRepository(Repository[Invoice]):
    model = Invoice

    async def forget_all(self) -> None:
        await self.session.execute(delete(Invoice))

    async def by_stripe_id(self, invoice_id: str, *, for_update: bool = False) -> Invoice | None:
        stmt = select(Invoice).where(Invoice.stripe_invoice_id == invoice_id)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def insert_once(self, values: dict[str, Any]) -> Any | None:
        """The new invoice's row (a Core row: this is the hot path of Stripe's events), or None if known."""
        table = Invoice.__table__  # type: ignore[attr-defined]
        stmt = insert(table).values(id=uuid.uuid4(), **values).on_conflict_do_nothing().returning(*table.c)
        return (await self.session.execute(stmt)).one_or_none()

    async def insert_many_once(self, rows: list[dict[str, Any]]) -> set[str]:
        """`insert_once` for many invoices in one statement (one array per column, so one prepared
        statement whatever the count); returns the Stripe ids inserted (the others were known)."""
        if not rows:
            return set()
        columns = {name: [row[name] for row in rows] for name in _BULK_INVOICE_COLUMNS}
        result = await self.session.execute(_INSERT_INVOICES, {"id": [uuid.uuid4() for _ in rows], **columns})
        return set(result.scalars())

    def filtered(self, *, tenant_id: uuid.UUID | None, status: str | None) -> Select[tuple[Invoice]]:
        stmt = select(Invoice)
        if tenant_id is not None:
            stmt = stmt.where(Invoice.tenant_id == tenant_id)
        if status is not None:
            stmt = stmt.where(Invoice.status == status)
        return stmt

    async def open_for(self, tenant_id: uuid.UUID) -> list[Invoice]:
        return await self.all(select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.status == "open")
                              .order_by(Invoice.created_at.desc()).limit(20))  # type: ignore[attr-defined]

    async def last_paid(self, tenant_id: uuid.UUID) -> Invoice | None:
        return await self.get_one(select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.status == "paid")
                                  .order_by(Invoice.paid_at.desc().nulls_last()).limit(1))  # type: ignore[union-attr]
