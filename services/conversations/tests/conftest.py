from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import text

from common.testing.fake_evolution import fake_evolution
from common.testing.fake_n8n import FakeN8n
from common.testing.fake_whatsapp import fake_graph, sign
from common.testing.fixtures import database_url_fixture, db_fixture, events_fixture, server_fixture
from common.testing.servers import free_port, serve_app
from conversations.app import create_app
from conversations.config import Settings

CHANNELS = "/api/platform/operations/channels"
AGENTS = "/api/platform/operations/agents"
CONVERSATIONS = "/api/platform/operations/conversations"
TOPIC = "platform.conversations.events"


database_url = database_url_fixture("conversations")
db = db_fixture()
events = events_fixture(TOPIC)


evolution = server_fixture(fake_evolution, "evolution")
graph = server_fixture(fake_graph, "graph")


class AnsweringN8n(FakeN8n):
    """The fake n8n, plus a flow whose webhook answers with its last node (`responseMode: lastNode`):
    `answers[path]` is the reply, after `delay` seconds (a slow flow)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: dict[str, str] = {}
        self.delay = 0.0
        self.answered: list[str] = []  # paths, once their answer was sent (after the delay)

    def add_flow(self, path: str, answer: str) -> str:
        self.add_workflow({"name": f"agent {path}", "nodes": [{
            "id": str(uuid.uuid4()), "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
            "webhookId": str(uuid.uuid4()), "position": [0, 0],
            "parameters": {"httpMethod": "POST", "path": path, "responseMode": "lastNode"}}],
            "connections": {}}, active=True)
        self.answers[path] = answer
        return f"{self.url}/webhook/{path}"

    async def _webhook(self, request: web.Request) -> web.Response:
        response = await super()._webhook(request)
        path = request.match_info["tail"].strip("/")
        if response.status == 200 and path in self.answers:
            await asyncio.sleep(self.delay)
            self.answered.append(path)
            return web.json_response({"reply": self.answers[path]})
        return response


@pytest.fixture(scope="session")
async def n8n():
    fake = AnsweringN8n()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
def worker_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def worker_url(worker_port) -> str:
    """The worker process (CONVERSATIONS_WORKERS=process, the default) of the service under test."""
    return f"http://127.0.0.1:{worker_port}"


@pytest.fixture(scope="session")
async def service_url(database_url, platform_settings, graph, worker_port):
    port = free_port()
    settings = Settings(database_url=database_url, **platform_settings, whatsapp_graph_api_base=graph.base_url,
                        platform_public_url=f"http://127.0.0.1:{port}", conversation_idle_sweep_seconds=0.3,
                        conversations_worker_poll_seconds=0.5, outbound_retry_max_seconds=1.0,
                        whatsapp_timeout_seconds=3.0, conversations_metrics_refresh_seconds=0.3,
                        conversations_worker_port=worker_port)
    async with serve_app(create_app(settings), port=port) as url:
        yield url


async def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(interval)


class Api:
    """The owner's calls tests repeat, each asserting success."""

    def __init__(self, client: httpx.AsyncClient, evolution: Any, graph: Any, db: Any) -> None:
        self.client, self.evolution, self.graph, self.db = client, evolution, graph, db

    async def evolution_channel(self, **extra: Any) -> dict[str, Any]:
        body = {"name": "Ventas", "type": "EVOLUTION", "apiUrl": self.evolution.url, "apiKey": self.evolution.api_key,
                "instanceName": f"inst-{uuid.uuid4().hex[:10]}"} | extra
        resp = await self.client.post(CHANNELS, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def cloud_channel(self, **extra: Any) -> dict[str, Any]:
        number = str(uuid.uuid4().int)[:15]
        token = "EAAG" + uuid.uuid4().hex
        self.graph.add_number(number, token=token)
        body = {"name": "Soporte", "type": "CLOUD_API", "phoneNumberId": number, "accessToken": token,
                "appSecret": "appsecret-" + uuid.uuid4().hex} | extra
        resp = await self.client.post(CHANNELS, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json() | {"_appSecret": body["appSecret"], "_token": token}

    async def agent(self, channel_id: str, **body: Any) -> dict[str, Any]:
        resp = await self.client.post(AGENTS, json={"name": "Bot", "channelId": channel_id} | body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def post_cloud(self, channel: dict[str, Any], body: dict[str, Any] | bytes,
                         secret: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(f"/api/webhooks/whatsapp/{channel['id']}", content=raw, headers={
            "content-type": "application/json", "X-Hub-Signature-256": sign(secret or channel["_appSecret"], raw)})

    async def conversations(self, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get(CONVERSATIONS, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    async def messages(self, conversation_id: str, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get(f"{CONVERSATIONS}/{conversation_id}/messages",
                                     params={"order": "oldest", "limit": 100} | params)
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    async def conversation_of(self, channel_id: str, contact: str) -> dict[str, Any] | None:
        found = [c for c in await self.conversations(channelId=channel_id, q=contact) if c["contact"] == contact]
        return found[0] if found else None

    wait_until = staticmethod(wait_until)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.db.begin() as conn:
            await conn.execute(text(sql), params)


@pytest.fixture
def api(owner, evolution, graph, db) -> Api:
    return Api(owner, evolution, graph, db)
