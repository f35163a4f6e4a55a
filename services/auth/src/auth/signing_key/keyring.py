"""The keys in memory: the private key that signs now, and the public JWKS that verifies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from fastapi import Request


@dataclass(frozen=True)
class KeyRing:
    kid: str
    private_key: RSAPrivateKey
    jwks: dict[str, Any]

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


def current_keyring(request: Request) -> KeyRing:
    """Installed on `app.state.keyring` at startup and replaced whole on each reload."""
    return request.app.state.keyring
