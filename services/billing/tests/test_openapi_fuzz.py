from __future__ import annotations

import pytest

from billing.app import create_app
from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer
from common.testing.servers import serve_app


@pytest.fixture
async def scratch_url(migrated_database, platform_settings, stripe):
    """The API on a database of its own (generated requests change settings and plans) and without the
    Kafka consumer (a second member of its group would take the session app's partitions)."""
    from billing.config import Settings

    settings = Settings(database_url=await migrated_database("billing", name="billing_fuzz"),
                        stripe_api_base=stripe.url, stripe_timeout_seconds=3, **platform_settings)
    async with serve_app(create_app(settings, consume=False)) as url:
        yield url


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(scratch_url, owner_token):
    failures = await fuzz_openapi(create_app().openapi(), scratch_url, bearer(owner_token))
    assert not failures, "\n\n".join(failures)
