from __future__ import annotations

import httpx
import pytest

from common.testing.plugin import bearer
from common.testing.servers import serve_app
from tenants.app import create_app
from tenants.config import Settings


@pytest.fixture(scope="session")
async def tenants_url(migrated_database, platform_settings):
    settings = Settings(database_url=await migrated_database("tenants"), **platform_settings)
    async with serve_app(create_app(settings)) as url:
        yield url


@pytest.fixture
async def owner(tenants_url, owner_token):
    async with httpx.AsyncClient(base_url=tenants_url, headers=bearer(owner_token), timeout=10) as client:
        yield client


@pytest.fixture
async def anonymous(tenants_url):
    async with httpx.AsyncClient(base_url=tenants_url, timeout=10) as client:
        yield client
