from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from common.events import Envelope
from common.testing.fixtures import database_url_fixture, events_fixture, service_url_fixture
from support.app import create_app
from support.config import Settings

TOPIC = "platform.support.events"
TICKETS = "/api/platform/support/tickets"


database_url = database_url_fixture("support")
service_url = service_url_fixture(create_app, Settings)
events = events_fixture(TOPIC)


@dataclass
class Tenant:
    """A tenant with a TENANT_ADMIN and a TENANT_USER, each a client of the service (the plugin's
    `tenant_user`); `admin` / `user` are the auth users (with their accessToken)."""

    id: uuid.UUID
    admin_client: httpx.AsyncClient
    user_client: httpx.AsyncClient

    @property
    def admin(self) -> dict[str, Any]:
        return self.admin_client.user  # type: ignore[attr-defined]

    @property
    def user(self) -> dict[str, Any]:
        return self.user_client.user  # type: ignore[attr-defined]


async def _tenant(tenant_user: Callable[..., Awaitable[httpx.AsyncClient]]) -> Tenant:
    tenant_id = uuid.uuid4()
    return Tenant(tenant_id, await tenant_user("TENANT_ADMIN", tenant_id), await tenant_user("TENANT_USER", tenant_id))


@pytest.fixture
async def tenant_a(tenant_user) -> Tenant:
    return await _tenant(tenant_user)


@pytest.fixture
async def tenant_b(tenant_user) -> Tenant:
    return await _tenant(tenant_user)


@pytest.fixture
def admin_a(tenant_a: Tenant) -> httpx.AsyncClient:
    return tenant_a.admin_client


@pytest.fixture
def user_a(tenant_a: Tenant) -> httpx.AsyncClient:
    return tenant_a.user_client


@pytest.fixture
def admin_b(tenant_b: Tenant) -> httpx.AsyncClient:
    return tenant_b.admin_client


@pytest.fixture
def new_ticket() -> Callable[..., Awaitable[dict[str, Any]]]:
    """new_ticket(client, **body) -> the created ticket (asserts 201)."""

    async def make(c: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
        body.setdefault("subject", f"Ticket {uuid.uuid4().hex[:8]}")
        body.setdefault("description", "Something does not work")
        body = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}
        resp = await c.post(TICKETS, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return make


@pytest.fixture
def ticket_events(events) -> Callable[..., Awaitable[list[Envelope]]]:
    """ticket_events(ticket_id, until=event name) -> that ticket's events in Kafka order, once `until` (the
    last change made) has arrived. Per-key ordering makes it a fence: anything published before it is in."""

    async def read(ticket_id: str, until: str, count: int = 1) -> list[Envelope]:
        def mine(e: Envelope) -> bool:
            return e.data.get("ticketId") == ticket_id

        await events.wait_for(lambda _: len(events.matching(lambda e: mine(e) and e.event == until)) >= count)
        return events.matching(mine)

    return read
