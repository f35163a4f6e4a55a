from __future__ import annotations

import pytest

from common.testing.servers import serve_app
from tenants.app import create_app
from tenants.config import Settings


@pytest.fixture(scope="session")
def service_name() -> str:
    return "tenants"


@pytest.fixture(scope="session")
async def service_url(database_url, platform_settings):
    async with serve_app(create_app(Settings(database_url=database_url, **platform_settings))) as url:
        yield url
