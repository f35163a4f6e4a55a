import uuid

import pytest
from pydantic import ValidationError

from common.events import EVENT_TYPES, build_event, matches, patterns_matching, valid_pattern

SEED_EVENTS = [
    "tenant.created", "tenant.updated", "tenant.suspended", "tenant.reactivated", "tenant.deleted",
    "ticket.created", "ticket.updated", "ticket.closed", "ticket.message.added",
    "lead.created", "lead.updated", "lead.converted", "lead.stage.changed",
    "conversation.started", "conversation.message.received", "conversation.message.sent", "conversation.ended",
]


def test_catalogue_holds_every_seed_event_with_a_json_schema():
    for name in SEED_EVENTS:
        schema = EVENT_TYPES[name].json_schema()
        assert schema["properties"]["event"]["const"] == name
        assert schema["properties"]["data"]["type"] == "object"


def test_build_event_validates_data_and_keeps_the_seed_shape():
    tid = uuid.uuid4()
    env = build_event("tenant.created", {"tenantId": tid, "name": "Empresa Cliente", "plan": "Pro",
                                         "status": "ACTIVE"}, tenant_id=tid)
    body = env.to_webhook()
    assert set(body) == {"id", "event", "timestamp", "tenantId", "data"}
    assert body["data"] == {"tenantId": str(tid), "name": "Empresa Cliente", "plan": "Pro", "status": "ACTIVE"}
    assert body["timestamp"].endswith("Z")
    with pytest.raises(ValidationError):
        build_event("tenant.created", {"tenantId": "nope", "name": "x", "plan": "Pro", "status": "ACTIVE"})


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*", "lead.created", True),
    ("lead.*", "lead.stage.changed", True),
    ("lead.*", "leads.created", False),
    ("ticket.created", "ticket.created", True),
    ("ticket.created", "ticket.closed", False),
])
def test_matching(pattern, name, expected):
    assert matches(pattern, name) is expected


def test_patterns_must_name_known_routable_events():
    assert valid_pattern("lead.*") and valid_pattern("*") and valid_pattern("webhook.endpoint.disabled")
    assert not valid_pattern("lead.exploded")
    assert not valid_pattern("nope.*")
    assert not valid_pattern("webhook.verification")


def test_patterns_matching_a_name_are_exactly_those_routing_matches():
    # Every valid pattern there could be: `*`, each routable name, each prefix wildcard of one.
    names = [n for n, e in EVENT_TYPES.items() if e.routable]
    candidates = {"*", *names, *(p for n in names for p in patterns_matching(n)), "lead.st.*", "lea.*"}
    for name in names:
        expected = {p for p in candidates if matches(p, name)}
        assert set(patterns_matching(name)) == expected, name
    assert patterns_matching("lead.stage.changed") == ["*", "lead.stage.changed", "lead.*", "lead.stage.*"]
