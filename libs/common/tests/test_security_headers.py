"""Every answer of a service is safe in a browser: never sniffed, never framed, and what the API
answers (tokens, secrets) is never stored by a cache."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Response

from common.app import create_service_app
from common.auth import PlatformOwner
from common.config import ServiceSettings
from common.errors import Conflict


def make_app():
    router = APIRouter(prefix="/api/x")

    @router.post("/login")
    async def login() -> dict:
        return {"accessToken": "t"}

    @router.get("/guarded")
    async def guarded(_: PlatformOwner) -> dict:
        return {}

    @router.get("/public-list")
    async def cached(response: Response) -> dict:
        response.headers["Cache-Control"] = "private, max-age=60"  # an endpoint's own choice is kept
        return {}

    @router.post("/conflict")
    async def conflict() -> dict:
        raise Conflict("taken")

    return create_service_app(ServiceSettings(max_body_bytes=100), title="t", description="d", routers=[router])


async def test_headers_on_success_problem_404_413_and_operational_routes():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        answers = {
            "ok": await c.post("/api/x/login"),
            "unauthenticated": await c.get("/api/x/guarded"),
            "not found": await c.get("/api/x/nothing-here"),
            "conflict": await c.post("/api/x/conflict"),
            "too large": await c.post("/api/x/login", content=b"x" * 1000),
            "healthz": await c.get("/healthz"),
            "openapi": await c.get("/openapi.json"),
            "own cache rule": await c.get("/api/x/public-list"),
        }
    assert [answers[k].status_code for k in ("ok", "unauthenticated", "not found", "conflict", "too large")] == [
        200, 401, 404, 409, 413]
    for kind, r in answers.items():
        assert r.headers["x-content-type-options"] == "nosniff", kind
        assert r.headers["x-frame-options"] == "DENY", kind
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], kind
    for kind in ("ok", "unauthenticated", "not found", "conflict", "too large"):
        assert answers[kind].headers["cache-control"] == "no-store", kind
    assert answers["own cache rule"].headers["cache-control"] == "private, max-age=60"
    assert "cache-control" not in answers["healthz"].headers
