"""Secrets at rest: Fernet with key rotation (`SECRETS_ENCRYPTION_KEYS`: first encrypts, all decrypt)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("SECRETS_ENCRYPTION_KEYS is empty: set at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


MASK = "****"  # what a masked secret starts with


def mask(secret: str | None, visible: int = 4) -> str | None:
    """Shown after creation: only the last `visible` characters (none of a secret that short)."""
    if not secret:
        return secret
    return MASK + secret[-visible:] if len(secret) > visible else MASK
