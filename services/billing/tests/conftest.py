from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from billing.app import create_app
from billing.config import Settings
from common.events import Envelope, build_event
from common.messaging.kafka import ensure_topics
from common.testing.fake_stripe import FakeStripe, fake_stripe
from common.testing.fixtures import database_url_fixture, db_fixture, events_fixture
from common.testing.plugin import bearer
from common.testing.servers import serve_app

STRIPE = "/api/platform/integrations/stripe"
BILLING = "/api/platform/billing"
WEBHOOK = "/api/webhooks/stripe"
TENANTS_TOPIC = "platform.tenants.events"


database_url = database_url_fixture("billing")
db = db_fixture()
events = events_fixture("platform.billing.events")


@pytest.fixture(scope="session")
async def stripe() -> AsyncIterator[FakeStripe]:
    async with fake_stripe() as fake:
        yield fake


@pytest.fixture(autouse=True)
def stripe_accepts_every_request(stripe: FakeStripe):
    """The fake records any request Stripe would reject: a test that made one fails."""
    before = len(stripe.violations)
    yield
    assert stripe.violations[before:] == [], stripe.violations[before:]
    stripe.down, stripe.delay = False, 0.0


def billing_settings(database_url: str, platform_settings: dict[str, Any], stripe: FakeStripe,
                     **extra: Any) -> Settings:
    return Settings(database_url=database_url, stripe_api_base=stripe.url, stripe_timeout_seconds=3,
                    billing_retry_initial_seconds=0.2, billing_retry_max_seconds=1.0,
                    billing_poll_interval_seconds=0.2, billing_suspend_grace_hours=0.0005,  # 1.8 s
                    billing_grace_check_seconds=0.2, platform_public_url="https://platform.example", **platform_settings
                    | extra)


@pytest.fixture(scope="session")
async def service_url(database_url, platform_settings, stripe) -> AsyncIterator[str]:
    async with serve_app(create_app(billing_settings(database_url, platform_settings, stripe))) as url:
        stripe.deliver_to(url + WEBHOOK)
        yield url


# The plans tenants' migration publishes (plan.created, once per plan): billing's copy comes from them.
SEEDED_PLANS = [("FREE", "Free", 0), ("PRO", "Pro", 4900), ("ENTERPRISE", "Enterprise", 29900)]


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_bootstrap, [TENANTS_TOPIC])
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


class Tenants:
    """Publishes tenant and plan events as the tenants service does (its topic, keyed by tenant or plan id)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, envelope: Envelope, key: uuid.UUID) -> Envelope:
        await self.producer.send_and_wait(TENANTS_TOPIC, orjson.dumps(envelope.to_kafka()), key=str(key).encode(),
                                          headers=[("event", envelope.event.encode())])
        return envelope

    async def publish(self, name: str, tenant_id: uuid.UUID, **data: Any) -> uuid.UUID:
        body = {"tenantId": tenant_id, "name": data.pop("name", f"T {tenant_id.hex[:6]}"),
                "plan": data.pop("plan", "Pro"), "status": data.pop("status", "ACTIVE"), **data}
        envelope = build_event(name, body, tenant_id=tenant_id, source="tenants")
        return (await self.send(envelope, tenant_id)).id

    async def created(self, tenant_id: uuid.UUID, plan: str = "Pro") -> uuid.UUID:
        return await self.publish("tenant.created", tenant_id, plan=plan)

    async def plan_changed(self, tenant_id: uuid.UUID, plan: str, previous: str) -> uuid.UUID:
        return await self.publish("tenant.updated", tenant_id, plan=plan, changes=["plan"],
                                  previous={"plan": previous})

    async def deleted(self, tenant_id: uuid.UUID) -> uuid.UUID:
        return await self.publish("tenant.deleted", tenant_id, status="DELETED")

    async def plan(self, code: str, name: str, amount: int, *, plan_id: uuid.UUID | None = None,
                   currency: str = "USD", interval: str = "month", active: bool = True,
                   changes: list[str] | None = None, previous: dict[str, Any] | None = None,
                   at: datetime | None = None) -> Envelope:
        """`plan.created` (or `plan.updated` with `changes`); `at`: the event's time (default now)."""
        data: dict[str, Any] = {"planId": plan_id or uuid.uuid5(uuid.NAMESPACE_URL, code), "code": code,
                                "name": name, "amount": amount, "currency": currency, "interval": interval,
                                "active": active, "limits": {}}
        name_ = "plan.created" if changes is None else "plan.updated"
        if changes is not None:
            data |= {"changes": changes, "previous": previous or {}}
        envelope = build_event(name_, data, source="tenants")
        if at is not None:
            envelope = envelope.model_copy(update={"timestamp": at})
        return await self.send(envelope, data["planId"])


async def billing_plans(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {p["code"]: p for p in (await client.get(f"{BILLING}/plans")).json()}


async def plan_copy(client: httpx.AsyncClient, code: str, predicate: Any = None, timeout: float = 30) -> dict:
    """Billing's copy of plan `code` once it exists (and satisfies `predicate`)."""
    async with asyncio.timeout(timeout):
        while True:
            plan = (await billing_plans(client)).get(code)
            if plan is not None and (predicate is None or predicate(plan)):
                return plan
            await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def configured(service_url, owner_token, stripe, producer) -> None:
    """Stripe configured with the fake's keys, the seeded plans received from tenants' events and synced
    (once per session)."""
    tenants = Tenants(producer)
    for code, name, amount in SEEDED_PLANS:
        await tenants.plan(code, name, amount)
    async with httpx.AsyncClient(base_url=service_url, headers=bearer(owner_token), timeout=15) as client:
        resp = await client.put(STRIPE, json={"publishableKey": stripe.publishable_key,
                                              "secretKey": stripe.secret_key, "webhookSecret": stripe.webhook_secret})
        assert resp.status_code == 200, resp.text
        for code, _, _ in SEEDED_PLANS:
            await plan_copy(client, code)
        resp = await client.post(f"{BILLING}/plans/sync")
        assert resp.status_code == 200, resp.text


@pytest.fixture(name="plan_copy")
def plan_copy_fixture() -> Any:
    """`await plan_copy(owner, code, predicate?)`: billing's copy of a plan once it is there."""
    return plan_copy


@pytest.fixture
def tenants(producer) -> Tenants:
    return Tenants(producer)


@pytest.fixture
def count(db):
    """`await count("SELECT count(*) FROM ...")` on billing's database."""
    async def run(sql: str, **params: Any) -> int:
        async with db.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar_one()

    return run
