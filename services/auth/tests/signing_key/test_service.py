"""Signing keys: one per deployment however many replicas start, sealed at rest, never fetched over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from auth.models import SigningKey
from auth.signing_key import service
from auth.signing_key.keyring import KeyRing
from common.crypto import SecretBox
from common.db import Database
from common.testing.checks import assert_problem


async def test_concurrent_starts_create_one_key(migrated_database, encryption_keys):
    database = Database(await migrated_database("auth", name="auth_key_race"))
    box = SecretBox(encryption_keys)

    async def start() -> bool:
        async with database.sessionmaker() as session, session.begin():
            return await service.ensure_active_key(session, box)

    try:
        created = await asyncio.gather(*(start() for _ in range(4)))
        assert sorted(created) == [False, False, False, True]
        async with database.sessionmaker() as session:
            keys = list((await session.execute(select(SigningKey))).scalars())
    finally:
        await database.dispose()
    assert len(keys) == 1
    # Sealed at rest: only the configured keys open it.
    assert "PRIVATE KEY" not in keys[0].private_key_encrypted
    assert box.decrypt(keys[0].private_key_encrypted).startswith("-----BEGIN PRIVATE KEY-----")


async def test_replicas_share_the_key(app, auth_settings, replica, client_of, create_user):
    user = await create_user()
    async with replica(auth_settings) as other, client_of(other) as c:
        other_jwks = (await c.get("/api/auth/.well-known/jwks.json")).json()
        token = (await c.post("/api/auth/login", json={"email": user["email"],
                                                       "password": user["password"]})).json()["accessToken"]
    async with client_of(app) as c:
        assert (await c.get("/api/auth/.well-known/jwks.json")).json() == other_jwks
        assert (await c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_auth_never_fetches_its_own_jwks(app, client, create_user, monkeypatch):
    fetched: list[str] = []
    original = httpx.AsyncClient.get

    async def spy(self, url, *args, **kwargs):
        fetched.append(str(url))
        return await original(self, url, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "get", spy)
    user = await create_user()
    token = (await client.post("/api/auth/login", json={"email": user["email"],
                                                        "password": user["password"]})).json()["accessToken"]
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    # A token naming a key auth does not have would make a JWKS client refetch; auth must not.
    now = int(time.time())
    unknown_kid = KeyRing(kid="unknown-kid", private_key=app.state.keyring.private_key, jwks={}).sign(
        {"sub": str(uuid.uuid4()), "role": "PLATFORM_OWNER", "typ": "access", "iat": now, "exp": now + 60,
         "iss": "plataforma-auth", "aud": "plataforma"})
    assert_problem(await client.get("/api/auth/me", headers={"Authorization": f"Bearer {unknown_kid}"}), 401)
    assert not [u for u in fetched if "jwks" in u]


async def test_encryption_keys_can_rotate(app, auth_settings, replica, client_of, encryption_keys):
    rotated = auth_settings.model_copy(update={
        "secrets_encryption_keys": f"{Fernet.generate_key().decode()},{encryption_keys}"})
    async with replica(rotated) as other, client_of(other) as c:
        assert (await c.get("/api/auth/.well-known/jwks.json")).json() == app.state.keyring.jwks


async def test_start_fails_loudly_without_the_sealing_key(auth_settings, replica):
    wrong = auth_settings.model_copy(update={"secrets_encryption_keys": Fernet.generate_key().decode()})
    with pytest.raises(RuntimeError, match="SECRETS_ENCRYPTION_KEYS"):
        async with replica(wrong):
            pass
