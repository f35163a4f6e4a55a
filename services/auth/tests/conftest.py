"""Auth under test: the real app (lifespan included) on a migrated database, called through httpx.

Uses `common.testing.plugin` (database_url, encryption_keys, bearer). The owner here is the one this app
seeds (auth issues its own tokens), so the clients are ASGI clients of the app, not the plugin's `owner`
and `anonymous`, which need a running auth. Every test gets its own client IP
(X-Forwarded-For from the loopback peer, which is a trusted proxy), so login throttling in one test
never spills into another.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auth.app import create_app
from auth.config import Settings
from common.testing.fixtures import database_url_fixture
from common.testing.plugin import bearer

OWNER_EMAIL = "owner@auth-tests.local"
OWNER_PASSWORD = "Owner-Passw0rd-1"
USER_PASSWORD = "Passw0rd-123"
_ips = itertools.count(1)


def next_ip() -> str:
    """A fresh client address (198.18.0.0/15 is for benchmarks: never a trusted proxy)."""
    n = next(_ips)
    return f"198.18.{n // 250}.{n % 250 + 1}"


database_url = database_url_fixture("auth")


@pytest.fixture(scope="session")
async def auth_settings(database_url: str, encryption_keys: str) -> Settings:
    return Settings(
        database_url=database_url,
        secrets_encryption_keys=encryption_keys,
        platform_owner_email=OWNER_EMAIL,
        platform_owner_password=OWNER_PASSWORD,
        # Unreachable on purpose: auth must verify its own tokens without fetching its JWKS.
        auth_jwks_url="http://127.0.0.1:9/api/auth/.well-known/jwks.json",
        rate_limit_per_minute=100_000,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """An auth replica with its lifespan running (startup: key, owner seed, keyring)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, ip: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth.test",
                             headers={"X-Forwarded-For": ip or next_ip()})


@pytest.fixture(scope="session")
async def app(auth_settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(auth_settings) as app:
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture(scope="session")
async def owner_headers(app: FastAPI) -> dict[str, str]:
    async with client_for(app) as c:
        resp = await c.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
        assert resp.status_code == 200, resp.text
        return bearer(resp.json()["accessToken"])


@pytest.fixture
def create_user(app: FastAPI, owner_headers: dict[str, str]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Factory: creates a user through the API; returns its JSON plus the password."""

    async def make(role: str = "TENANT_USER", tenant_id: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
        body = {"email": f"{role.lower()}-{uuid.uuid4().hex[:10]}@example.com", "password": USER_PASSWORD,
                "platformRole": role, **extra}
        if role != "PLATFORM_OWNER":
            body["tenantId"] = str(tenant_id or uuid.uuid4())
        async with client_for(app) as c:
            resp = await c.post("/api/auth/users", json=body, headers=owner_headers)
        assert resp.status_code == 201, resp.text
        return resp.json() | {"password": body["password"]}

    return make


@pytest.fixture
def login(client: httpx.AsyncClient) -> Callable[..., Awaitable[httpx.Response]]:
    async def do(email: str, password: str) -> httpx.Response:
        return await client.post("/api/auth/login", json={"email": email, "password": password})

    return do


@pytest.fixture(scope="session")
def replica() -> Callable[[Settings], contextlib.AbstractAsyncContextManager[FastAPI]]:
    """`async with replica(settings) as app2:` another auth process on the same database."""
    return running


@pytest.fixture(scope="session")
def client_of() -> Callable[..., httpx.AsyncClient]:
    """`async with client_of(app, ip=None) as c:` a client of any app, with its own client IP."""
    return client_for
