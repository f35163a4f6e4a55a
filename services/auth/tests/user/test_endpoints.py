"""/me and the owner-only user management API."""

from __future__ import annotations

import uuid

import pytest

from common.testing.checks import assert_problem
from common.testing.plugin import bearer

USERS = "/api/auth/users"


async def _token(client, user) -> str:
    resp = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert resp.status_code == 200, resp.text
    return resp.json()["accessToken"]


async def test_me_returns_the_caller(create_user, client):
    user = await create_user("TENANT_USER", name="Ana")
    resp = await client.get("/api/auth/me", headers=bearer(await _token(client, user)))
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == user["id"] and body["name"] == "Ana" and body["platformRole"] == "TENANT_USER"
    assert body["lastLoginAt"] is not None
    assert not {"password", "passwordHash", "password_hash"} & body.keys()


async def test_me_needs_a_token(client):
    resp = await client.get("/api/auth/me")
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_me_of_a_disabled_user_is_401(create_user, client, owner_headers):
    user = await create_user()
    token = await _token(client, user)
    await client.patch(f"{USERS}/{user['id']}", json={"isActive": False}, headers=owner_headers)
    assert_problem(await client.get("/api/auth/me", headers=bearer(token)), 401)


async def test_owner_creates_a_user(client, owner_headers):
    tenant = str(uuid.uuid4())
    body = {"email": "  New.Person@Example.COM ", "password": "long-enough", "platformRole": "TENANT_ADMIN",
            "tenantId": tenant, "name": "New Person"}
    resp = await client.post(USERS, json=body, headers=owner_headers)
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert user["email"] == "new.person@example.com"
    assert user["tenantId"] == tenant and user["isActive"] is True and user["platformRole"] == "TENANT_ADMIN"
    assert "long-enough" not in resp.text and "argon2" not in resp.text
    login = await client.post("/api/auth/login", json={"email": "new.person@example.com", "password": "long-enough"})
    assert login.status_code == 200


async def test_duplicate_email_is_409_whatever_the_case(create_user, client, owner_headers):
    user = await create_user()
    body = {"email": user["email"].upper(), "password": "long-enough", "platformRole": "TENANT_USER",
            "tenantId": str(uuid.uuid4())}
    assert_problem(await client.post(USERS, json=body, headers=owner_headers), 409)


@pytest.mark.parametrize("body", [
    {"platformRole": "TENANT_USER"},                                   # tenant role without tenant
    {"platformRole": "TENANT_ADMIN", "tenantId": None},
    {"platformRole": "PLATFORM_OWNER", "tenantId": str(uuid.uuid4())},  # owner inside a tenant
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "password": "short"},
    {"platformRole": "SUPERUSER", "tenantId": str(uuid.uuid4())},
    {"platformRole": "TENANT_USER", "tenantId": "not-a-uuid"},
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "email": "no-at-sign"},
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "email": "x" * 400 + "@example.com"},
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "name": "n" * 201},
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "name": "nul\x00byte"},
    {"platformRole": "TENANT_USER", "tenantId": str(uuid.uuid4()), "isAdmin": True},
])
async def test_invalid_user_is_422(client, owner_headers, body):
    payload = {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": "long-enough"} | body
    assert_problem(await client.post(USERS, json=payload, headers=owner_headers), 422)


async def test_owner_can_create_another_owner(client, owner_headers):
    body = {"email": f"owner2-{uuid.uuid4().hex[:6]}@example.com", "password": "long-enough",
            "platformRole": "PLATFORM_OWNER"}
    resp = await client.post(USERS, json=body, headers=owner_headers)
    assert resp.status_code == 201 and resp.json()["tenantId"] is None


@pytest.mark.parametrize("role", ["TENANT_ADMIN", "TENANT_USER"])
async def test_tenant_roles_cannot_manage_users(create_user, client, role):
    user = await create_user(role)
    headers = bearer(await _token(client, user))
    body = {"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "password": "long-enough",
            "platformRole": "TENANT_USER", "tenantId": user["tenantId"]}
    assert_problem(await client.post(USERS, json=body, headers=headers), 403)
    assert_problem(await client.get(USERS, headers=headers), 403)
    assert_problem(await client.get(f"{USERS}/{user['id']}", headers=headers), 403)
    assert_problem(await client.patch(f"{USERS}/{user['id']}", json={"platformRole": "PLATFORM_OWNER"},
                               headers=headers), 403)


async def test_anonymous_cannot_manage_users(client):
    assert_problem(await client.get(USERS), 401)
    assert_problem(await client.post(USERS, json={}), 401)


async def test_list_filters_and_paginates(create_user, client, owner_headers):
    tenant = uuid.uuid4()
    admin = await create_user("TENANT_ADMIN", tenant_id=tenant)
    users = [await create_user("TENANT_USER", tenant_id=tenant) for _ in range(3)]
    resp = await client.get(USERS, params={"tenantId": str(tenant), "limit": 2}, headers=owner_headers)
    assert resp.status_code == 200
    page = resp.json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0 and len(page["items"]) == 2
    rest = (await client.get(USERS, params={"tenantId": str(tenant), "limit": 2, "offset": 2},
                             headers=owner_headers)).json()
    assert {u["id"] for u in page["items"] + rest["items"]} == {admin["id"], *(u["id"] for u in users)}
    admins = (await client.get(USERS, params={"tenantId": str(tenant), "role": "TENANT_ADMIN"},
                               headers=owner_headers)).json()
    assert [u["id"] for u in admins["items"]] == [admin["id"]]
    found = (await client.get(USERS, params={"q": users[0]["email"][:20]}, headers=owner_headers)).json()
    assert users[0]["id"] in {u["id"] for u in found["items"]}
    assert all("password" not in u and "passwordHash" not in u for u in page["items"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1000}, {"offset": -1}, {"role": "ROOT"},
                                    {"tenantId": "nope"}, {"q": "q" * 300}, {"q": "a\x00b"}])
