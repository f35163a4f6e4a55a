from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from common.api import InputSchema, Schema

PriceId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^price_[A-Za-z0-9]{1,200}$")]
PlanCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,49}$")]


class PlanRead(Schema):
    code: str
    name: str
    amount: int = Field(description="Minor units (cents) per interval")
    currency: str
    interval: str
    active: bool
    stripe_product_id: str | None
    stripe_price_id: str | None
    mapped_by: Literal["sync", "manual"] | None
    synced_at: datetime | None


class PlanUpdate(InputSchema):
    """Map a plan to an existing recurring Stripe price instead of the one sync would create. The price must
    bill the plan's terms (amount, currency, interval as tenants has them)."""

    price_id: PriceId = Field(description="An existing active recurring Stripe price (price_…)")
