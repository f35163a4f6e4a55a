"""Pytest plugin with the fixtures every service shares (loaded with `-p common.testing.plugin`).

Real infrastructure, started once per test session: PostgreSQL (embedded, or TEST_DATABASE_URL),
Kafka (tansu, or TEST_KAFKA_BOOTSTRAP_SERVERS), and the real auth service as a process.

    migrated_database("tenants") -> async URL of a fresh database with that service's migrations
    platform_settings            -> Settings kwargs: kafka, JWKS URL, encryption keys
    auth_server                  -> AuthServer (owner_token(), create_user(role, tenant_id))
    serve_app(app)               -> (from common.testing.servers) runs an app for real in the test loop

A service's conftest names itself and serves its app (factories in common.testing.fixtures); the
clients come from here:

    database_url = database_url_fixture("tenants")
    service_url = service_url_fixture(create_app, Settings)

    database_url                 -> the service's migrated database: one name in every service, declared by
                                    each conftest (a session fixture of the plugin would be computed once
                                    per pytest session, handing every service the first one's database)
    owner / anonymous            -> httpx clients on service_url: the platform owner / no credentials
    tenant_user(role, tenant_id) -> a client logged in as a new tenant-scoped user
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from common.testing.platform import AuthServer, start_auth_server
from common.testing.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[5]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    from devstack.postgres import start_postgres

    env = {"DATABASE_URL": os.environ["TEST_DATABASE_URL"]} if os.environ.get("TEST_DATABASE_URL") else {}
    pg = await start_postgres(tmp_path_factory.mktemp("pg"), env)
    yield pg
    await asyncio.to_thread(pg.stop)


@pytest.fixture(scope="session")
async def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    from devstack.kafka import start_kafka

    env = {}
    if os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        env["KAFKA_BOOTSTRAP_SERVERS"] = os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"]
    broker = await start_kafka(env, log_path=tmp_path_factory.mktemp("kafka") / "tansu.log")
    yield broker
    await broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Any) -> str:
    return kafka_broker.bootstrap


def _migrate(repo_root: Path, service: str, url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(repo_root / "services" / service / "alembic.ini"),
         "upgrade", "head"],
        env=os.environ | {"DATABASE_URL": url}, capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations of {service} failed:\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
async def migrated_database(postgres: Any, repo_root: Path) -> Callable[..., Awaitable[str]]:
    """Factory: a fresh, migrated database for `service` (cached per name within the session)."""
    cache: dict[str, str] = {}

    async def make(service: str, name: str | None = None) -> str:
        key = name or service
        if key not in cache:
            db = f"t_{key.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
            await postgres.create_databases([db])
            url = postgres.async_url(db)
            await asyncio.to_thread(_migrate, repo_root, service, url)
            cache[key] = url
        return cache[key]

    return make


@pytest.fixture(scope="session")
def encryption_keys() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
async def auth_server(migrated_database: Callable[..., Awaitable[str]], tmp_path_factory: pytest.TempPathFactory,
                      encryption_keys: str) -> AsyncIterator[AuthServer]:
    url = await migrated_database("auth")
    server = await start_auth_server(url, {"SECRETS_ENCRYPTION_KEYS": encryption_keys},
                                     tmp_path_factory.mktemp("auth") / "auth.log", free_port())
    yield server
    server.process.terminate()
    try:
        await asyncio.to_thread(server.process.wait, 10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
async def owner_token(auth_server: AuthServer) -> str:
    return await auth_server.owner_token()


@pytest.fixture(scope="session")
def platform_settings(kafka_bootstrap: str, auth_server: AuthServer, encryption_keys: str) -> dict[str, Any]:
    """Settings kwargs every service under test needs (add database_url per service)."""
    return {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "auth_jwks_url": auth_server.jwks_url,
        "secrets_encryption_keys": encryption_keys,
        "outbox_poll_interval_seconds": 0.5,
        "rate_limit_per_minute": 100_000,
        # In-process apps must not join the consumer groups of the e2e stack's service processes.
        "kafka_consumer_group_prefix": f"test-{uuid.uuid4().hex[:8]}-",
    }


@pytest.fixture
async def owner(service_url: str, owner_token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, headers=bearer(owner_token), timeout=10) as client:
        yield client


@pytest.fixture
async def anonymous(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
        yield client


@pytest.fixture
async def tenant_user(service_url: str, auth_server: AuthServer
                      ) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """`await tenant_user("TENANT_ADMIN", tenant_id)`: a client for a new user of that tenant (its `user`
    attribute holds the created user)."""
    async with contextlib.AsyncExitStack() as stack:
        async def make(role: str = "TENANT_USER", tenant_id: uuid.UUID | str | None = None) -> httpx.AsyncClient:
            user = await auth_server.create_user(role, tenant_id or uuid.uuid4())
            client = await stack.enter_async_context(httpx.AsyncClient(
                base_url=service_url, headers=bearer(user["accessToken"]), timeout=10))
            client.user = user  # type: ignore[attr-defined]
            return client

        yield make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pytest_configure(config: pytest.Config) -> None:
    # Real tracer provider, as in a service: trace context then flows through outbox, Kafka and webhooks.
    from common.observability.tracing import configure_tracing

    configure_tracing("pytest")
