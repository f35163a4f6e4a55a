from __future__ import annotations

import pytest

from common.app import create_service_app
from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer
from common.testing.servers import serve_app
from leads.api import routers
from leads.app import create_app
from leads.config import Settings
from leads.events import outbox


@pytest.fixture
async def scratch_url(migrated_database, platform_settings):
    """The API on a database of its own (generated requests add stages and leads that would disturb other
    tests) and without the Kafka consumer (a second member of its group would steal its partitions)."""
    settings = Settings(database_url=await migrated_database("leads", name="leads_fuzz"), **platform_settings)
    app = create_service_app(settings, title="leads (fuzz)", description="", routers=routers, outbox=outbox)
    async with serve_app(app) as url:
        yield url


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(scratch_url, owner_token):
    failures = await fuzz_openapi(create_app().openapi(), scratch_url, bearer(owner_token))
    assert not failures, "\n\n".join(failures)