async def test_bad_list_parameters_are_422(client, owner_headers, params):
    assert_problem(await client.get(USERS, params=params, headers=owner_headers), 422)


async def test_get_user(create_user, client, owner_headers):
    user = await create_user()
    resp = await client.get(f"{USERS}/{user['id']}", headers=owner_headers)
    assert resp.status_code == 200 and resp.json()["email"] == user["email"]
    assert_problem(await client.get(f"{USERS}/{uuid.uuid4()}", headers=owner_headers), 404)
    assert_problem(await client.get(f"{USERS}/not-a-uuid", headers=owner_headers), 422)


async def test_patch_changes_name_and_password(create_user, client, owner_headers):
    user = await create_user()
    old_refresh = (await client.post("/api/auth/login", json={"email": user["email"],
                                                              "password": user["password"]})).json()["refreshToken"]
    resp = await client.patch(f"{USERS}/{user['id']}", json={"name": "Renamed", "password": "brand-new-pass"},
                              headers=owner_headers)
    assert resp.status_code == 200 and resp.json()["name"] == "Renamed"
    assert_problem(await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]}), 401)
    assert (await client.post("/api/auth/login", json={"email": user["email"],
                                                       "password": "brand-new-pass"})).status_code == 200
    # A new password ends existing sessions.
    assert_problem(await client.post("/api/auth/refresh", json={"refreshToken": old_refresh}), 401)


async def test_patch_role_keeps_the_tenant_rule(create_user, client, owner_headers):
    user = await create_user("TENANT_USER")
    url = f"{USERS}/{user['id']}"
    resp = await client.patch(url, json={"platformRole": "TENANT_ADMIN"}, headers=owner_headers)
    assert resp.status_code == 200 and resp.json()["tenantId"] == user["tenantId"]
    assert_problem(await client.patch(url, json={"tenantId": None}, headers=owner_headers), 422)
    assert_problem(await client.patch(url, json={"platformRole": "PLATFORM_OWNER", "tenantId": user["tenantId"]},
                               headers=owner_headers), 422)
    promoted = await client.patch(url, json={"platformRole": "PLATFORM_OWNER"}, headers=owner_headers)
    assert promoted.status_code == 200 and promoted.json()["tenantId"] is None
    assert_problem(await client.patch(url, json={"platformRole": "TENANT_USER"}, headers=owner_headers), 422)
    moved = await client.patch(url, json={"platformRole": "TENANT_USER", "tenantId": user["tenantId"]},
                               headers=owner_headers)
    assert moved.status_code == 200 and moved.json()["platformRole"] == "TENANT_USER"


@pytest.mark.parametrize("body", [{"password": "short"}, {"isActive": "maybe"}, {"email": "a@b.co"},
                                  {"name": ""}, {"platformRole": "GOD"}])
async def test_bad_patch_is_422(create_user, client, owner_headers, body):
    user = await create_user()
    assert_problem(await client.patch(f"{USERS}/{user['id']}", json=body, headers=owner_headers), 422)


async def test_patch_unknown_user_is_404(client, owner_headers):
    assert_problem(await client.patch(f"{USERS}/{uuid.uuid4()}", json={"name": "x"}, headers=owner_headers), 404)


async def test_the_last_active_owner_cannot_be_disabled(client, owner_headers):
    me = (await client.get("/api/auth/me", headers=owner_headers)).json()
    owners = (await client.get(USERS, params={"role": "PLATFORM_OWNER", "limit": 100},
                               headers=owner_headers)).json()["items"]
    # Disable every other owner, then the seeded one must be refused.
    for other in owners:
        if other["id"] != me["id"] and other["isActive"]:
            resp = await client.patch(f"{USERS}/{other['id']}", json={"isActive": False}, headers=owner_headers)
            assert resp.status_code == 200
    assert_problem(await client.patch(f"{USERS}/{me['id']}", json={"isActive": False}, headers=owner_headers), 409)
    assert_problem(await client.patch(f"{USERS}/{me['id']}", json={"platformRole": "TENANT_ADMIN",
                                                            "tenantId": str(uuid.uuid4())},
                               headers=owner_headers), 409)
    assert (await client.get("/api/auth/me", headers=owner_headers)).status_code == 200


async def test_the_json_keeps_its_camel_case_fields_and_bodies_take_only_them(create_user, client, owner_headers):
    user = await create_user("TENANT_ADMIN", name="Eva")
    user.pop("password")
    assert set(user) == {"id", "email", "name", "platformRole", "tenantId", "isActive", "lastLoginAt",
                         "createdAt", "updatedAt"}
    login = (await client.post("/api/auth/login", json={"email": user["email"], "password": "Passw0rd-123",
                                                        "rememberMe": True})).json()  # unknown fields ignored here
    assert set(login) == {"accessToken", "refreshToken", "tokenType", "expiresIn", "user"}
    assert login["user"] == {"id": user["id"], "email": user["email"], "platformRole": "TENANT_ADMIN",
                             "tenantId": user["tenantId"], "name": "Eva"}
    url = f"{USERS}/{user['id']}"
    assert_problem(await client.patch(url, json={"is_active": False}, headers=owner_headers), 422)
    changed = await client.patch(url, json={"isActive": False}, headers=owner_headers)
    assert changed.status_code == 200 and changed.json()["isActive"] is False
    assert_problem(await client.post("/api/auth/refresh", json={"refresh_token": login["refreshToken"]}), 422)
