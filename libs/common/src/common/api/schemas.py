"""The schema bases (STYLE habit 13, after Polar's `kit/schemas.py`).

Python attributes are snake_case; JSON is camelCase through an alias generator, so a response is built
straight from the ORM row (`ItemRead.model_validate(row)`) with no hand-written mapper.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    """Responses: read from attributes (ORM rows), written with camelCase names."""

    model_config = ConfigDict(from_attributes=True, alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True)


class InputSchema(Schema):
    """Request bodies: camelCase names only, unknown fields refused (a typo is a 422, not a silent no-op).
    `model_dump()` gives the attribute names, the ones a service passes on to its models."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, serialize_by_alias=False)
