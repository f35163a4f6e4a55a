from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from common.testing.fixtures import database_url_fixture, db_fixture, events_fixture, service_url_fixture
from leads.app import create_app
from leads.config import Settings

LEADS = "/api/platform/leads"
TOPIC = "platform.leads.events"


database_url = database_url_fixture("leads")
db = db_fixture()  # e.g. past creation times, which the API cannot set
service_url = service_url_fixture(create_app, Settings)
events = events_fixture(TOPIC)


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
