"""Billing's events, through Kafka as billing publishes them, suspend a tenant that does not pay (reason
"payment"), reactivate it when it pays (never a suspension made by hand), and follow a plan changed in Stripe,
each once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from common.events import Envelope, build_event
from common.messaging.kafka import ensure_topics
from common.testing.events import collect_events

TENANTS = "/api/platform/tenants"
BILLING_TOPIC = "platform.billing.events"


@pytest.fixture(scope="session")
async def billing_producer(kafka_bootstrap):
    await ensure_topics(kafka_bootstrap, [BILLING_TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="session")
async def tenant_events(kafka_bootstrap):
    async with collect_events(kafka_bootstrap, ["platform.tenants.events"]) as collector:
        yield collector


@pytest.fixture
def billing(billing_producer):
    async def send(name: str, tenant_id: str, envelope: Envelope | None = None, **data: Any) -> Envelope:
        envelope = envelope or build_event(name, {"tenantId": tenant_id, **data}, tenant_id=uuid.UUID(tenant_id),
                                           source="billing")
        await billing_producer.send_and_wait(BILLING_TOPIC, orjson.dumps(envelope.to_kafka()),
                                             key=tenant_id.encode())
        return envelope

    return send


def delinquent(_tenant_id: str) -> dict[str, Any]:
    return {"subscriptionId": "sub_1", "invoiceId": "in_1", "overdueSince": "2026-12-01T00:00:00Z",
            "graceHours": 0}


def paid() -> dict[str, Any]:
    return {"invoiceId": "in_1", "amountDue": 4900, "amountPaid": 4900, "status": "paid", "attemptCount": 4}


def from_portal(plan: str) -> dict[str, Any]:
    return {"subscriptionId": "sub_1", "plan": plan, "status": "active", "planChangedInStripe": True}


async def tenant(owner) -> dict[str, Any]:
    resp = await owner.post(TENANTS, json={"name": f"Billing {uuid.uuid4().hex[:8]}", "plan": "Pro"})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def becomes(owner, tenant_id: str, **expected: Any) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            got = (await owner.get(f"{TENANTS}/{tenant_id}")).json()
            if all(got.get(k) == v for k, v in expected.items()):
                return got
            await asyncio.sleep(0.05)


def of(events, tenant_id: str, name: str) -> list[Envelope]:
    return events.matching(lambda e: e.event == name and str(e.tenant_id) == tenant_id)


async def test_a_tenant_that_does_not_pay_is_suspended_then_reactivated_once(owner, billing, tenant_events):
    t = (await tenant(owner))["id"]
    first = await billing("billing.subscription.delinquent", t, **delinquent(t))
    await becomes(owner, t, status="SUSPENDED", statusReason="payment")
    await billing("billing.subscription.delinquent", t, envelope=first)  # redelivered
    await billing("billing.subscription.delinquent", t, **delinquent(t))  # a second delinquency meanwhile
    await billing("billing.payment_succeeded", t, **paid())
    await becomes(owner, t, status="ACTIVE")
    await tenant_events.wait_for(lambda e: e.event == "tenant.reactivated" and str(e.tenant_id) == t)
    suspended = of(tenant_events, t, "tenant.suspended")
    assert len(suspended) == 1 and suspended[0].data["reason"] == "payment"
    assert len(of(tenant_events, t, "tenant.reactivated")) == 1


async def test_a_suspension_made_by_hand_is_never_lifted_by_a_payment(owner, billing, tenant_events):
    t = (await tenant(owner))["id"]
    resp = await owner.post(f"{TENANTS}/{t}/suspend", json={"reason": "fraud review"})
    assert resp.status_code == 200, resp.text
    await billing("billing.subscription.delinquent", t, **delinquent(t))
    await billing("billing.payment_succeeded", t, **paid())
    # A later event of the same tenant (same partition, so applied after them) as the marker.
    await billing("billing.subscription.updated", t, **from_portal("Enterprise"))
    got = await becomes(owner, t, plan="Enterprise")
    assert (got["status"], got["statusReason"]) == ("SUSPENDED", "fraud review")
    assert of(tenant_events, t, "tenant.reactivated") == []


async def test_a_plan_changed_in_stripe_is_followed_once_and_our_own_changes_are_not(owner, billing, tenant_events):
    t = (await tenant(owner))["id"]
    change = await billing("billing.subscription.updated", t, **from_portal("ENTERPRISE"))
    await becomes(owner, t, plan="Enterprise")
    await billing("billing.subscription.updated", t, envelope=change)  # redelivered
    await billing("billing.subscription.updated", t, subscriptionId="sub_1", plan="FREE", status="active",
                  planChangedInStripe=False)  # the echo of a change the platform made: not followed
    await billing("billing.subscription.updated", t, **from_portal("NoSuchPlan"))  # unknown: skipped
    await billing("billing.subscription.updated", t, **from_portal("Pro"))  # marker
    await becomes(owner, t, plan="Pro")
    plans = [e.data["plan"] for e in of(tenant_events, t, "tenant.updated")]
    async with asyncio.timeout(15):
        while len(plans) < 2:
            await asyncio.sleep(0.05)
            plans = [e.data["plan"] for e in of(tenant_events, t, "tenant.updated")]
    assert plans == ["Enterprise", "Pro"]


async def test_only_a_payment_that_settles_the_delinquency_reactivates(owner, billing, tenant_events):
    t = (await tenant(owner))["id"]
    await billing("billing.subscription.delinquent", t, **delinquent(t))
    await becomes(owner, t, status="SUSPENDED", statusReason="payment")
    # An older invoice paid late while the overdue one is still unpaid: billing says it settles nothing.
    await billing("billing.payment_succeeded", t, **paid() | {"invoiceId": "in_0", "settlesDelinquency": False})
    # A later event of the same tenant (same partition, so applied after it) as the marker.
    await billing("billing.subscription.updated", t, **from_portal("Enterprise"))
    got = await becomes(owner, t, plan="Enterprise")
    assert (got["status"], got["statusReason"]) == ("SUSPENDED", "payment")
    assert of(tenant_events, t, "tenant.reactivated") == []
    await billing("billing.payment_succeeded", t, **paid() | {"settlesDelinquency": True})  # the overdue one
    await becomes(owner, t, status="ACTIVE")
    await tenant_events.wait_for(lambda e: e.event == "tenant.reactivated" and str(e.tenant_id) == t)
    assert len(of(tenant_events, t, "tenant.reactivated")) == 1
