from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from common.api import InputSchema, Schema

PriceId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^price_[A-Za-z0-9]{1,200}$")]
PlanCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,49}$")]
Currency = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")]


class PlanRead(Schema):
    code: str
    name: str
    amount: int = Field(description="Minor units (cents) per interval")
    currency: str
    interval: str
    stripe_product_id: str | None
    stripe_price_id: str | None
    mapped_by: Literal["sync", "manual"] | None
    synced_at: datetime | None


class PlanUpdate(InputSchema):
    """Map a plan to an existing Stripe price (`priceId`), or describe a plan the next sync creates a price for
    (`name`, `amount`, `currency`, `interval`). A new plan code needs a name."""

    name: PlanName | None = None
    price_id: PriceId | None = Field(default=None, description="An existing recurring Stripe price (price_…)")
    amount: int | None = Field(default=None, ge=0, le=99_999_999, description="Minor units (cents)")
    currency: Currency | None = None
    interval: Literal["day", "week", "month", "year"] | None = None

    @model_validator(mode="after")
    def _something(self) -> PlanUpdate:
        if self.price_id is None and self.amount is None and self.name is None and self.currency is None \
                and self.interval is None:
            raise ValueError("give priceId, or name/amount/currency/interval")
        if self.price_id is not None and (self.amount is not None or self.currency is not None
                                          or self.interval is not None):
            raise ValueError("priceId takes amount, currency and interval from Stripe: do not send them too")
        return self
