"""RSA signing keys: created once (whichever replica starts first), stored sealed, loaded into a KeyRing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import SigningKey
from auth.signing_key.keyring import KeyRing
from auth.signing_key.repository import SigningKeyRepository
from common.crypto import SecretBox
from common.db import utcnow


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key: RSAPrivateKey) -> dict[str, Any]:
    """The public half as a JWK whose kid is its RFC 7638 thumbprint."""
    raw = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    members = {"e": raw["e"], "kty": "RSA", "n": raw["n"]}
    kid = _b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": raw["n"], "e": raw["e"]}


async def _new_key(box: SecretBox) -> SigningKey:
    private_key = await asyncio.to_thread(rsa.generate_private_key, public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    jwk = public_jwk(private_key)
    return SigningKey(id=uuid.uuid4(), kid=jwk["kid"], private_key_encrypted=box.encrypt(pem), public_jwk=jwk)


async def ensure_active_key(session: AsyncSession, box: SecretBox) -> bool:
    """Creates a key unless an active one exists; True when it created one."""
    repo = SigningKeyRepository(session)
    await repo.lock_creation()
    if await repo.active() is not None:
        return False
    await repo.add(await _new_key(box))
    return True


async def load_keyring(session: AsyncSession, box: SecretBox, *, access_token_ttl_seconds: int) -> KeyRing:
    repo = SigningKeyRepository(session)
    active = await repo.active()
    if active is None:
        raise RuntimeError("no active signing key: ensure_active_key must run first")
    try:
        pem = box.decrypt(active.private_key_encrypted)
    except ValueError as exc:
        raise RuntimeError(f"signing key {active.kid} cannot be decrypted: SECRETS_ENCRYPTION_KEYS must still "
                           "include the key it was sealed with") from exc
    private_key = serialization.load_pem_private_key(pem.encode(), None)
    if not isinstance(private_key, RSAPrivateKey):
        raise RuntimeError(f"signing key {active.kid} is not an RSA key")
    # A retired key stays published while tokens it signed can still be unexpired.
    published = await repo.published(utcnow() - timedelta(seconds=access_token_ttl_seconds + 60))
    return KeyRing(kid=active.kid, private_key=private_key, jwks={"keys": [k.public_jwk for k in published]})
