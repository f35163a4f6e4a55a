from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, create_model

from common.api import InputSchema, Schema
from common.validation import StorableText

PlanCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True,
                                            pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,49}$")]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), StorableText]
Currency = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")]
Interval = Literal["day", "week", "month", "year"]
# Stripe's largest unit_amount (8 digits of minor units).
Amount = Annotated[int, Field(ge=0, le=99_999_999, description="Price per interval in minor units (cents)")]
Limits = Annotated[dict[str, int | None], Field(max_length=50, description="e.g. {\"users\": 25, \"channels\": 5}; "
                                                "null = unlimited")]


class PlanCreate(InputSchema):
    code: PlanCode = Field(description="Letters, digits, _ and -; stored upper case; cannot change later")
    name: PlanName
    amount: Amount
    currency: Currency = "USD"
    interval: Interval = "month"
    active: bool = True
    limits: Limits = Field(default_factory=dict)


def _each_optional(model: type[InputSchema], name: str, doc: str, *, leave_out: set[str]) -> Any:
    """`model`'s fields (their checks kept) less `leave_out`, each optional: left out or null = kept. A PATCH
    body made from the create body cannot drift from it."""
    fields: dict[str, Any] = {
        field: (info.rebuild_annotation() | None, Field(default=None, description=info.description))
        for field, info in model.model_fields.items() if field not in leave_out}
    return create_model(name, __base__=InputSchema, __doc__=doc, __module__=__name__, **fields)


PlanUpdate = _each_optional(PlanCreate, "PlanUpdate", "Fields left out are kept (the code cannot change). A new "
                            "amount, currency or interval is billed from the next Stripe sync on.",
                            leave_out={"code"})


class PlanRead(Schema):
    id: uuid.UUID
    code: str
    name: str
    amount: int = Field(description="Price per interval in minor units (cents)")
    currency: str
    interval: str
    active: bool
    limits: dict[str, Any]
    sort_order: int
    created_at: datetime
    updated_at: datetime
