"""The committed Postman collection is what `make postman` generates from today's OpenAPI."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import postman  # noqa: E402


def test_postman_collection_is_up_to_date():
    committed = postman.OUTPUT.read_text()
    assert committed == postman.render(), "postman collection is stale: run `make postman` and commit it"


def test_collection_has_every_operation_and_a_login_that_stores_the_token():
    collection = json.loads(postman.OUTPUT.read_text())
    names = {f["name"] for f in collection["item"]}
    assert {"Tenants", "Auth", "Webhooks"} <= names or "Tenants" in names
    requests = [i["request"] for f in collection["item"] for i in f["item"]]
    assert any(r["method"] == "POST" and r["url"]["path"] == ["api", "platform", "tenants"] for r in requests)
    login = next(i for f in collection["item"] for i in f["item"] if i["name"] == "Login")
    assert "accessToken" in "".join(login["event"][0]["script"]["exec"])
