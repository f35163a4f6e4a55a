from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from common.api import InputSchema, Schema
from leads.stage.schemas import StageCode


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Company = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=50,
                                         pattern=r"^\+?[0-9][0-9 ()./-]*$")]
Email = EmailStr  # email-validator bounds the length (254)
Source = Annotated[str, BeforeValidator(_lower),
                   StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Currency = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2),
                  AfterValidator(lambda d: d.quantize(Decimal("0.01")))]
Notes = Annotated[str, StringConstraints(max_length=5000)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]

SOURCE_HELP = "Where the lead came from, e.g. web, referral, whatsapp, event (lower-case slug)"


class LeadCreate(InputSchema):
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    company: Company | None = None
    source: Source = Field(default="manual", description=SOURCE_HELP)
    value: Money = Decimal("0.00")
    currency: Currency = "USD"
    stage: StageCode | None = Field(default=None, description="An open stage; default: the first open stage")
    assignee_id: uuid.UUID | None = Field(default=None, description="The user who owns / works the lead")
    notes: Notes | None = None
    own_operation: bool = Field(default=False, description="A lead of the platform owner's own operations")


_NOT_NULL = ("name", "source", "value", "currency", "own_operation")


class LeadUpdate(InputSchema):
    """Partial update: fields left out are kept; `null` clears an optional field.

    The stage is not here: stage changes go through `POST /leads/{id}/stage` and `/convert`.
    """

    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    company: Company | None = None
    source: Source | None = Field(default=None, description=SOURCE_HELP)
    value: Money | None = None
    currency: Currency | None = None
    assignee_id: uuid.UUID | None = None
    notes: Notes | None = None
    own_operation: bool | None = None

    @model_validator(mode="after")
    def _required_not_null(self) -> LeadUpdate:
        nulls = [to_camel(f) for f in _NOT_NULL if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"cannot be null: {', '.join(nulls)}")
        return self


class StageMove(InputSchema):
    stage: StageCode
    note: Note | None = None


class ConvertRequest(InputSchema):
    tenant_id: uuid.UUID | None = Field(default=None, description="The tenant this lead became, if known")
    note: Note | None = None


class LeadRead(Schema):
    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    company: str | None
    source: str
    value: Decimal
    currency: str
    stage: str
    assignee_id: uuid.UUID | None
    notes: str | None
    own_operation: bool
    tenant_id: uuid.UUID | None
    converted_at: datetime | None
    created_by: uuid.UUID | None
    conversation_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class StageChangeRead(Schema):
    # A history row (`StageChange`) read under the short names the API has always answered.
    from_: str | None = Field(validation_alias="from_stage", serialization_alias="from")
    to: str = Field(validation_alias="to_stage")
    at: datetime = Field(validation_alias="created_at")
    by: uuid.UUID | None = Field(validation_alias="changed_by")
    note: str | None


class LeadDetail(LeadRead):
    history: list[StageChangeRead] = Field(description="Stage history, oldest first")


class LeadSort(StrEnum):
    created = "createdAt"
    created_desc = "-createdAt"
    updated = "updatedAt"
    updated_desc = "-updatedAt"
    name = "name"
    name_desc = "-name"
    value = "value"
    value_desc = "-value"


@dataclass(frozen=True)
class LeadFilters:
    """List filters shared by the lead list, own-operations list, pipeline and metrics."""

    stage: str | None = None
    source: str | None = None
    q: str | None = None
    own_operation: bool | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
