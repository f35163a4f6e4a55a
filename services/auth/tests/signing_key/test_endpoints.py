"""The public JWKS: what every other service verifies access tokens with."""

from __future__ import annotations

import jwt
import pytest

from common.auth.jwks import InvalidToken, JWKSClient

OWNER_EMAIL = "owner@auth-tests.local"
OWNER_PASSWORD = "Owner-Passw0rd-1"


async def test_jwks_is_public_and_well_formed(client):
    resp = await client.get("/api/auth/.well-known/jwks.json")
    assert resp.status_code == 200
    keys = resp.json()["keys"]
    assert keys
    for key in keys:
        assert key.keys() == {"kid", "kty", "alg", "use", "n", "e"}
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        assert "d" not in key  # never the private exponent


async def test_jwks_verifies_a_login_token(create_user, client, auth_settings):
    user = await create_user("TENANT_ADMIN")
    token = (await client.post("/api/auth/login", json={"email": user["email"],
                                                        "password": user["password"]})).json()["accessToken"]
    verifier = JWKSClient("http://unused.invalid", issuer=auth_settings.auth_issuer,
                          audience=auth_settings.auth_audience)
    verifier.set_jwks((await client.get("/api/auth/.well-known/jwks.json")).json())
    claims = await verifier.verify(token)
    assert claims["sub"] == user["id"] and claims["email"] == user["email"]
    assert claims["role"] == "TENANT_ADMIN" and claims["tid"] == user["tenantId"]
    assert claims["typ"] == "access" and claims["iss"] == "plataforma-auth" and claims["aud"] == "plataforma"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    jwks = (await client.get("/api/auth/.well-known/jwks.json")).json()
    assert jwt.get_unverified_header(token)["kid"] in {k["kid"] for k in jwks["keys"]}


async def test_owner_token_has_no_tenant_claim(client, auth_settings):
    token = (await client.post("/api/auth/login", json={"email": OWNER_EMAIL,
                                                        "password": OWNER_PASSWORD})).json()["accessToken"]
    verifier = JWKSClient("http://unused.invalid", issuer=auth_settings.auth_issuer,
                          audience=auth_settings.auth_audience)
    verifier.set_jwks((await client.get("/api/auth/.well-known/jwks.json")).json())
    claims = await verifier.verify(token)
    assert claims["role"] == "PLATFORM_OWNER" and "tid" not in claims


async def test_a_different_audience_rejects_the_token(client, auth_settings):
    token = (await client.post("/api/auth/login", json={"email": OWNER_EMAIL,
                                                        "password": OWNER_PASSWORD})).json()["accessToken"]
    verifier = JWKSClient("http://unused.invalid", issuer=auth_settings.auth_issuer, audience="someone-else")
    verifier.set_jwks((await client.get("/api/auth/.well-known/jwks.json")).json())
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
