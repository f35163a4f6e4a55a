"""The app as deployed: who may call what, health, and the documented routes."""

from __future__ import annotations

from common.testing.checks import assert_routes_declare_auth


def test_every_route_declares_its_callers(app):
    assert_routes_declare_auth(app)
    assert {"/api/auth/login", "/api/auth/refresh", "/api/auth/logout",
            "/api/auth/.well-known/jwks.json", "/api/auth/api-keys/introspect"} <= app.state.public_routes
    assert "/api/auth/me" not in app.state.public_routes
    assert not any(p.startswith("/api/auth/users") for p in app.state.public_routes)
    # Of the API key routes only introspection is public; managing keys needs the owner.
    assert {p for p in app.state.public_routes if p.startswith("/api/auth/api-keys")} == {
        "/api/auth/api-keys/introspect"}


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok"}  # auth uses no broker


async def test_openapi_lists_the_contract(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/auth/me", "/api/auth/users",
            "/api/auth/users/{user_id}", "/api/auth/.well-known/jwks.json", "/api/auth/api-keys",
            "/api/auth/api-keys/introspect", "/api/auth/api-keys/{key_id}",
            "/api/auth/api-keys/{key_id}/rotate"} <= paths.keys()
