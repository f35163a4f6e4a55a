"""The dispatcher under test: real PostgreSQL, real Kafka (tansu), real auth, a real HTTPS receiver.

One dispatcher app runs for the whole session (a consumer-group join costs ~5 s against tansu), with
short retries ("0.2,0.2": three attempts) and the receiver's loopback address allowed.
Each test creates its own endpoints (unique receiver paths) and they are deleted afterwards, so tests
never see each other's deliveries. The N8N bridge's tests share one fake n8n (`n8n_server`): the `n8n`
fixture configures it in the platform and deletes the test's flows afterwards. The clients (`owner`,
`anonymous`) come from the common plugin (given `service_url`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from common.events import Envelope, build_event, topic_for_source
from common.testing.fake_n8n import FakeN8n, fake_n8n
from common.testing.fixtures import database_url_fixture
from common.testing.receiver import WebhookReceiver, webhook_receiver
from common.testing.servers import serve_app
from common.testing.webhooks import wait_ready
from webhook_dispatcher.app import create_app
from webhook_dispatcher.config import Settings

API = "/api/platform/webhooks"
logging.getLogger("httpx").setLevel(logging.WARNING)

TEST_SETTINGS: dict[str, Any] = {
    "webhook_allowed_private_cidrs": "127.0.0.1/32",
    "webhook_retry_schedule": "0.2,0.2",
    "webhook_timeout_seconds": 3.0,
    "webhook_lease_seconds": 10.0,
    "webhook_poll_interval_seconds": 0.2,
    "webhook_shutdown_grace_seconds": 5.0,
    "webhook_maintenance_interval_seconds": 0.5,
    "webhook_purge_interval_seconds": 0.5,  # the retention job runs for real, in batches of 2 rows
    "webhook_purge_batch": 2,
    "n8n_timeout_seconds": 1.0,
}
# n8n's public API v1 (shared/specs/n8n/public-api-v1.yml, n8n 1.119.0), which the fake validates against.
N8N_SPEC = Path(__file__).parent / "n8n" / "n8n-public-api-v1.yml"
N8N_SETTINGS = "/api/platform/integrations/n8n"
FLOWS = "/api/platform/n8n/flows"


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as r:
        yield r


database_url = database_url_fixture("webhook-dispatcher")


@pytest.fixture(scope="session")
def make_settings(database_url: str, platform_settings: dict[str, Any],
                  receiver: WebhookReceiver) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return Settings(**(platform_settings | {"database_url": database_url,
                                                "webhook_ca_bundle": receiver.ca_bundle_path}
                           | TEST_SETTINGS | overrides))

    return make


@dataclass
class Dispatcher:
    url: str
    app: FastAPI
    settings: Settings


@pytest.fixture(scope="session")
async def dispatcher(make_settings: Callable[..., Settings]) -> AsyncIterator[Dispatcher]:
    settings = make_settings()
    app = create_app(settings)
    async with serve_app(app) as url:
        await wait_ready(url)
        yield Dispatcher(url, app, settings)


@pytest.fixture(scope="session")
def service_url(dispatcher: Dispatcher) -> str:
    return dispatcher.url  # the plugin's `owner` / `anonymous` clients call it


@pytest.fixture
async def endpoints(owner: httpx.AsyncClient) -> AsyncIterator[Callable[..., Awaitable[dict[str, Any]]]]:
    """Factory: create an endpoint through the API (201 expected); deleted when the test ends."""
    created: list[str] = []

    async def create(url: str, events: list[str] | None = None, **body: Any) -> dict[str, Any]:
        resp = await owner.post(API, json={"url": url, "events": events or ["*"], **body})
        assert resp.status_code == 201, resp.text
        created.append(resp.json()["id"])
        return resp.json()

    yield create
    for endpoint_id in created:
        await owner.delete(f"{API}/{endpoint_id}")


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False, linger_ms=1)
    await p.start()
    yield p
    await p.stop()


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def publish(producer: AIOKafkaProducer) -> Callable[..., Awaitable[Envelope]]:
    """Put a real envelope on its service's topic, as a relay would (key = aggregate id, event header)."""

    async def send(name: str | None = None, data: dict[str, Any] | None = None, *, envelope: Envelope | None = None,
                   key: str | None = None, tenant_id: uuid.UUID | None = None,
                   traceparent: str | None = TRACEPARENT) -> Envelope:
        if envelope is None:
            assert name is not None
            envelope = build_event(name, data or {}, tenant_id=tenant_id)
        headers = [("event", envelope.event.encode())]
        if traceparent:
            headers.append(("traceparent", traceparent.encode()))
        await producer.send_and_wait(topic_for_source(envelope.source), orjson.dumps(envelope.to_kafka()),
                                     key=(key or str(envelope.tenant_id or envelope.id)).encode(), headers=headers)
        return envelope

    return send


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Any]:
    """Direct access to the dispatcher's database, for setting up states an API cannot reach (time)."""
    from common.db import Database

    db = Database(database_url, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def n8n_server() -> AsyncIterator[FakeN8n]:
    async with fake_n8n(spec_path=N8N_SPEC) as fake:
        yield fake


@pytest.fixture
async def n8n(owner: httpx.AsyncClient, n8n_server: FakeN8n) -> AsyncIterator[FakeN8n]:
    """The fake n8n, configured in the platform and behaving normally. Afterwards the test's flows are
    deleted, and every request the platform sent to n8n's API must have passed the spec validation."""
    n8n_server.reset()
    n8n_server.calls.clear()
    n8n_server.webhook_calls.clear()
    resp = await owner.put(N8N_SETTINGS, json={"url": n8n_server.url, "apiKey": n8n_server.api_key})
    assert resp.status_code == 200, resp.text
    checked = len(n8n_server.invalid)
    yield n8n_server
    n8n_server.reset()
    invalid = n8n_server.invalid[checked:]
    listed = (await owner.get(FLOWS, params={"limit": 100})).json()["items"]
    for flow in listed:
        await owner.delete(f"{FLOWS}/{flow['id']}")
    assert not invalid, f"requests refused by n8n's OpenAPI: {invalid}"


@pytest.fixture
async def flows(owner: httpx.AsyncClient, n8n: FakeN8n) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Factory: create a flow through the API (201 expected)."""

    async def create(**body: Any) -> dict[str, Any]:
        if "template" not in body:
            body.setdefault("name", f"flow {uuid.uuid4().hex[:6]}")
        resp = await owner.post(FLOWS, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return create
