"""Pure rules: Standard Webhooks signatures, secrets, the retry schedule, settings."""

from __future__ import annotations

import base64
import random
import re
import time
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhook_dispatcher.config import Settings, parse_schedule
from webhook_dispatcher.models import DeliveryStatus
from webhook_dispatcher.outbound.messages import build_headers
from webhook_dispatcher.outbound.signing import InvalidSecret, generate_secret, secret_key
from webhook_dispatcher.outbound.transport import AttemptResult, parse_retry_after
from webhook_dispatcher.worker.retries import decide

BODY = b'{"id":"e1","event":"lead.created","timestamp":"2025-01-27T10:00:00.000Z","tenantId":null,"data":{}}'


def test_generated_secrets_are_whsec_base64_of_32_random_bytes():
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert s.startswith("whsec_") and len(secret_key(s)) == 32


@pytest.mark.parametrize("bad", ["", "abc", "whsec_", "whsec_!!!!", "whsec_" + base64.b64encode(b"x" * 23).decode(),
                                 "whsec_" + base64.b64encode(b"x" * 65).decode(), "WHSEC_" + "A" * 44])
def test_bad_secrets_are_refused(bad):
    with pytest.raises(InvalidSecret):
        secret_key(bad)


def test_signatures_verify_with_standardwebhooks_including_during_a_rotation():
    old, new = generate_secret(), generate_secret()
    headers = build_headers("e1", BODY, [secret_key(new), secret_key(old)], user_agent="t")
    assert headers["webhook-signature"].count("v1,") == 2
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["traceparent"].startswith("00-")
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers)["id"] == "e1"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY + b" ", headers)


def _result(status: int | None, error_class: str | None = "http", retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(started_at=datetime.now(UTC), duration_ms=1, url="https://x", request_headers={},
                         status_code=status, error_class=None if status and 200 <= status < 300 else error_class,
                         retry_after=retry_after)


def test_the_schedule_gives_the_delay_before_each_retry_with_bounded_jitter():
    schedule = [5, 300, 1800]
    rng = random.Random(1)
    for attempt, base in enumerate(schedule, start=1):
        d = decide(_result(500), attempt, schedule, jitter=0.1, rng=rng)
        assert d.status is DeliveryStatus.PENDING and base * 0.9 <= d.delay <= base * 1.1
    assert decide(_result(500), 4, schedule).status is DeliveryStatus.FAILED
    assert decide(_result(None, "timeout"), 1, schedule).status is DeliveryStatus.PENDING
    assert decide(_result(204), 1, schedule).status is DeliveryStatus.SUCCEEDED
    gone = decide(_result(410), 1, schedule)
    assert gone.status is DeliveryStatus.FAILED and gone.disable_endpoint


def test_retry_after_is_honoured_on_429_502_503_504_within_a_bound():
    schedule = [1.0, 1.0]
    for status in (429, 502, 503, 504):
        assert decide(_result(status, retry_after=120), 1, schedule, jitter=0).delay == 120
    assert decide(_result(503, retry_after=10**9), 1, schedule, jitter=0, retry_after_max=3600).delay == 3600
    assert decide(_result(503, retry_after=0), 1, schedule, jitter=0).delay == 1.0  # never sooner than planned
    assert decide(_result(500, retry_after=120), 1, schedule, jitter=0).delay == 1.0  # only the back-off answers
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_settings_parse_the_schedule_and_refuse_nonsense():
    assert parse_schedule("5, 300,1800") == [5, 300, 1800]
    s = Settings(webhook_retry_schedule="0.2,0.2")
    assert s.retry_schedule == [0.2, 0.2] and s.max_attempts == 3
    assert Settings().retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert Settings().webhook_timeout_seconds == 15
    for bad in ({"webhook_retry_schedule": "5,x"}, {"webhook_retry_schedule": "-1"},
                {"webhook_timeout_seconds": 0}, {"webhook_lease_seconds": 10, "webhook_timeout_seconds": 15},
                {"webhook_allowed_private_cidrs": "10.0.0.1/8"}, {"webhook_allowed_private_cidrs": "0.0.0.0/0"},
                {"webhook_ca_bundle": "/does/not/exist.pem"}):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_without_recorded_spans_an_attempt_is_still_a_child_in_the_events_trace():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = build_headers("e1", BODY, [secret_key(generate_secret())], user_agent="t", parent=(parent, "k=v"))
    _, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (trace_id, flags) == ("4bf92f3577b34da6a3ce929d0e0e4736", "01") and span_id != "00f067aa0ba902b7"
    assert headers["tracestate"] == "k=v"
    for broken in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", parent.upper()):
        fresh = build_headers("e1", BODY, [secret_key(generate_secret())], user_agent="t", parent=(broken, "k=v"))
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", fresh["traceparent"]) and "tracestate" not in fresh
        assert fresh["traceparent"][3:35] != "0" * 32
