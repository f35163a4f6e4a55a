"""Access-token verification: a remembered token still expires, and a withdrawn key takes its tokens along."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from common.auth.jwks import InvalidToken, JWKSClient


def _key(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key())) | {"kid": kid, "alg": "RS256", "use": "sig"}
    return private, jwk


def _token(private: rsa.RSAPrivateKey, kid: str, *, lifetime: float, typ: str = "access") -> str:
    now = int(time.time())
    claims = {"sub": "u1", "iat": now, "exp": now + lifetime, "iss": "iss", "aud": "aud", "typ": typ}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


def _client(*jwks: dict) -> JWKSClient:
    client = JWKSClient("http://127.0.0.1:9/unused", issuer="iss", audience="aud")
    client.set_jwks({"keys": list(jwks)})
    return client


async def test_a_verified_token_is_rejected_once_it_expires():
    private, jwk = _key("k1")
    client = _client(jwk)
    token = _token(private, "k1", lifetime=2)
    assert (await client.verify(token))["sub"] == "u1"
    assert (await client.verify(token))["sub"] == "u1"  # remembered
    await asyncio.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.1)
    with pytest.raises(InvalidToken):
        await client.verify(token)


async def test_withdrawing_a_key_rejects_the_tokens_it_signed():
    old_private, old = _key("old")
    new_private, new = _key("new")
    client = _client(old, new)
    token = _token(old_private, "old", lifetime=600)
    assert (await client.verify(token))["sub"] == "u1"
    client.set_jwks({"keys": [new]})
    client._refresh = _no_fetch  # type: ignore[method-assign]  # the unknown kid must not reach the network
    with pytest.raises(InvalidToken):
        await client.verify(token)
    assert (await client.verify(_token(new_private, "new", lifetime=600)))["sub"] == "u1"


async def test_tampered_and_wrong_type_tokens_are_never_remembered_as_valid():
    private, jwk = _key("k1")
    client = _client(jwk)
    refresh = _token(private, "k1", lifetime=600, typ="refresh")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await client.verify(refresh)
    good = _token(private, "k1", lifetime=600)
    await client.verify(good)
    head, payload, signature = good.split(".")
    with pytest.raises(InvalidToken):
        await client.verify(f"{head}.{payload}.{signature[:-4]}AAAA")


async def test_a_remembered_tokens_converted_claims_are_built_once_and_expire_with_it():
    private, jwk = _key("k1")
    client = _client(jwk)
    token = _token(private, "k1", lifetime=2)
    built: list[dict] = []

    def convert(claims: dict) -> tuple[str]:
        built.append(claims)
        return (claims["sub"],)

    first = await client.verified(token, convert)
    assert first == ("u1",) and await client.verified(token, convert) is first and len(built) == 1
    assert (await client.verify(token))["sub"] == "u1"  # the plain claims too, from the same entry
    await asyncio.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.1)
    with pytest.raises(InvalidToken):
        await client.verified(token, convert)
    assert len(built) == 1


async def _no_fetch(force: bool) -> None:
    return None
