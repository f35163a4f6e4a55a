"""Text that can reach PostgreSQL or Argon2: no NUL characters and no unpaired surrogates.

The stdlib JSON decoder accepts both ("\\u0000", "\\ud800"); PostgreSQL rejects the first and UTF-8
encoding the second, which would turn bad input into a 500. Rejected here, they are a 422.
"""

from __future__ import annotations

from pydantic import AfterValidator


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


CleanText = AfterValidator(_clean)
