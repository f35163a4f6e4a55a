"""Assertions shared by every service's tests."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from common.auth.dependencies import get_principal


def _depends_on(dependant: Dependant, target: object) -> bool:
    return any(d.call is target or _depends_on(d, target) for d in dependant.dependencies)


def assert_routes_declare_auth(app: FastAPI, public: set[tuple[str, str]] = frozenset()) -> None:
    """Default deny: every route needs a caller, unless listed as (METHOD, path) in `public`."""
    missing = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in app.state.public_routes:
            continue
        for method in route.methods:
            if (method, route.path) not in public and not _depends_on(route.dependant, get_principal):
                missing.append(f"{method} {route.path}")
    assert not missing, f"routes without an auth dependency: {missing}"
