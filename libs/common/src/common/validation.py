"""Text that can reach PostgreSQL (or a password hasher): no NUL characters, no unpaired surrogates.

The JSON decoder accepts both ("\\u0000", "\\ud800"); PostgreSQL rejects the first and UTF-8 encoding
the second, which would turn bad input into a 500. Rejected at the schema, they are a 422.
"""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator, field_validator


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


StorableText = AfterValidator(storable)

# For query parameters (URL decoding already replaces invalid UTF-8): no NUL characters.
NO_NUL = r"^[^\x00]*$"


def omitted_not_null(*fields: str) -> Any:
    """A partial-update (PATCH) validator: these fields may be left out, but not sent as null.

    Use in the model's body: ``_not_null = omitted_not_null("name", "status")``.
    """

    def check(cls: type, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    return field_validator(*fields)(classmethod(check))  # type: ignore[arg-type]
