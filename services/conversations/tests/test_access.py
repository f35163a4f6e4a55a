"""Every API route is the platform owner's; only the provider webhooks are public (and authenticated by
signature or secret)."""

from __future__ import annotations

import uuid

from fastapi.routing import APIRoute

from common.testing.checks import assert_routes_declare_auth
from common.testing.plugin import bearer
from conversations.api import routers
from conversations.app import create_app


def declared_routes() -> list[tuple[str, str]]:
    return [(m, r.path) for router in routers for r in router.routes if isinstance(r, APIRoute) for m in r.methods
            if not r.path.startswith("/api/webhooks")]


def test_every_route_declares_its_caller():
    assert_routes_declare_auth(create_app())
    assert len(declared_routes()) == 21


async def test_tenant_users_are_forbidden_everywhere(api, anonymous, auth_server):
    channel = await api.cloud_channel()
    user = await auth_server.create_user("TENANT_ADMIN", tenant_id=uuid.uuid4())
    ids = {"{channel_id}": channel["id"], "{agent_id}": str(uuid.uuid4()), "{conversation_id}": str(uuid.uuid4())}
    for method, template in declared_routes():
        path = template
        for k, v in ids.items():
            path = path.replace(k, v)
        resp = await anonymous.request(method, path, json={"name": "x"}, headers=bearer(user["accessToken"]))
        assert resp.status_code == 403, (method, path, resp.text)
        assert (await anonymous.request(method, path, json={"name": "x"})).status_code == 401
    assert (await api.client.get(f"/api/platform/operations/channels/{channel['id']}")).json()["name"] == "Soporte"
