"""Access tokens that were not issued as they stand are refused (401 problem), whoever made them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.signing_key.keyring import KeyRing
from common.testing.checks import assert_problem


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides) -> dict:
    now = int(time.time())
    return {"iss": "plataforma-auth", "aud": "plataforma", "sub": str(uuid.uuid4()), "email": "x@example.com",
            "role": "PLATFORM_OWNER", "typ": "access", "iat": now, "exp": now + 300,
            "jti": uuid.uuid4().hex} | overrides


async def _me(client, token: str):
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_signed_token_for_a_real_user_works(app, client, create_user):
    user = await create_user()
    token = app.state.keyring.sign(_claims(sub=user["id"], role="TENANT_USER", tid=user["tenantId"]))
    assert (await _me(client, token)).status_code == 200


async def test_tampered_payload_is_401(create_user, client):
    user = await create_user("TENANT_USER")
    token = (await client.post("/api/auth/login", json={"email": user["email"],
                                                        "password": user["password"]})).json()["accessToken"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "PLATFORM_OWNER"
    forged = f"{header}.{_b64(claims)}.{signature}"
    assert_problem(await _me(client, forged), 401)
    assert_problem(await client.get("/api/auth/users", headers={"Authorization": f"Bearer {forged}"}), 401)


async def test_expired_token_is_401(app, client, create_user):
    user = await create_user()
    past = int(time.time()) - 3600
    token = app.state.keyring.sign(_claims(sub=user["id"], iat=past - 900, exp=past))
    assert_problem(await _me(client, token), 401)


async def test_token_signed_by_a_foreign_key_is_401(app, client):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Same kid as the real key: only the signature can tell them apart.
    token = KeyRing(kid=app.state.keyring.kid, private_key=stranger, jwks={}).sign(_claims())
    assert_problem(await _me(client, token), 401)


@pytest.mark.parametrize("overrides", [{"iss": "evil"}, {"aud": "other-service"}, {"typ": "refresh"},
                                       {"sub": "not-a-uuid"}, {"role": "GOD"}])
async def test_tokens_with_wrong_claims_are_401(app, client, overrides):
    assert_problem(await _me(client, app.state.keyring.sign(_claims(**overrides))), 401)


async def test_unsigned_and_hs256_tokens_are_401(app, client):
    none_token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': app.state.keyring.kid})}.{_b64(_claims())}."
    assert_problem(await _me(client, none_token), 401)
    # HS256 keyed with the public key PEM: the classic algorithm-confusion attack.
    public_pem = app.state.keyring.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': app.state.keyring.kid})}.{_b64(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert_problem(await _me(client, f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"), 401)


@pytest.mark.parametrize("value", ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 5000])
async def test_garbage_authorization_is_401(client, value):
    assert_problem(await client.get("/api/auth/me", headers={"Authorization": value}), 401)


async def test_a_refresh_token_is_not_an_access_token(create_user, client):
    user = await create_user()
    refresh = (await client.post("/api/auth/login", json={"email": user["email"],
                                                          "password": user["password"]})).json()["refreshToken"]
    assert_problem(await _me(client, refresh), 401)
