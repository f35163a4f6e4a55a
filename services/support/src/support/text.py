"""Bounded, storable text for request bodies (shared by the domain modules)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from common.validation import NO_NUL, StorableText

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StorableText]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000), StorableText]

__all__ = ["NO_NUL", "LongText", "Subject"]
