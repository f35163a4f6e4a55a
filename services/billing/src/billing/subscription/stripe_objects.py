"""Reading Stripe's subscription and invoice objects in today's shape (API 2025-03-31.basil and later: the
period on the items, an invoice's subscription under `parent`) and in the older one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ConfigDict

from common.api import Schema


def when(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40:
        return datetime.fromtimestamp(value, UTC)
    return None


def _id(value: Any) -> str | None:
    """An expandable field: the id, or the expanded object's id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _tenant(metadata: Any) -> uuid.UUID | None:
    if isinstance(metadata, dict) and isinstance(metadata.get("tenantId"), str):
        try:
            return uuid.UUID(metadata["tenantId"])
        except ValueError:
            return None
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    customer: str | None
    tenant_id: uuid.UUID | None
    status: str
    item_id: str | None
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    cancellation_reason: str | None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> SubscriptionState:
        items = _dict(obj.get("items")).get("data") or []
        item = _dict(items[0]) if items else {}
        period_end = when(item.get("current_period_end")) or when(obj.get("current_period_end"))
        price = item.get("price") or item.get("plan")
        return cls(
            id=str(obj["id"]), customer=_id(obj.get("customer")), tenant_id=_tenant(obj.get("metadata")),
            status=str(obj.get("status") or "unknown")[:30], item_id=_id(item.get("id")), price_id=_id(price),
            current_period_end=period_end, cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
            canceled_at=when(obj.get("canceled_at")),
            cancellation_reason=_dict(obj.get("cancellation_details")).get("reason"))


class InvoiceFacts(Schema):
    """What Stripe says of an invoice: read from its object (InvoiceState), kept in billing_invoices, shown
    (subscription.schemas.InvoiceRead)."""

    status: str | None
    amount_due: int
    amount_paid: int
    currency: str | None
    attempt_count: int
    next_payment_attempt: datetime | None
    hosted_invoice_url: str | None
    paid_at: datetime | None


class InvoiceState(InvoiceFacts):
    model_config = ConfigDict(frozen=True)

    id: str
    customer: str | None
    subscription_id: str | None
    tenant_id: uuid.UUID | None
    created: int | None = None  # Stripe's time of the invoice's creation (orders two invoices)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> InvoiceState:
        details = _dict(_dict(obj.get("parent")).get("subscription_details"))
        old_details = _dict(obj.get("subscription_details"))
        subscription = _id(details.get("subscription")) or _id(obj.get("subscription"))
        tenant = _tenant(details.get("metadata")) or _tenant(old_details.get("metadata")) or _tenant(obj.get("metadata"))
        url = obj.get("hosted_invoice_url")

        def number(key: str) -> int:
            value = obj.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        # Checked above, field by field: built without a second validation (the webhook worker's hot path).
        return cls.model_construct(
            id=str(obj["id"]), customer=_id(obj.get("customer")), subscription_id=subscription, tenant_id=tenant,
            created=number("created") or None,
            status=(str(obj["status"])[:30] if obj.get("status") else None), amount_due=number("amount_due"),
            amount_paid=number("amount_paid"),
            currency=(str(obj["currency"])[:3].upper() if obj.get("currency") else None),
            attempt_count=number("attempt_count"), next_payment_attempt=when(obj.get("next_payment_attempt")),
            hosted_invoice_url=url if isinstance(url, str) else None,
            paid_at=when(_dict(obj.get("status_transitions")).get("paid_at")))


# Within one second Stripe's clock cannot order two states: the further-along one wins.
INVOICE_STATUS_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "void": 3, "paid": 4}
