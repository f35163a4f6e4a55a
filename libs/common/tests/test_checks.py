"""The default-deny check must catch a route that forgot its auth dependency."""

import pytest
from fastapi import APIRouter

from common.app import create_service_app
from common.auth import PlatformOwner
from common.config import ServiceSettings
from common.testing.checks import assert_routes_declare_auth


def make_app(with_leak: bool):
    router = APIRouter(prefix="/api/x")

    @router.get("/guarded")
    async def guarded(_: PlatformOwner) -> dict:
        return {}

    if with_leak:
        @router.get("/leaky")
        async def leaky() -> dict:
            return {}

    return create_service_app(ServiceSettings(), title="t", description="d", routers=[router])


def test_guarded_routes_pass_and_count():
    assert assert_routes_declare_auth(make_app(False)) == 1


def test_a_route_without_auth_is_caught():
    with pytest.raises(AssertionError, match="GET /api/x/leaky"):
        assert_routes_declare_auth(make_app(True))
