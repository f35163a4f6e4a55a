"""The endpoint API through the real app: verification challenge, secrets, URL rules, auth."""

from __future__ import annotations

import base64
import uuid

from standardwebhooks import Webhook

from common.testing.checks import assert_problem
from common.testing.plugin import bearer

API = "/api/platform/webhooks"


async def test_create_sends_a_signed_challenge_and_an_echo_makes_the_endpoint_active(owner, receiver, endpoints):
    hook = receiver.hook()
    created = await endpoints(hook.url, ["tenant.created", "lead.*"], description="CRM")
    assert created["status"] == "ACTIVE"
    assert created["events"] == ["tenant.created", "lead.*"]
    assert created["verification"]["success"] is True
    assert created["verificationError"] is None
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24

    [challenge] = hook.verifications()
    body = Webhook(secret).verify(challenge.body, challenge.headers)
    assert set(body) == {"id", "event", "timestamp", "data"}
    assert body["event"] == "webhook.verification" and body["data"]["challenge"]
    assert challenge.headers["webhook-id"] == body["id"]
    assert challenge.headers["content-type"] == "application/json"
    assert challenge.headers["user-agent"]


async def test_a_plain_text_echo_also_verifies(receiver, endpoints):
    created = await endpoints(receiver.hook(challenge="text").url)
    assert created["status"] == "ACTIVE"


async def test_an_endpoint_that_does_not_echo_stays_pending_with_the_error_visible(owner, receiver, endpoints):
    for mode in ("none", "wrong"):
        created = await endpoints(receiver.hook(challenge=mode).url)
        assert created["status"] == "PENDING_VERIFICATION"
        assert created["verification"]["success"] is False
        assert "challenge" in created["verificationError"]
        again = (await owner.get(f"{API}/{created['id']}")).json()
        assert again["status"] == "PENDING_VERIFICATION" and again["verificationError"]


async def test_verify_again_activates_once_the_endpoint_echoes(owner, receiver, endpoints):
    hook = receiver.hook(challenge="none")
    created = await endpoints(hook.url)
    assert created["status"] == "PENDING_VERIFICATION"
    hook.set_behaviour(challenge="json")
    resp = await owner.post(f"{API}/{created['id']}/verify")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ACTIVE" and resp.json()["verificationError"] is None


async def test_an_unreachable_endpoint_stays_pending_with_a_connect_error(receiver, endpoints):
    created = await endpoints("https://127.0.0.1:9/hook")
    assert created["status"] == "PENDING_VERIFICATION"
    assert "connect" in created["verificationError"]


async def test_a_given_secret_is_used_and_the_secret_is_masked_afterwards(owner, receiver, endpoints):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    hook = receiver.hook()
    created = await endpoints(hook.url, secret=secret)
    assert created["secret"] == secret
    Webhook(secret).verify(hook.verifications()[0].body, hook.verifications()[0].headers)
    one = (await owner.get(f"{API}/{created['id']}")).json()
    assert one["secret"] == "****" + secret[-4:]
    listed = (await owner.get(API, params={"limit": 100})).json()
    mine = [e for e in listed["items"] if e["id"] == created["id"]]
    assert mine and mine[0]["secret"] == "****" + secret[-4:]
    assert all(secret not in str(e) for e in listed["items"])


