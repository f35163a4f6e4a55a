from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from common.testing.events import collect_events
from common.testing.servers import serve_app
from leads.app import create_app
from leads.config import Settings

LEADS = "/api/platform/leads"
TOPIC = "platform.leads.events"


@pytest.fixture(scope="session")
def service_name() -> str:
    return "leads"


@pytest.fixture(scope="session")
async def database_url(migrated_database, service_name: str) -> str:
    # Declared here, not taken from the plugin: pytest keeps a session fixture's first value, and the
    # plugin's one would hand the first service's database to every service of a multi-service run.
    return await migrated_database(service_name)


@pytest.fixture(scope="session")
async def service_url(database_url, platform_settings):
    async with serve_app(create_app(Settings(database_url=database_url, **platform_settings))) as url:
        yield url


@pytest.fixture(scope="session")
async def events(kafka_bootstrap):
    """Everything on platform.leads.events during the session (one consumer-group join, not one per test);
    tests pick their own leads' events by id."""
    async with collect_events(kafka_bootstrap, [TOPIC]) as collector:
        yield collector


@pytest.fixture(scope="session")
async def db(database_url):
    """Direct access to the service's database, to set up what the API cannot (e.g. past creation times)."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


class LeadsApi:
    """The owner's calls that tests repeat, each asserting success."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"Lead {uuid.uuid4().hex[:8]}")
        resp = await self.client.post(LEADS, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def get(self, lead_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"{LEADS}/{lead_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def update(self, lead_id: str, **body: Any) -> dict[str, Any]:
        resp = await self.client.put(f"{LEADS}/{lead_id}", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def move(self, lead_id: str, stage: str, **extra: Any) -> dict[str, Any]:
        resp = await self.client.post(f"{LEADS}/{lead_id}/stage", json={"stage": stage, **extra})
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def convert(self, lead_id: str, **body: Any) -> dict[str, Any]:
        resp = await self.client.post(f"{LEADS}/{lead_id}/convert", json=body or None)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def list(self, path: str = LEADS, **params: Any) -> dict[str, Any]:
        resp = await self.client.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def api(owner) -> LeadsApi:
    return LeadsApi(owner)
