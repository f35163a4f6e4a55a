"""Platform API keys as the owner manages them and as every service checks them (introspection)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from auth.models import ApiKey
from common.testing.checks import assert_problem
from common.testing.plugin import bearer

KEYS = "/api/auth/api-keys"
INTROSPECT = f"{KEYS}/introspect"
KEY_FORMAT = re.compile(r"^plk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")
METADATA = {"id", "name", "prefix", "role", "tenantId", "scopes", "active", "createdBy", "createdAt", "expiresAt",
            "lastUsedAt", "revokedAt", "rotatedFrom", "ageDays"}


@pytest.fixture
def new_key(client, owner_headers):
    """Factory: creates a key through the API; returns the create response (with the full `key`)."""

    async def make(**body):
        resp = await client.post(KEYS, json={"name": f"n8n flow {uuid.uuid4().hex[:6]}"} | body,
                                 headers=owner_headers)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return make


@pytest.fixture
def db(app):
    """`async with db() as session:` a transaction on the service's database, committed at the end."""
    return app.state.database.sessionmaker.begin


async def _introspect(client, key):
    # json.dumps escapes what httpx would refuse to encode (a lone surrogate), as a hostile client could.
    resp = await client.post(INTROSPECT, content=json.dumps({"key": key}),
                             headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _set(db, key_id, **values):
    async with db() as session:
        await session.execute(update(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).values(**values))


async def _row(db, key_id) -> ApiKey:
    async with db() as session:
        return (await session.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(key_id)))).scalar_one()


async def _owner_id(client, owner_headers) -> str:
    return (await client.get("/api/auth/me", headers=owner_headers)).json()["id"]


# --- create, show once, list, get ---------------------------------------------------------------------------

async def test_create_shows_the_key_once_and_stores_only_its_hash(client, owner_headers, db):
    resp = await client.post(KEYS, json={"name": "n8n leads sync", "scopes": ["leads:read", "leads:write"]},
                             headers=owner_headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    key = created["key"]
    assert KEY_FORMAT.match(key)
    assert created.keys() == METADATA | {"key"}
    assert key.startswith(created["prefix"] + "_") and len(created["prefix"]) == len("plk_") + 12
    assert created["name"] == "n8n leads sync" and created["role"] == "PLATFORM_OWNER"
    assert created["tenantId"] is None and created["scopes"] == ["leads:read", "leads:write"]
    assert created["active"] is True and created["ageDays"] == 0
    assert created["lastUsedAt"] is None and created["revokedAt"] is None and created["rotatedFrom"] is None
    assert created["createdBy"] == await _owner_id(client, owner_headers)

    row = await _row(db, created["id"])
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.public_id == created["prefix"].removeprefix("plk_")
    secret = key.split("_", 2)[2]

    got = await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)
    listed = await client.get(KEYS, params={"limit": 100}, headers=owner_headers)
    assert got.status_code == 200 and listed.status_code == 200
    assert got.json() == {k: v for k, v in created.items() if k != "key"}
    assert created["id"] in {k["id"] for k in listed.json()["items"]}
    for text in (got.text, listed.text):
        assert key not in text and secret not in text and row.key_hash not in text
        assert '"key"' not in text and "hash" not in text.lower()


async def test_tenant_key_and_role_defaults(new_key):
    tenant = str(uuid.uuid4())
    assert (await new_key())["role"] == "PLATFORM_OWNER"
    assert (await new_key(tenantId=tenant))["role"] == "TENANT_USER"
    admin = await new_key(role="TENANT_ADMIN", tenantId=tenant, scopes=["leads:*", "leads:*", "*"])
    assert admin["role"] == "TENANT_ADMIN" and admin["tenantId"] == tenant
    assert admin["scopes"] == ["*", "leads:*"]  # deduplicated, sorted


async def test_list_filters_active_and_paginates(client, owner_headers, new_key):
    live, revoked = await new_key(), await new_key()
    assert (await client.delete(f"{KEYS}/{revoked['id']}", headers=owner_headers)).status_code == 204
    active_ids = {k["id"] for k in (await client.get(KEYS, params={"active": "true", "limit": 100},
                                                     headers=owner_headers)).json()["items"]}
    inactive_ids = {k["id"] for k in (await client.get(KEYS, params={"active": "false", "limit": 100},
                                                       headers=owner_headers)).json()["items"]}
    assert live["id"] in active_ids and live["id"] not in inactive_ids
    assert revoked["id"] in inactive_ids and revoked["id"] not in active_ids
    page = (await client.get(KEYS, params={"limit": 1}, headers=owner_headers)).json()
    assert page["limit"] == 1 and page["offset"] == 0 and len(page["items"]) == 1 and page["total"] >= 2
    assert page["items"][0].keys() == METADATA


