"""Text that can reach PostgreSQL (or a password hasher): no NUL characters, no unpaired surrogates.

The JSON decoder accepts both ("\\u0000", "\\ud800"); PostgreSQL rejects the first and UTF-8 encoding
the second, which would turn bad input into a 500. Rejected at the schema, they are a 422.
"""

from __future__ import annotations

from pydantic import AfterValidator


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
