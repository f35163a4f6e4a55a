"""A secret at rest is two columns: `<name>_encrypted`, the `SecretBox` token (never shown, decrypted only to
use the secret), and `<name>_hint`, its masked form (what every read shows). Models declare them with
`encrypted()` / `hint()`; services write both at once with `seal()` and read the secret with `unseal()`.

    class N8nSettings(Base, table=True):
        api_key_encrypted: str = encrypted()
        api_key_hint: str = hint()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String, Text
from sqlmodel import Field

from common.crypto import SecretBox


def encrypted(*, optional: bool = False) -> Any:
    """The token column (NOT NULL unless `optional`, e.g. a previous secret kept during a rotation)."""
    return Field(default=None, sa_type=Text) if optional else Field(sa_type=Text)


def hint(length: int = 20) -> Any:
    """The masked form: a few characters of the secret, as long as the masking function makes it."""
    return Field(sa_type=String(length))


def seal(row: Any, name: str, secret: str, box: SecretBox, mask: Callable[[str], str]) -> None:
    """Store `secret` in the row's `<name>_encrypted` and `<name>_hint` together."""
    setattr(row, f"{name}_encrypted", box.encrypt(secret))
    setattr(row, f"{name}_hint", mask(secret))


def unseal(row: Any, name: str, box: SecretBox) -> str:
    return box.decrypt(getattr(row, f"{name}_encrypted"))
