"""The gateway (deploy/gateway/Caddyfile under the wheel's Caddy) in front of throwaway upstreams,
one per registered service."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess

import httpx
import pytest
from aiohttp import web

from devstack._proc import free_port
from devstack.docs import build_docs
from devstack.gateway import caddy_executable, caddyfile_path, start_gateway
from devstack.services import SERVICES


def _spec_for(name: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{name} API", "version": "1.0.0"},
        "paths": {"/ping": {"get": {"responses": {"200": {"description": "pong"}}}}},
    }


# What reached an upstream: (service, path with query), in arrival order.
SEEN: list[tuple[str, str]] = []


def _make_app(name: str) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        SEEN.append((name, request.path_qs))
        if request.path == "/openapi.json":
            return web.json_response(_spec_for(name))
        body = await request.read()
        return web.json_response(
            {
                "service": name,
                "path": request.path_qs,
                "host": request.host,
                "xff": request.headers.get("X-Forwarded-For"),
                "bytes": len(body),
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture(scope="module")
async def upstreams():
    runners, ups = [], {}
    for spec in SERVICES:
        runner = web.AppRunner(_make_app(spec.name), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        ups[spec.name] = f"127.0.0.1:{port}"
    yield ups
    for r in runners:
        await r.cleanup()


@pytest.fixture(scope="module")
async def gateway(upstreams, data_dir):
    docs_root = build_docs(data_dir / "docs")
    ups = dict(upstreams)
    ups["support"] = f"127.0.0.1:{free_port()}"  # nobody listens: 502
    gw = await start_gateway(
        port=free_port(), upstreams=ups, docs_root=docs_root, log_path=data_dir / "logs" / "gateway.log",
        env={**os.environ, "GATEWAY_UPSTREAM_WAIT": "1s"},  # the dead upstream's 502 comes after 1 s
    )
    yield gw
    await gw.stop()
    assert gw.process.returncode is not None


@pytest.fixture
async def client(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10) as c:
        yield c


def _example_paths(route: str) -> list[str]:
    base = route.rstrip("*")
    return [base + "x/1?q=2"] if base.endswith("/") else [base, base + "/abc?q=2"]


async def test_every_registered_prefix_reaches_its_service(client):
    for spec in SERVICES:
        if spec.name == "support":
            continue
        for route in spec.routes:
            for path in _example_paths(route):
                r = await client.get(path, headers={"X-Forwarded-For": "6.6.6.6"})
                assert r.status_code == 200, (path, r.text)
                data = r.json()
                assert data["service"] == spec.name, path
                assert data["path"] == path  # path and query preserved
                assert data["xff"] == "127.0.0.1"  # set by the gateway, client's value not trusted
                assert data["host"].startswith("127.0.0.1:")


async def test_unknown_paths_are_problem_404(client):
    for path in (
        "/api/nope",
        "/api/platform/unknown",
        "/api/authx",
        "/",
        "/api/docs/missing.js",
        "/api/docs/openapi/nope.json",
        "/api/docs/../../etc/passwd",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/problem+json"), path
        body = r.json()
        assert body["status"] == 404 and body["title"] == "Not Found"


async def test_dead_upstream_is_problem_502(client):
    r = await client.get("/api/platform/support/tickets")
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 502


async def test_a_request_waits_for_a_restarting_service_instead_of_502(data_dir):
    """A service the supervisor is restarting refuses connections for a moment: the gateway dials it again
    until it is back (up to GATEWAY_UPSTREAM_WAIT), and the create sent meanwhile reaches it once, whole."""
    port = free_port()
    gw = await start_gateway(port=free_port(), upstreams={"tenants": f"127.0.0.1:{port}"},
                             docs_root=build_docs(data_dir / "docs-restart"),
                             log_path=data_dir / "logs" / "gateway-restart.log")
    runner = web.AppRunner(_make_app("tenants"), access_log=None)
    try:
        async with httpx.AsyncClient(base_url=gw.url, trust_env=False, timeout=15) as client:
            sent = asyncio.create_task(client.post("/api/platform/tenants?restart=1", content=b"x" * 5000))
            await asyncio.sleep(0.75)  # the service is away this long (not a wait for anything)
            assert not sent.done()  # without the retry, the 502 would be here already
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()  # the service is back
            answer = await sent
        assert answer.status_code == 200, answer.text
        assert answer.json()["bytes"] == 5000
        assert [seen for seen in SEEN if seen[1] == "/api/platform/tenants?restart=1"] == [
            ("tenants", "/api/platform/tenants?restart=1")]  # sent once
    finally:
        await runner.cleanup()
        await gw.stop()


async def test_body_limit(client):
    # The gateway's limit is the services' (1 MiB): a body the gateway lets through, they accept.
    ok = await client.post("/api/auth/login", content=b"x" * 1_048_576)
    assert ok.status_code == 200 and ok.json()["bytes"] == 1_048_576
    big = await client.post("/api/auth/login?case=declared", content=b"x" * (3 * 1024 * 1024))
    assert big.status_code == 413
    assert big.headers["content-type"].startswith("application/problem+json")
    assert big.json()["status"] == 413
    # A declared length over the limit is refused before proxying: streamed on, the service would
    # answer 413 itself and reset the connection while the gateway relayed that answer.
    assert ("auth", "/api/auth/login?case=declared") not in SEEN

    async def chunks():
        for _ in range(40):
            yield b"y" * 65536

    chunked = await client.post("/api/auth/login", content=chunks())
    assert chunked.status_code == 413
    assert chunked.headers["content-type"].startswith("application/problem+json")


async def test_an_unusable_content_length_is_a_4xx(gateway):
    for value in (b"99999999999999999999999999", b"-1", b"12abc"):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n{}")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert re.match(rb"HTTP/1\.1 4\d\d ", status_line), (value, status_line)


async def test_docs_page_and_specs(client):
    for path in ("/api/docs", "/api/docs/", "/api/docs/index.html"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert "text/html" in r.headers["content-type"]
        assert "/api/docs/swagger-ui-bundle.js" in r.text
        assert "/api/docs/openapi/webhook-dispatcher.json" in r.text
    js = await client.get("/api/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
    assert re.search(r'"5\.\d+\.\d+"', js.text)  # Swagger UI 5 (OpenAPI 3.1)
    css = await client.get("/api/docs/swagger-ui.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    for spec in SERVICES:
        if spec.name == "support":
            continue
        r = await client.get(f"/api/docs/openapi/{spec.name}.json")
        assert r.status_code == 200
        assert r.json()["info"]["title"] == f"{spec.name} API"


async def test_introspection_is_not_routed_from_outside(client, gateway):
    """Who owns an API key is answered to services only (they call auth directly): through the gateway,
    every spelling of the path is a 404 that never reaches auth."""
    SEEN.clear()
    for path in ("/api/auth/api-keys/introspect", "/api/auth/api-keys/introspect/",
                 "/api/auth/api-keys/introspect?x=1", "/api/auth/API-KEYS/Introspect",
                 "/api/auth/api-keys/%69ntrospect"):
        r = await client.post(path, json={"key": "plk_x"})
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["x-content-type-options"] == "nosniff"
    for raw in (b"/api/auth/./api-keys/introspect", b"/api/auth/x/../api-keys/introspect",
                b"//api/auth/api-keys/introspect", b"/api/auth//api-keys/introspect"):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"POST " + raw + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert not status_line.startswith(b"HTTP/1.1 2"), (raw, status_line)
    assert not [seen for seen in SEEN if "introspect" in seen[1].lower() or "%69" in seen[1]], SEEN
    # the rest of auth's API keys stays routed
    assert (await client.get("/api/auth/api-keys")).json()["service"] == "auth"


async def test_security_headers_on_every_kind_of_answer(client):
    answers = {
        "proxied": await client.get("/api/platform/tenants"),
        "404": await client.get("/api/nope"),
        "502": await client.get("/api/platform/support/tickets"),
        "413": await client.post("/api/auth/login", content=b"x" * (2 * 1024 * 1024)),
        "docs": await client.get("/api/docs"),
        "docs asset": await client.get("/api/docs/index.js"),
    }
    for kind, r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", kind
    for kind in ("docs", "docs asset"):
        r = answers[kind]
        assert r.headers["x-frame-options"] == "DENY", kind
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, kind
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], kind
    # the page runs no inline script: its CSP would block it
    page = answers["docs"].text
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", page) == []


def test_caddyfile_matches_registry():
    """Every registry route is a `handle` in the Caddyfile, proxied to that service's upstream."""
    out = subprocess.run(
        [caddy_executable(), "adapt", "--config", str(caddyfile_path()), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = json.loads(out)
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert "admin" in config and config["admin"].get("disabled") is True
    found: dict[str, str] = {}
    for route in routes:
        for match in route.get("match", []):
            for path in match.get("path", []):
                found[path] = json.dumps(route["handle"])
    for spec in SERVICES:
        for prefix in spec.routes:
            assert prefix in found, prefix
            assert f'"dial": "{spec.name}:{spec.port}"' in found[prefix], prefix
        assert f"/api/docs/openapi/{spec.name}.json" in found


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
async def test_docs_render_in_headless_chromium(gateway, tmp_path):
    """The page must really render the OpenAPI 3.1 spec offline (Swagger UI 4 would not)."""
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
        "--virtual-time-budget=10000", "--dump-dom", f"{gateway.url}/api/docs?service=tenants",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    dom = out.decode()
    assert "tenants API" in dom  # info.title from the upstream's /openapi.json
    assert "/ping" in dom  # an operation rendered
    assert 'aria-current="page"' in dom and ">tenants</a>" in dom
    assert "valid version field" not in dom and "Failed to load API definition" not in dom
    # ...under the page's Content-Security-Policy (no inline script, nothing remote, not framable)
    assert (await httpx.AsyncClient(trust_env=False).get(f"{gateway.url}/api/docs")).headers[
        "content-security-policy"]
