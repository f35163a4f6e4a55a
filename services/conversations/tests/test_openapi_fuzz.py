from __future__ import annotations

import pytest

from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer
from common.testing.servers import serve_app
from conversations.app import create_app
from conversations.config import Settings


@pytest.fixture
async def scratch_url(migrated_database, platform_settings, graph):
    """The API on a database of its own (generated requests add channels and agents that would disturb other
    tests); provider calls go to the fake Graph API or fail fast (generated Evolution URLs)."""
    settings = Settings(database_url=await migrated_database("conversations", name="conversations_fuzz"),
                        **platform_settings, whatsapp_graph_api_base=graph.base_url, whatsapp_timeout_seconds=0.5,
                        conversations_worker_port=0)
    async with serve_app(create_app(settings)) as url:
        yield url


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(scratch_url, owner_token):
    failures = await fuzz_openapi(create_app().openapi(), scratch_url, bearer(owner_token))
    assert not failures, "\n\n".join(failures)
