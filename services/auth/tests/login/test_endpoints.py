"""Login, refresh and logout as a client uses them."""

from __future__ import annotations

import uuid

import pytest

from common.testing.checks import assert_problem
from common.testing.plugin import bearer

OWNER_EMAIL = "owner@auth-tests.local"
OWNER_PASSWORD = "Owner-Passw0rd-1"


async def test_login_returns_tokens_and_user(create_user, login):
    user = await create_user("TENANT_ADMIN")
    resp = await login(user["email"].upper(), user["password"])  # emails match case-insensitively
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accessToken"].count(".") == 2 and body["refreshToken"]
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 900
    assert body["user"] == {"id": user["id"], "email": user["email"], "platformRole": "TENANT_ADMIN",
                            "tenantId": user["tenantId"], "name": None}
    assert "password" not in resp.text.lower()


async def test_seeded_owner_can_log_in(login, client):
    resp = await login(OWNER_EMAIL, OWNER_PASSWORD)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["platformRole"] == "PLATFORM_OWNER"
    assert resp.json()["user"]["tenantId"] is None
    me = await client.get("/api/auth/me", headers=bearer(resp.json()["accessToken"]))
    assert me.status_code == 200 and me.json()["email"] == OWNER_EMAIL


async def test_wrong_password_and_unknown_email_answer_the_same_401(create_user, login):
    user = await create_user()
    wrong = assert_problem(await login(user["email"], "not-the-password"), 401)
    unknown = assert_problem(await login(f"nobody-{uuid.uuid4().hex}@example.com", "whatever-123"), 401)
    assert wrong["detail"] == unknown["detail"] == "Invalid email or password"


async def test_inactive_user_cannot_log_in(create_user, login, client, owner_headers):
    user = await create_user()
    resp = await client.patch(f"/api/auth/users/{user['id']}", json={"isActive": False}, headers=owner_headers)
    assert resp.status_code == 200 and resp.json()["isActive"] is False
    body = assert_problem(await login(user["email"], user["password"]), 401)
    assert body["detail"] == "Invalid email or password"


async def test_failures_are_throttled_with_retry_after(create_user, login):
    user = await create_user()
    for _ in range(5):
        assert_problem(await login(user["email"], "wrong-password"), 401)
    # Even the right password is refused now: the attacker learns nothing more.
    resp = await login(user["email"], user["password"])
    assert_problem(resp, 429)
    assert 0 < int(resp.headers["Retry-After"]) <= 900


async def test_throttling_is_per_client_ip(create_user, login, app, client_of):
    user = await create_user()
    for _ in range(5):
        assert_problem(await login(user["email"], "wrong-password"), 401)
    assert_problem(await login(user["email"], user["password"]), 429)
    async with client_of(app) as elsewhere:
        resp = await elsewhere.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert resp.status_code == 200


async def test_success_resets_the_email_counter(create_user, login):
    user = await create_user()
    for _ in range(4):
        assert_problem(await login(user["email"], "wrong-password"), 401)
    assert (await login(user["email"], user["password"])).status_code == 200
    for _ in range(4):
        assert_problem(await login(user["email"], "wrong-password"), 401)
    assert (await login(user["email"], user["password"])).status_code == 200


async def test_many_emails_from_one_ip_are_throttled(login, create_user):
    for i in range(30):
        assert_problem(await login(f"spray-{i}-{uuid.uuid4().hex[:6]}@example.com", "Summer2024!"), 401)
    user = await create_user()
    assert_problem(await login(user["email"], user["password"]), 429)


async def test_throttling_holds_across_replicas(create_user, app, auth_settings, replica, client_of):
    user = await create_user()
    ip = "198.19.200.1"
    async with client_of(app, ip=ip) as c:
        for _ in range(5):
            assert_problem(await c.post("/api/auth/login", json={"email": user["email"], "password": "nope-nope"}), 401)
    async with replica(auth_settings) as other, client_of(other, ip=ip) as c:
        resp = await c.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert_problem(resp, 429)


