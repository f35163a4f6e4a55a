"""Standard Webhooks signing: secrets `whsec_<base64>`, `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
GENERATED_SECRET_BYTES = 32


class InvalidSecret(ValueError):
    pass


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; raises `InvalidSecret` with a reason a caller can act on."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"the secret must start with {SECRET_PREFIX!r} followed by base64")
    encoded = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the secret is not valid base64 after the whsec_ prefix") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(f"the secret must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
                            f"(got {len(key)})")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.digest(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256)  # one-shot C path
    return "v1," + base64.b64encode(mac).decode()


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space separated signatures, one per key (new secret first, then the one in its grace period)."""
    return " ".join(sign(k, msg_id, timestamp, body) for k in keys)
