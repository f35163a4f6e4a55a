from __future__ import annotations

from common.api import Schema


class JWK(Schema):
    kid: str
    kty: str = "RSA"
    alg: str = "RS256"
    use: str = "sig"
    n: str
    e: str


class JWKS(Schema):
    keys: list[JWK]