async def test_refresh_rotates_the_pair(create_user, login, client):
    user = await create_user()
    first = (await login(user["email"], user["password"])).json()
    resp = await client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second.keys() >= {"accessToken", "refreshToken", "user"}
    assert second["refreshToken"] != first["refreshToken"]
    assert second["user"]["id"] == user["id"]
    assert (await client.get("/api/auth/me", headers=bearer(second["accessToken"]))).status_code == 200
    third = await client.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert third.status_code == 200


async def test_reusing_a_refresh_token_revokes_the_family(create_user, login, client):
    user = await create_user()
    stolen = (await login(user["email"], user["password"])).json()["refreshToken"]
    newer = (await client.post("/api/auth/refresh", json={"refreshToken": stolen})).json()["refreshToken"]
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": stolen}), 401)
    # The legitimate holder of the newer token is signed out too: the family is gone.
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": newer}), 401)


async def test_reuse_revokes_only_that_family(create_user, login, client):
    user = await create_user()
    laptop = (await login(user["email"], user["password"])).json()["refreshToken"]
    phone = (await login(user["email"], user["password"])).json()["refreshToken"]
    await client.post("/api/auth/refresh", json={"refreshToken": laptop})
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": laptop}), 401)
    assert (await client.post("/api/auth/refresh", json={"refreshToken": phone})).status_code == 200


async def test_unknown_refresh_token_is_401(client):
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": "x" * 43}), 401)


async def test_logout_revokes_the_session(create_user, login, client):
    user = await create_user()
    token = (await login(user["email"], user["password"])).json()["refreshToken"]
    resp = await client.post("/api/auth/logout", json={"refreshToken": token})
    assert resp.status_code == 204 and resp.content == b""
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": token}), 401)


async def test_logout_with_unknown_token_is_204(client):
    resp = await client.post("/api/auth/logout", json={"refreshToken": "never-issued"})
    assert resp.status_code == 204


async def test_deactivation_ends_refresh(create_user, login, client, owner_headers):
    user = await create_user()
    token = (await login(user["email"], user["password"])).json()["refreshToken"]
    await client.patch(f"/api/auth/users/{user['id']}", json={"isActive": False}, headers=owner_headers)
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": token}), 401)


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[]",
    b'"email"',
    b"null",
    b'{"email": 123, "password": "x"}',
    b'{"email": "a@b.co", "password": ["x"]}',
    b'{"email": "a@b.co"}',
    b'{"email": "a@b.co", "password": ""}',
    ('{"email": "' + "a" * 10_000 + '@b.co", "password": "x"}').encode(),
    ('{"email": "a@b.co", "password": "' + "p" * 10_000 + '"}').encode(),
    b'{"email": "a\\u0000@b.co", "password": "x"}',
    b'{"email": "a\\ud800@b.co", "password": "x"}',
    b'{"email": "a@b.co", "password": "\\ud800"}',
])
async def test_hostile_login_input_is_a_422_problem(client, body):
    resp = await client.post("/api/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert_problem(resp, 422)


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("body", [b"{}", b'{"refreshToken": 5}', b'{"refreshToken": ""}',
                                  ('{"refreshToken": "' + "r" * 5000 + '"}').encode(), b"{oops"])
async def test_hostile_refresh_input_is_a_422_problem(client, path, body):
    resp = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_problem(resp, 422)


async def test_oversized_body_is_413(client):
    body = b'{"email": "a@b.co", "password": "' + b"p" * 2_000_000 + b'"}'
    assert_problem(await client.post("/api/auth/login", content=body, headers={"Content-Type": "application/json"}), 413)


async def test_form_encoded_login_is_rejected(client):
    resp = await client.post("/api/auth/login", data={"email": "a@b.co", "password": "x"})
    assert_problem(resp, 422)
