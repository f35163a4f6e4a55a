"""Assertions shared by every service's tests."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from common.auth.dependencies import get_principal, resolves_principal


def _depends_on(dependant: Dependant, target: object) -> bool:
    """Whether `dependant` depends on `target`, directly or not; for `get_principal`, also on a `require_roles`
    check (the same bearer dependency, with roles)."""
    return any(d.call is target or (target is get_principal and resolves_principal(d.call)) or _depends_on(d, target)
               for d in dependant.dependencies)


def api_routes(app: FastAPI) -> list[tuple[str, str, Dependant]]:
    """(method, path, effective dependant) of every API route. FastAPI 0.16x keeps included routers as
    `_IncludedRouter` entries of `app.routes`, so walk them through `iter_route_contexts`."""
    found = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            found.extend((method, ctx.path, ctx.dependant) for method in sorted(ctx.methods))
    return found


def assert_routes_declare_auth(app: FastAPI, public: frozenset[tuple[str, str]] = frozenset()) -> int:
    """Default deny: every route needs a caller, unless its path is public in the app or listed as
    (METHOD, path) in `public`. Returns how many routes it checked (so a test can see it checked some)."""
    checked, missing = 0, []
    for method, path, dependant in api_routes(app):
        if path in app.state.public_routes or (method, path) in public:
            continue
        checked += 1
        if not _depends_on(dependant, get_principal):
            missing.append(f"{method} {path}")
    assert checked, "no routes found to check"
    assert not missing, f"routes without an auth dependency: {missing}"
    return checked


def assert_problem(response: Any, status: int, *, detail: str | None = None) -> dict[str, Any]:
    """`response` is an RFC 9457 problem of `status` (with `detail` in its detail, when given); returns it."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == status and problem["title"], problem
    if detail is not None:
        assert detail.lower() in (problem.get("detail") or "").lower(), problem
    return problem
