"""Argon2id password hashing. Hashing is CPU and memory bound, so it runs in a worker thread."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    return _hasher.hash("timing equaliser for unknown emails")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """False for a wrong password; an unknown user (None) costs the same time as a known one."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters than the hasher's current ones."""
    return _hasher.check_needs_rehash(password_hash)
