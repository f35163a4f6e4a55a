"""Bounded, storable text for request bodies and query parameters (shared by the domain modules)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL and lone surrogates cannot be encoded: a 422, never a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                    AfterValidator(storable)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000),
                     AfterValidator(storable)]

# For query parameters (URL decoding already replaces invalid UTF-8): no NUL characters.
NO_NUL = r"^[^\x00]*$"