async def test_age_in_days(client, owner_headers, new_key, db):
    created = await new_key()
    await _set(db, created["id"], created_at=datetime.now(UTC) - timedelta(days=40, hours=1))
    assert (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()["ageDays"] == 40
    listed = (await client.get(KEYS, params={"limit": 100}, headers=owner_headers)).json()["items"]
    assert next(k for k in listed if k["id"] == created["id"])["ageDays"] == 40


async def test_unknown_key_is_404(client, owner_headers):
    missing = uuid.uuid4()
    assert_problem(await client.get(f"{KEYS}/{missing}", headers=owner_headers), 404)
    assert_problem(await client.post(f"{KEYS}/{missing}/rotate", json={}, headers=owner_headers), 404)
    assert_problem(await client.delete(f"{KEYS}/{missing}", headers=owner_headers), 404)


# --- introspection ------------------------------------------------------------------------------------------

async def test_a_fresh_key_introspects_active_with_its_role_and_scopes(client, new_key):
    tenant = str(uuid.uuid4())
    created = await new_key(role="TENANT_ADMIN", tenantId=tenant, scopes=["leads:read"])
    resp = await client.post(INTROSPECT, json={"key": created["key"]})
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    assert resp.json() == {
        "active": True,
        "principal": {"id": created["id"], "email": None, "role": "TENANT_ADMIN", "tenantId": tenant,
                      "scopes": ["leads:read"], "keyId": created["id"], "name": created["name"]},
        "cacheSeconds": 30,
    }


async def test_introspection_needs_no_credentials_and_ignores_a_bearer(client, new_key, owner_headers):
    created = await new_key()
    resp = await client.post(INTROSPECT, json={"key": created["key"]}, headers=owner_headers)
    assert resp.json()["active"] is True


async def test_revoked_key_is_inactive_and_revoking_is_idempotent(client, owner_headers, new_key):
    created = await new_key()
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=owner_headers)).status_code == 204
    first = (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()
    assert first["revokedAt"] is not None and first["active"] is False
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=owner_headers)).status_code == 204
    again = (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()
    assert again["revokedAt"] == first["revokedAt"]
    assert await _introspect(client, created["key"]) == {"active": False}


async def test_expired_key_is_inactive(client, owner_headers, new_key, db):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = await new_key(expiresAt=soon)
    assert datetime.fromisoformat(created["expiresAt"]) == datetime.fromisoformat(soon)
    assert (await _introspect(client, created["key"]))["active"] is True
    await _set(db, created["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await _introspect(client, created["key"]) == {"active": False}
    assert (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()["active"] is False


async def test_cache_seconds_never_outlive_the_key(client, new_key, db):
    created = await new_key(expiresAt=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    await _set(db, created["id"], expires_at=datetime.now(UTC) + timedelta(seconds=10))
    assert 0 <= (await _introspect(client, created["key"]))["cacheSeconds"] <= 10


@pytest.mark.parametrize("key", [
    "", "plk_", "plk_abc", "not-a-key", "Bearer plk_0123456789ab_" + "a" * 43,
    "plk_0123456789AB_" + "a" * 43,          # upper-case public id
    "plk_0123456789ab_" + "a" * 42,          # secret too short
    "plk_0123456789ab_" + "a" * 43 + "\x00",  # NUL
    "plk_0123456789ab_" + "a" * 43 + "\n",
    "plk_' OR 1=1 --_" + "a" * 43,
    "plk_\ud800",                              # lone surrogate
    "x" * 100_000,
])
async def test_malformed_keys_are_inactive_not_errors(client, key):
    assert await _introspect(client, key) == {"active": False}


async def test_unknown_key_and_wrong_secret_are_inactive(client, new_key):
    assert await _introspect(client, f"plk_{'0' * 12}_{'A' * 43}") == {"active": False}
    created = await new_key()
    public, secret = created["key"].rsplit("_", 1)[0], created["key"].split("_", 2)[2]
    forged = f"{public}_{'B' if secret[0] != 'B' else 'C'}{secret[1:]}"
    assert await _introspect(client, forged) == {"active": False}


@pytest.mark.parametrize("body", [{}, {"key": 123}, {"key": None}, {"key": ["plk_x"]}, [], "plk_x"])
async def test_introspection_of_a_malformed_request_is_422(client, body):
    assert_problem(await client.post(INTROSPECT, json=body), 422)


async def test_last_used_is_set_at_most_once_a_minute(client, owner_headers, new_key, db):
    created = await new_key()
    assert created["lastUsedAt"] is None
    await _introspect(client, created["key"])
    first = (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()["lastUsedAt"]
    assert first is not None
    assert datetime.now(UTC) - datetime.fromisoformat(first) < timedelta(minutes=1)
    await _introspect(client, created["key"])
    assert (await _row(db, created["id"])).last_used_at == datetime.fromisoformat(first)  # no second write
    await _set(db, created["id"], last_used_at=datetime.now(UTC) - timedelta(minutes=2))
    await _introspect(client, created["key"])
    later = (await client.get(f"{KEYS}/{created['id']}", headers=owner_headers)).json()["lastUsedAt"]
    assert datetime.now(UTC) - datetime.fromisoformat(later) < timedelta(minutes=1)


async def test_failed_introspections_are_throttled_per_client_ip(auth_settings, replica, client_of):
    settings = auth_settings.model_copy(update={"api_key_introspect_failures_per_minute": 3})
    async with replica(settings) as app2, client_of(app2) as guesser, client_of(app2) as other:
        owner = await other.post("/api/auth/login", json={"email": settings.platform_owner_email,
                                                          "password": "Owner-Passw0rd-1"})
        headers = {"Authorization": f"Bearer {owner.json()['accessToken']}"}
        key = (await other.post(KEYS, json={"name": "valid"}, headers=headers)).json()["key"]
        for _ in range(5):  # valid keys cost nothing
            assert (await _introspect(guesser, key))["active"] is True
        for _ in range(3):
            assert await _introspect(guesser, f"plk_{uuid.uuid4().hex[:12]}_{'A' * 43}") == {"active": False}
        resp = await guesser.post(INTROSPECT, json={"key": key})
        assert_problem(resp, 429)
        assert 1 <= int(resp.headers["Retry-After"]) <= 20
        # Another client is not affected.
        assert (await _introspect(other, key))["active"] is True


# --- rotation -----------------------------------------------------------------------------------------------

async def test_rotation_without_grace_revokes_the_old_key_now(client, owner_headers, new_key):
    old = await new_key(scopes=["leads:read"], role="TENANT_USER", tenantId=str(uuid.uuid4()))
    resp = await client.post(f"{KEYS}/{old['id']}/rotate", headers=owner_headers)  # body is optional
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert KEY_FORMAT.match(new["key"]) and new["key"] != old["key"] and new["id"] != old["id"]
    assert new["prefix"] != old["prefix"] and new["rotatedFrom"] == old["id"]
    assert {k: new[k] for k in ("name", "role", "tenantId", "scopes")} == \
        {k: old[k] for k in ("name", "role", "tenantId", "scopes")}
    assert await _introspect(client, old["key"]) == {"active": False}
    assert (await _introspect(client, new["key"]))["principal"]["keyId"] == new["id"]
    listed = (await client.get(f"{KEYS}/{old['id']}", headers=owner_headers)).json()
    assert listed["revokedAt"] is not None and listed["active"] is False
    assert new["key"] not in (await client.get(f"{KEYS}/{new['id']}", headers=owner_headers)).text


async def test_rotation_with_grace_keeps_the_old_key_until_then(client, owner_headers, new_key, db):
    old = await new_key()
    resp = await client.post(f"{KEYS}/{old['id']}/rotate", json={"gracePeriodHours": 2}, headers=owner_headers)
    assert resp.status_code == 201, resp.text
    new = resp.json()
    old_now = (await client.get(f"{KEYS}/{old['id']}", headers=owner_headers)).json()
    assert old_now["revokedAt"] is None and old_now["active"] is True
    grace_end = datetime.fromisoformat(old_now["expiresAt"])
    assert timedelta(hours=2) - timedelta(minutes=1) < grace_end - datetime.now(UTC) <= timedelta(hours=2)
    assert (await _introspect(client, old["key"]))["active"] is True
    assert (await _introspect(client, new["key"]))["active"] is True
    assert new["expiresAt"] is None  # the old key had no expiry, nor has its successor
    await _set(db, old["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))  # the grace period ends
    assert await _introspect(client, old["key"]) == {"active": False}
    assert (await _introspect(client, new["key"]))["active"] is True


async def test_rotation_keeps_the_lifetime_and_never_extends_the_old_key(client, owner_headers, new_key):
    old = await new_key(expiresAt=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    new = (await client.post(f"{KEYS}/{old['id']}/rotate", json={"gracePeriodHours": 24},
                             headers=owner_headers)).json()
    old_now = (await client.get(f"{KEYS}/{old['id']}", headers=owner_headers)).json()
    assert old_now["expiresAt"] == old["expiresAt"]  # the 24 h grace does not outlast its own expiry
    lifetime = datetime.fromisoformat(new["expiresAt"]) - datetime.fromisoformat(new["createdAt"])
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)


async def test_a_key_is_rotated_once_and_never_when_revoked(client, owner_headers, new_key):
    old = await new_key()
    new = (await client.post(f"{KEYS}/{old['id']}/rotate", json={"gracePeriodHours": 1},
                             headers=owner_headers)).json()
    body = assert_problem(await client.post(f"{KEYS}/{old['id']}/rotate", json={}, headers=owner_headers), 409)
    assert new["id"] in body["detail"]
    assert (await client.post(f"{KEYS}/{new['id']}/rotate", json={}, headers=owner_headers)).status_code == 201
    revoked = await new_key()
    await client.delete(f"{KEYS}/{revoked['id']}", headers=owner_headers)
    assert_problem(await client.post(f"{KEYS}/{revoked['id']}/rotate", json={}, headers=owner_headers), 409)


# --- API keys as bearer credentials -------------------------------------------------------------------------

async def test_a_key_is_a_bearer_credential_on_auth_itself(client, new_key):
    tenant = str(uuid.uuid4())
    created = await new_key(role="TENANT_ADMIN", tenantId=tenant)
    resp = await client.get("/api/auth/me", headers=bearer(created["key"]))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": created["id"], "email": None, "role": "TENANT_ADMIN", "tenantId": tenant,
                           "scopes": [], "keyId": created["id"], "name": created["name"]}
    assert_problem(await client.get("/api/auth/users", headers=bearer(created["key"])), 403)  # a tenant role
    assert_problem(await client.get(f"{KEYS}/{created['id']}"), 401)


async def test_owner_key_may_use_owner_endpoints_but_not_manage_keys(client, new_key):
    created = await new_key()
    headers = bearer(created["key"])
    assert (await client.get("/api/auth/users", headers=headers)).status_code == 200
    # A leaked key must not mint its own replacements or rotate the real one away.
    assert_problem(await client.post(KEYS, json={"name": "persistence"}, headers=headers), 403)
    assert_problem(await client.get(KEYS, headers=headers), 403)
    assert_problem(await client.post(f"{KEYS}/{created['id']}/rotate", json={}, headers=headers), 403)
    assert_problem(await client.delete(f"{KEYS}/{created['id']}", headers=headers), 403)


async def test_scopes_limit_a_key_on_auth(client, new_key):
    assert_problem(await client.get("/api/auth/me", headers=bearer((await new_key(scopes=["leads:read"]))["key"])), 403)
    assert (await client.get("/api/auth/me",
                             headers=bearer((await new_key(scopes=["auth:read"]))["key"]))).status_code == 200


async def test_revoked_or_unknown_key_as_bearer_is_401(client, owner_headers, new_key):
    created = await new_key()
    assert (await client.get("/api/auth/me", headers=bearer(created["key"]))).status_code == 200
    await client.delete(f"{KEYS}/{created['id']}", headers=owner_headers)
    assert_problem(await client.get("/api/auth/me", headers=bearer(created["key"])), 401)
    assert_problem(await client.get("/api/auth/me", headers=bearer(f"plk_{'0' * 12}_{'A' * 43}")), 401)
    assert_problem(await client.get("/api/auth/me", headers=bearer("plk_garbage")), 401)


# --- who may manage keys, and hostile input -----------------------------------------------------------------

@pytest.mark.parametrize("role", ["TENANT_ADMIN", "TENANT_USER"])
async def test_tenant_roles_cannot_manage_keys(client, create_user, new_key, role):
    user = await create_user(role)
    login = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    headers = bearer(login.json()["accessToken"])
    key = await new_key()
    assert_problem(await client.post(KEYS, json={"name": "mine", "role": role, "tenantId": user["tenantId"]},
                              headers=headers), 403)
    assert_problem(await client.get(KEYS, headers=headers), 403)
    assert_problem(await client.get(f"{KEYS}/{key['id']}", headers=headers), 403)
    assert_problem(await client.post(f"{KEYS}/{key['id']}/rotate", json={}, headers=headers), 403)
    assert_problem(await client.delete(f"{KEYS}/{key['id']}", headers=headers), 403)
    assert (await _introspect(client, key["key"]))["active"] is True  # nothing changed


async def test_anonymous_cannot_manage_keys(client, new_key):
    key = await new_key()
    assert_problem(await client.post(KEYS, json={"name": "x"}), 401)
    assert_problem(await client.get(KEYS), 401)
    assert_problem(await client.get(f"{KEYS}/{key['id']}"), 401)
    assert_problem(await client.post(f"{KEYS}/{key['id']}/rotate", json={}), 401)
    assert_problem(await client.delete(f"{KEYS}/{key['id']}"), 401)


_PAST = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


@pytest.mark.parametrize("body", [
    {},
    {"name": ""},
    {"name": "   "},
    {"name": "n" * 201},
    {"name": "nul\x00byte"},
    {"name": "\ud800"},
    {"name": 42},
    {"name": "x", "role": "TENANT_ADMIN"},                                  # tenant role without tenant
    {"name": "x", "role": "PLATFORM_OWNER", "tenantId": str(uuid.uuid4())},
    {"name": "x", "role": "GOD"},
    {"name": "x", "tenantId": "not-a-uuid"},
    {"name": "x", "scopes": "leads:read"},
    {"name": "x", "scopes": ["Leads:read"]},
    {"name": "x", "scopes": ["leads read"]},
    {"name": "x", "scopes": ["leads:"]},
    {"name": "x", "scopes": [":read"]},
    {"name": "x", "scopes": ["leads:read\x00"]},
    {"name": "x", "scopes": ["a" * 101]},
    {"name": "x", "scopes": [f"s{i}:read" for i in range(51)]},
    {"name": "x", "scopes": [None]},
    {"name": "x", "expiresAt": _PAST},
    {"name": "x", "expiresAt": "2999-01-01T00:00:00"},                     # no time zone
    {"name": "x", "expiresAt": "tomorrow"},
    {"name": "x", "key": "plk_mine_chosen"},                                # a caller never picks the key
    {"name": "x", "keyHash": "0" * 64},
    {"name": "x", "lastUsedAt": _PAST},
])
async def test_invalid_key_is_422(client, owner_headers, body):
    assert_problem(await client.post(KEYS, content=json.dumps(body),
                              headers=owner_headers | {"content-type": "application/json"}), 422)


@pytest.mark.parametrize("body", [{"gracePeriodHours": -1}, {"gracePeriodHours": 169}, {"gracePeriodHours": 1.5},
                                  {"gracePeriodHours": "two"}, {"gracePeriodHours": 10**30}, {"grace": 1}, []])
async def test_invalid_rotation_is_422_and_changes_nothing(client, owner_headers, new_key, body):
    key = await new_key()
    assert_problem(await client.post(f"{KEYS}/{key['id']}/rotate", json=body, headers=owner_headers), 422)
    assert (await _introspect(client, key["key"]))["active"] is True


@pytest.mark.parametrize("params", [{"active": "maybe"}, {"limit": 0}, {"limit": 1000}, {"offset": -1}])
async def test_bad_list_parameters_are_422(client, owner_headers, params):
    assert_problem(await client.get(KEYS, params=params, headers=owner_headers), 422)


@pytest.mark.parametrize("path", ["not-a-uuid", "1 OR 1=1", "%00"])
async def test_bad_key_ids_are_422(client, owner_headers, path):
    assert_problem(await client.get(f"{KEYS}/{path}", headers=owner_headers), 422)
    assert_problem(await client.delete(f"{KEYS}/{path}", headers=owner_headers), 422)
    assert_problem(await client.post(f"{KEYS}/{path}/rotate", json={}, headers=owner_headers), 422)


async def test_an_oversized_body_is_413(client, owner_headers):
    assert_problem(await client.post(KEYS, content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
                              headers=owner_headers | {"content-type": "application/json"}), 413)
    assert_problem(await client.post(INTROSPECT, content=b'{"key": "' + b"x" * 2_000_000 + b'"}',
                              headers={"content-type": "application/json"}), 413)
