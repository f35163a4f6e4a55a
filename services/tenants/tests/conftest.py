from __future__ import annotations

import pytest

from common.testing.servers import serve_app
from tenants.app import create_app
from tenants.config import Settings


@pytest.fixture(scope="session")
def service_name() -> str:
    return "tenants"


@pytest.fixture(scope="session")
async def database_url(migrated_database, service_name: str) -> str:
    # Declared here, not taken from the plugin: pytest keeps a session fixture's first value, and the
    # plugin's one would hand the first service's database to every service of a multi-service run.
    return await migrated_database(service_name)


@pytest.fixture(scope="session")
async def service_url(database_url, platform_settings):
    async with serve_app(create_app(Settings(database_url=database_url, **platform_settings))) as url:
        yield url
