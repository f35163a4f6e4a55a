"""Every endpoint is the platform owner's: tenant users get 403, anonymous callers 401."""

from __future__ import annotations

from fastapi.routing import APIRoute

from common.testing.checks import assert_problem, assert_routes_declare_auth
from common.testing.plugin import bearer
from leads.api import routers
from leads.app import create_app


def declared_routes() -> list[tuple[str, str]]:
    return [(m, r.path) for router in routers for r in router.routes if isinstance(r, APIRoute) for m in r.methods]


def test_every_route_declares_its_caller():
    assert_routes_declare_auth(create_app())
    assert len(declared_routes()) == 14  # all of them are swept by the test below


async def test_tenant_users_are_forbidden_everywhere_and_change_nothing(api, anonymous, tenant_user):
    lead = await api.create()
    admin = await tenant_user("TENANT_ADMIN")
    user = await tenant_user("TENANT_USER")
    ids = {"{lead_id}": lead["id"], "{code}": "NEW"}
    bodies = {"/stage": {"stage": "CONTACTED"}, "/convert": {}, "/api/platform/leads/stages": {"code": "Z", "name": "z"}}
    forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2ln"
    for method, template in declared_routes():
        path = template
        for k, v in ids.items():
            path = path.replace(k, v)
        body = next((b for suffix, b in bodies.items() if path.endswith(suffix)), {"name": "Hacked"})
        for tenant_client in (admin, user):
            assert_problem(await tenant_client.request(method, path, json=body), 403)
        assert_problem(await anonymous.request(method, path, json=body), 401)
        assert_problem(await anonymous.request(method, path, json=body, headers=bearer(forged)), 401)
    after = await api.get(lead["id"])
    assert after["name"] == lead["name"] and after["stage"] == "NEW" and after["convertedAt"] is None
    assert (await api.client.get("/api/platform/leads/stages/NEW")).json()["name"] == "New"