async def test_bad_secrets_unknown_events_and_hostile_input_are_422_problems(owner, receiver):
    url = receiver.hook().url
    cases = [
        {"url": url, "events": ["tenant.exploded"]},
        {"url": url, "events": ["webhook.verification"]},
        {"url": url, "events": ["nothing.*"]},
        {"url": url, "events": []},
        {"url": url, "events": "tenant.created"},
        {"url": url, "events": ["*"], "secret": "not-a-secret"},
        {"url": url, "events": ["*"], "secret": "whsec_" + base64.b64encode(b"short").decode()},
        {"url": url, "events": ["*"], "secret": "whsec_%%%%"},
        {"url": url, "events": ["*"], "unexpected": 1},
        {"url": "x" * 5000, "events": ["*"]},
        {"url": url, "events": ["a" * 1000]},
        {"url": url, "events": ["*"] * 500},
        {"url": 12, "events": ["*"]},
        {"events": ["*"]},
        {"url": url, "events": ["*"], "maxConcurrency": 0},
    ]
    for body in cases:
        resp = await owner.post(API, json=body)
        assert_problem(resp, 422)
        assert resp.json()["status"] == 422
    resp = await owner.post(API, content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert (await owner.get(f"{API}/not-a-uuid")).status_code == 422
    assert (await owner.get(f"{API}/{uuid.uuid4()}")).status_code == 404


async def test_urls_refused_by_the_ssrf_policy_are_422_with_the_reason(owner, receiver):
    refused = [
        "http://127.0.0.1:8080/hook",  # plain http without WEBHOOK_ALLOW_HTTP
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://0x7f000002/hook",  # 127.0.0.2: loopback, outside the allowed 127.0.0.1/32
        "https://user:pass@127.0.0.1/hook",
        "ftp://127.0.0.1/hook",
        "https://192.168.1.1:8443/hook",
    ]
    for url in refused:
        resp = await owner.post(API, json={"url": url, "events": ["*"]})
        assert resp.status_code == 422, (url, resp.text)
        problem = resp.json()
        assert problem["detail"].startswith("url: ") and len(problem["detail"]) > 10
    assert not [r for r in receiver.unrouted if r.path == "/hook"]


async def test_delete_stops_it_and_hides_it(owner, receiver, endpoints):
    created = await endpoints(receiver.hook().url)
    assert (await owner.delete(f"{API}/{created['id']}")).status_code == 204
    assert (await owner.get(f"{API}/{created['id']}")).status_code == 404
    assert (await owner.delete(f"{API}/{created['id']}")).status_code == 204
    assert (await owner.delete(f"{API}/{uuid.uuid4()}")).status_code == 404


async def test_every_route_declares_auth_and_only_the_owner_may_call(dispatcher, anonymous, auth_server):
    from common.testing.checks import assert_routes_declare_auth

    assert_routes_declare_auth(dispatcher.app)
    # The common check walks app.routes; newer FastAPI nests included routers, so walk them too.
    routes = [r for r in _api_routes(dispatcher.app) if r.path not in dispatcher.app.state.public_routes]
    assert len(routes) >= 16
    from common.auth.dependencies import get_principal
    from common.testing.checks import _depends_on

    assert all(_depends_on(r.dependant, get_principal) for r in routes)

    admin = await auth_server.create_user("TENANT_ADMIN", tenant_id=uuid.uuid4())
    some_id = uuid.uuid4()
    for method, path in [("GET", API), ("POST", API), ("GET", f"{API}/{some_id}"), ("DELETE", f"{API}/{some_id}"),
                         ("GET", f"{API}/event-types"), ("POST", f"{API}/deliveries/{some_id}/retry"),
                         ("GET", f"{API}/{some_id}/deliveries")]:
        body = {"url": "https://example.com", "events": ["*"]} if method == "POST" else None
        assert (await anonymous.request(method, path, json=body)).status_code == 401
        resp = await anonymous.request(method, path, json=body, headers=bearer(admin["accessToken"]))
        assert_problem(resp, 403)


def _api_routes(app):
    """Every APIRoute, also inside included routers (FastAPI >= 0.16x nests them)."""
    from fastapi.routing import APIRoute

    out, stack = [], list(app.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            stack.extend(route.original_router.routes)
    return out


async def test_event_types_list_the_catalogue_with_json_schemas(owner):
    resp = await owner.get(f"{API}/event-types")
    assert resp.status_code == 200
    types = {t["name"]: t for t in resp.json()}
    assert {"tenant.created", "lead.stage.changed", "webhook.endpoint.disabled"} <= set(types)
    created = types["tenant.created"]
    assert created["description"] and created["subscribable"] is True
    assert created["schema"]["properties"]["event"]["const"] == "tenant.created"
    assert "tenantId" in created["schema"]["properties"]["data"]["properties"]
    assert types["webhook.verification"]["subscribable"] is False


async def test_more_hostile_input_is_a_4xx_problem_never_a_500(owner, receiver):
    url = receiver.hook().url
    responses = [
        await owner.post(API, json={"url": url, "events": ["*"], "description": "nul\x00byte"}),
        await owner.post(API, json={"url": url, "events": ["*"], "description": "x" * 501}),
        await owner.post(API, content=b'{"url": "' + url.encode() + b'", "events": ["*"], "description": "\\ud800"}',
                         headers={"content-type": "application/json"}),
        await owner.post(API, content=b"x" * 2_000_000, headers={"content-type": "application/json"}),
        await owner.get(API, params={"limit": 0}),
        await owner.get(API, params={"status": "DELETED"}),
        await owner.post(f"{API}/{uuid.uuid4()}/rotate-secret", json={"graceHours": "many"}),
        await owner.post(API, json=[]),
        await owner.post(API, json={"url": "https://\u0000/x", "events": ["*"]}),
        await owner.post(API, json={"url": "https://exa mple.com/x", "events": ["*"]}),
    ]
    for resp in responses:
        assert 400 <= resp.status_code < 500, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
