"""Secret rotation's grace period: default, maximum, and past the maximum.

The old secret's expiry is `secretRotation.previousSecretExpiresAt` (in the rotate answer and on the
endpoint). It is bounded by the clock read just before and just after the request, so no timing is assumed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.testing.checks import assert_problem

API = "/api/platform/webhooks"


async def _rotate(owner, endpoint_id: str, **kwargs) -> tuple[datetime, dict, datetime]:
    before = datetime.now(UTC)
    resp = await owner.post(f"{API}/{endpoint_id}/rotate-secret", **kwargs)
    after = datetime.now(UTC)
    assert resp.status_code == 200, resp.text
    return before, resp.json(), after


def _expires(endpoint: dict) -> datetime:
    assert endpoint["secretRotation"] is not None, endpoint
    return datetime.fromisoformat(endpoint["secretRotation"]["previousSecretExpiresAt"])


async def test_the_grace_period_defaults_to_24_hours(owner, receiver, endpoints):
    endpoint = await endpoints(receiver.hook().url, ["lead.created"])
    assert endpoint["secretRotation"] is None
    for kwargs in ({}, {"json": {}}, {"json": {"graceHours": None}}):  # no body, an empty one, an explicit null
        before, rotated, after = await _rotate(owner, endpoint["id"], **kwargs)
        expires = _expires(rotated)
        assert before + timedelta(hours=24) <= expires <= after + timedelta(hours=24), (kwargs, expires)
        assert _expires((await owner.get(f"{API}/{endpoint['id']}")).json()) == expires


async def test_168_hours_is_the_maximum_grace_period(owner, receiver, endpoints):
    endpoint = await endpoints(receiver.hook().url, ["lead.created"])
    before, rotated, after = await _rotate(owner, endpoint["id"], json={"graceHours": 168})
    expires = _expires(rotated)
    assert before + timedelta(days=7) <= expires <= after + timedelta(days=7)
    secret = rotated["secret"]
    for bad in (169, 168.01, 1e9):
        resp = await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json={"graceHours": bad})
        assert_problem(resp, 422)
    shown = (await owner.get(f"{API}/{endpoint['id']}")).json()  # the refused rotations changed nothing
    assert shown["secret"] == "****" + secret[-4:] and _expires(shown) == expires


async def test_a_grace_period_past_a_lower_configured_maximum_is_refused_not_shortened(
        owner, receiver, endpoints, dispatcher, monkeypatch):
    monkeypatch.setattr(dispatcher.settings, "webhook_rotation_grace_hours_max", 48.0)
    endpoint = await endpoints(receiver.hook().url, ["lead.created"])
    resp = await owner.post(f"{API}/{endpoint['id']}/rotate-secret", json={"graceHours": 49})
    assert resp.status_code == 422 and "at most 48" in resp.json()["detail"], resp.text
    assert (await owner.get(f"{API}/{endpoint['id']}")).json()["secretRotation"] is None  # nothing rotated
    before, rotated, after = await _rotate(owner, endpoint["id"], json={"graceHours": 48})
    assert before + timedelta(hours=48) <= _expires(rotated) <= after + timedelta(hours=48)
    monkeypatch.setattr(dispatcher.settings, "webhook_rotation_grace_hours_max", 12.0)
    before, rotated, after = await _rotate(owner, endpoint["id"])  # the 24 h default is capped by the maximum
    assert before + timedelta(hours=12) <= _expires(rotated) <= after + timedelta(hours=12)
