from __future__ import annotations

from pydantic import BaseModel


class JWK(BaseModel):
    kid: str
    kty: str = "RSA"
    alg: str = "RS256"
    use: str = "sig"
    n: str
    e: str


class JWKS(BaseModel):
    keys: list[JWK]
