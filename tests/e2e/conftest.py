"""The whole platform as processes behind the Caddy gateway, the way `make run` starts it."""

from __future__ import annotations

import httpx
import pytest

from common.testing.fake_evolution import fake_evolution
from common.testing.fake_n8n import fake_n8n
from common.testing.fake_stripe import fake_stripe
from common.testing.fake_whatsapp import fake_graph
from common.testing.fixtures import server_fixture
from common.testing.receiver import webhook_receiver
from common.testing.servers import free_port

OWNER_EMAIL, OWNER_PASSWORD = "owner@e2e.local", "E2e-Owner-Passw0rd"


# The outside systems the stack talks to: STRIPE_API_BASE, WHATSAPP_GRAPH_API_BASE; Evolution channels and
# n8n flows point at theirs through the API.
receiver = server_fixture(webhook_receiver, "receiver")
stripe = server_fixture(fake_stripe, "stripe")
n8n = server_fixture(fake_n8n, "n8n")
evolution = server_fixture(fake_evolution, "evolution")
graph = server_fixture(fake_graph, "graph")


@pytest.fixture(scope="session")
async def stack(tmp_path_factory, postgres, kafka_broker, receiver, stripe, graph):
    from devstack.services import SERVICES
    from devstack.supervisor import Stack

    gateway_port = free_port()
    stack = Stack(tmp_path_factory.mktemp("stack"), extra_env={
        "PLATFORM_OWNER_EMAIL": OWNER_EMAIL,
        "PLATFORM_OWNER_PASSWORD": OWNER_PASSWORD,
        "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32",
        "WEBHOOK_CA_BUNDLE": str(receiver.ca_bundle_path),
        "WEBHOOK_RETRY_SCHEDULE": "0.3,0.5,1,1,2",
        "OUTBOX_POLL_INTERVAL_SECONDS": "0.5",
        "STRIPE_API_BASE": stripe.url,
        # Suspension as soon as Stripe gives up, and Stripe work retried within seconds.
        "BILLING_SUSPEND_GRACE_HOURS": "0",
        "BILLING_RETRY_INITIAL_SECONDS": "0.5",
        "BILLING_RETRY_MAX_SECONDS": "2",
        # Conversations: the fake Graph API, and the gateway as the URL providers call back on.
        "WHATSAPP_GRAPH_API_BASE": graph.base_url,
        "CONVERSATIONS_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",
        "CONVERSATION_IDLE_SWEEP_SECONDS": "0.5",
    })
    stack.postgres, stack.broker = postgres, kafka_broker
    try:
        await stack.start_services([s.name for s in SERVICES], ports={s.name: free_port() for s in SERVICES})
        await stack.start_gateway(port=gateway_port)
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(scope="session")
async def gateway(stack):
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
async def owner_headers(gateway):
    resp = await gateway.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['accessToken']}"}
